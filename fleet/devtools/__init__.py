"""Development stand-ins, never used in production.

The Kubernetes API emulator (``kube_emulator``), a private podman world with a local
registry (``podman_sandbox``), a container runtime that runs nothing
(``simulated_runtime``, ``simulated_agent``) and the local demo's wiring
(``local_fleet``, ``demo_manifests``, ``processes``). These need the ``dev`` extra
(kmock). The demo, the load swarm and the tests use them where a user would have a real
cluster or device; nothing in ``fleet.actors`` or the shipped entry points
(``fleet-agent``, ``fleet-operator``) imports them.
"""
