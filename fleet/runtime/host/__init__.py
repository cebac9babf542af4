"""The device itself: what it is (inventory) and what it keeps on disk (desired state).

It must never import another runtime subpackage but the kits.
"""
