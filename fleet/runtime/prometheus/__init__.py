"""Prometheus: the operator's figures as metrics, and the HTTP port that serves them with
the health probes.

Only this package imports ``prometheus_client``. Actors publish plain numbers through
``fleet.actors.operator.ports.MetricsPort`` (implemented by :mod:`.operator_metrics`); the HTTP
server (:mod:`.endpoint`) runs on a thread of its own and reads what was published. It
must never import another runtime subpackage but the kits, nor ask an actor anything.
"""
