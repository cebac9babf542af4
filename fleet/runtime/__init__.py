"""The only layer that touches the outside world: NATS, Kubernetes, podman, the host.

Split by what it talks to, each subpackage unaware of its siblings:

* :mod:`fleet.runtime.nats`: the NATS connection (one transport port), the KV buckets,
  reads, watches, writes, the agent's desired-state feed, a local nats-server;
* :mod:`fleet.runtime.kube`: the Kubernetes API (custom objects, bounded decoding, watches);
* :mod:`fleet.runtime.podman`: the container runtime port and its podman adapter;
* :mod:`fleet.runtime.host`: the device itself (its inventory, the state dir on disk);

and two kits the others build on: :mod:`fleet.runtime.aiokit` (the one event loop thread,
timers, guarded tasks: the boundary between asyncio and actors) and
:mod:`fleet.runtime.actorkit` (pooled actors, the supervisor, fail-fast deaths).
It may import :mod:`fleet.contracts` and :mod:`fleet.errors`, never :mod:`fleet.actors`.
"""
