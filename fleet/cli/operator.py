"""``fleet-operator``: Deployment resources in, per-device desired state out.

It watches ``Deployment`` resources (group fleet.nationtech.io) in Kubernetes, writes one
desired-state entry per targeted device into NATS JetStream KV, and keeps each
Deployment's ``.status.aggregate`` and each ``Device`` resource true.

Kubernetes access: ``--kube-url`` (plain HTTP, e.g. a local API emulator), else
``--kubeconfig`` / ``$KUBECONFIG`` / ``~/.kube/config``, else the in-cluster service
account. uvloop is chosen here, at the entry point, and nowhere else.

What it must never do: hold behaviour of its own: it parses, wires and waits.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys

from fleet.errors import ConfigError

logger = logging.getLogger("fleet.operator")
EXIT_CONFIG = 2
GC_THRESHOLDS = (50_000, 20, 100)  # see main()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="fleet-operator",
        description="Turn fleet Deployment resources into per-device desired state in NATS KV "
        "and keep their status aggregates true.",
    )
    parser.add_argument(
        "--nats-url",
        action="append",
        default=[],
        metavar="URL",
        help="NATS server URL; repeat for a cluster (default: $FLEET_NATS_URL or "
        "nats://127.0.0.1:4222)",
    )
    parser.add_argument(
        "--liveness-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="a device whose last heartbeat is older than this counts as unreachable (default: 30)",
    )
    parser.add_argument(
        "--device-retention",
        type=float,
        default=604800.0,
        metavar="SECONDS",
        help="forget a device silent (no heartbeat, info or report) for longer than this: its "
        "info, heartbeat and report keys are deleted, it is no longer targeted, its Device "
        "resource is marked stale; 0 never forgets (default: 604800, a week)",
    )
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="watch Deployments in this namespace; repeatable (default: all namespaces)",
    )
    parser.add_argument(
        "--kubeconfig",
        metavar="PATH",
        help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)",
    )
    parser.add_argument("--context", metavar="NAME", help="kubeconfig context (default: current)")
    parser.add_argument(
        "--kube-url",
        metavar="URL",
        help="talk to this API server URL directly, without credentials (for a local API "
        "emulator in tests and demos)",
    )
    parser.add_argument(
        "--device-qps",
        type=float,
        default=50.0,
        metavar="N",
        help="at most N writes per second to Device resources (default: 50)",
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("FLEET_LOG_LEVEL", "INFO"),
        help="DEBUG, INFO, WARNING... (default: $FLEET_LOG_LEVEL or INFO)",
    )
    args = parser.parse_args(argv)
    if args.liveness_timeout <= 0:
        parser.error(f"--liveness-timeout must be > 0, got {args.liveness_timeout}")
    if args.device_retention < 0 or 0 < args.device_retention <= args.liveness_timeout:
        parser.error(
            f"--device-retention must be 0 (never) or more than --liveness-timeout "
            f"({args.liveness_timeout:g}), got {args.device_retention:g}"
        )
    if args.device_qps <= 0:
        parser.error(f"--device-qps must be > 0, got {args.device_qps}")
    if not args.nats_url:
        args.nats_url = [os.environ.get("FLEET_NATS_URL", "nats://127.0.0.1:4222")]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    import uvloop

    # The loop thread gives up the GIL at every poll and then waits for it up to the
    # switch interval (5 ms) while actor threads decode: at fleet scale that convoy halved
    # its write rate (docs/benchmarks.md, "Operator"). 0.5 ms gives it back sooner.
    sys.setswitchinterval(0.0005)
    # The operator holds millions of long-lived objects (a pooled actor and the fleet's
    # picture per device). With the default thresholds (700, 10, 10) its collector ran
    # 5,678 times and held the GIL for 10.8 s of a 100,000-device rollout; at these,
    # 53-78 times for 1.6-1.7 s (docs/benchmarks.md, "Operator"). Cyclic garbage is
    # still collected, later: the young generation holds up to 50,000 objects first.
    gc.set_threshold(*GC_THRESHOLDS)

    from fleet.actors.operator.app import Operator, OperatorConfig
    from fleet.runtime.actorkit import failfast
    from fleet.runtime.actorkit.supervisor import Supervisor
    from fleet.runtime.aiokit.loop import EventLoopThread
    from fleet.runtime.kube.client import KubeClient
    from fleet.runtime.kube.config import make_api_client
    from fleet.runtime.nats.bus import Bus

    try:
        api_client = make_api_client(
            kube_url=args.kube_url, kubeconfig=args.kubeconfig, context=args.context
        )
    except ConfigError as exc:
        print(f"fleet-operator: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    supervisor = Supervisor(name="fleet-operator")
    failfast.install(supervisor.fail)  # an actor that dies stops the operator: exit 70
    loop_thread = EventLoopThread(name="operator-loop", loop_factory=uvloop.new_event_loop)
    loop_thread.start()
    supervisor.add_cleanup("event-loop", loop_thread.stop)
    bus = Bus(urls=args.nats_url, name="fleet-operator")

    async def connect() -> None:
        await bus.start()
        await bus.wait_connected(timeout=None)
        await bus.ensure_buckets(enforce_limits=True)

    logger.info("connecting to NATS at %s", ", ".join(args.nats_url))
    loop_thread.run(connect(), timeout=3600)
    supervisor.add_cleanup("nats", lambda: loop_thread.run(bus.close(), timeout=10))
    operator = Operator(
        bus=bus,
        loop_thread=loop_thread,
        kube=KubeClient(api_client),
        config=OperatorConfig(
            liveness_timeout=args.liveness_timeout,
            device_retention=args.device_retention,
            namespaces=tuple(args.namespace),
            device_qps=args.device_qps,
        ),
        supervisor=supervisor,  # its parts start after the loop and NATS, and stop before
    )
    try:
        operator.start()
    except BaseException:
        supervisor.stop()
        raise
    return supervisor.run_until_signal()


if __name__ == "__main__":
    sys.exit(main())
