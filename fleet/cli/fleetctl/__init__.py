"""``fleetctl``: the fleet seen from a terminal, in the style of ``kubectl``.

It reads Deployments from Kubernetes and devices from the NATS buckets, prints tables or
JSON, applies and deletes Deployments, and watches one until it converges. Modules:
``connect`` (reaching NATS and the API, and saying clearly when it cannot), ``snapshots``
(bucket entries decoded, the bad ones skipped, as the operator and the load checker skip
them), ``view`` (rows from what was read: pure), ``render`` (tables and JSON),
``manifests`` (apply and delete), ``rollout`` and ``rollout_view`` (``fleetctl rollout``:
its actions, and ``.status.rollout`` read bounded and shown), ``main`` (arguments and
commands).

It must never write to the buckets: the operator owns desired state, the devices own
their reports.
"""
