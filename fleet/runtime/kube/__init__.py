"""Kubernetes: custom objects through the official client, decoded bounded, and watches.

Every call may block (the client is synchronous): called from threads, never the loop.
It must never import another runtime subpackage but the kits.
"""
