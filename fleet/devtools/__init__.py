"""Development stand-ins, never used in production: the Kubernetes API emulator.

These need the ``dev`` extra (kmock). The demo, the load swarm and the tests use them
where a user would have a real cluster; nothing in ``fleet.actors`` or the shipped
entry points (``fleet-agent``, ``fleet-operator``) imports them.
"""
