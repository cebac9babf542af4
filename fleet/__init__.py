"""fleet: a fleet reconciler for edge devices.

Operators describe what should run as Kubernetes custom resources; every device's
``fleet-agent`` converges to it by itself and reports back over NATS JetStream KV.

Layers, one way only: ``fleet.actors`` -> ``fleet.runtime`` -> ``fleet.contracts``.
``fleet.errors`` is shared by all of them and imports nothing of ours.
"""

__version__ = "0.1.0"
