"""Development stand-ins, never used in production.

The Kubernetes API emulator (``kube_emulator``, its parts in ``_kube_*``), a private
podman world with a local registry (``podman_sandbox``), a container runtime that runs nothing
(``simulated_runtime``, ``simulated_agent``), the local demo's wiring
(``local_fleet``, ``local_auth``, ``demo_manifests``, ``processes``), a throwaway
CA (``tls``), and one simulated device that
writes what ``fleet-agent`` writes (``simdevice``, over ``simprofile``, ``simrollout``
and ``simwrites``), used by the load swarm, the operator tests and the benchmarks.
These need the ``dev`` extra (kmock). The demo, the load swarm and the tests use them
where a user would have a real cluster or device; nothing in ``fleet.actors`` or the
shipped entry points (``fleet-agent``, ``fleet-operator``) imports them.
"""
