"""The container runtime: the port reconcilers see, and the podman adapter behind it.

It must never import another runtime subpackage but the kits.
"""
