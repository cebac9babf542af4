"""``fleet-operator``: Deployment resources in, per-device desired state out.

It watches ``Deployment`` resources (group fleet.nationtech.io) in Kubernetes, writes one
desired-state entry per targeted device into NATS JetStream KV, and keeps each
Deployment's ``.status.aggregate`` and each ``Device`` resource true.

Kubernetes access: ``--kube-url`` (plain HTTP, e.g. a local API emulator), else
``--kubeconfig`` / ``$KUBECONFIG`` / ``~/.kube/config``, else the in-cluster service
account. uvloop is chosen here, at the entry point, and nowhere else.

Metrics and probes: one HTTP port (``--metrics-address``, default 0.0.0.0:8080) serves
``/metrics``, ``/healthz`` and ``/readyz`` (docs/operator.md, "Metrics and health"); it
answers from the start, while the operator still waits for NATS.

What it must never do: hold behaviour of its own: it parses, wires and waits.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleet.cli import operator_dashboard
from fleet.cli.operator_leading import (
    connect,
    elector_of,
    lead,
    shard_map_of,
    timeout_under_lease,
)
from fleet.cli.operator_options import (
    add_bucket_args,
    add_leader_args,
    bucket_settings,
    lease_timing,
    privileged_namespaces,
    shard_of_args,
)
from fleet.errors import ConfigError
from fleet.runtime.aiokit.loop import hush_tls_eof_warning
from fleet.runtime.prometheus.address import parse_address

if TYPE_CHECKING:
    from collections.abc import Callable

    from fleet.actors.operator.app import OperatorConfig
    from fleet.actors.operator.ports import MetricsPort
    from fleet.runtime.actorkit.supervisor import Supervisor
    from fleet.runtime.aiokit.loop import EventLoopThread
    from fleet.runtime.kube.health import ApiHealth
    from fleet.runtime.kube.lease import LeaseElector
    from fleet.runtime.kube.shard_map import ShardMap
    from fleet.runtime.nats.bus import Bus
    from fleet.runtime.nats.identity import Authority

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
        "--auth-dir",
        type=Path,
        metavar="DIR",
        help="the fleet's authority (keys, revocations; created on first use, 0700, but "
        "never under --leader-elect: make it with --init-auth first): turns on "
        "enrollment, renewal and revocation of device credentials (docs/security.md); "
        "without it the operator answers no enrollment",
    )
    parser.add_argument(
        "--auth-keys",
        type=Path,
        metavar="DIR",
        help="read the authority's four keys (operator.seed, system.seed, account.seed, "
        "signing.seed) from DIR, e.g. a mounted Secret, instead of --auth-dir, which then "
        "keeps only revocations and issued credentials; nothing is written to DIR",
    )
    parser.add_argument(
        "--init-auth",
        action="store_true",
        help="create --auth-dir (keys, nats-auth.conf for nats-server, bootstrap.creds, "
        "fleetctl.creds) if it holds none, print what is there, and exit",
    )
    parser.add_argument(
        "--rotate-signing-key",
        action="store_true",
        help="in --auth-dir: replace the signing key (the old one stays accepted for "
        "--device-credential-ttl + 1 h, while devices renew with the new one), issue "
        "bootstrap.creds and fleetctl.creds anew, print what to do next, and exit",
    )
    parser.add_argument(
        "--nats-credentials",
        type=Path,
        metavar="FILE",
        help="the operator's NATS .creds file (default: $FLEET_NATS_CREDENTIALS; with "
        "--auth-dir, issued there at each start)",
    )
    parser.add_argument(
        "--nats-ca",
        type=Path,
        metavar="FILE",
        help="CA (PEM) of the NATS server's certificate: TLS is then required "
        "(default: $FLEET_NATS_CA)",
    )
    parser.add_argument(
        "--device-credential-ttl",
        type=float,
        default=86400.0,
        metavar="SECONDS",
        help="lifetime of the JWT an enrolled device gets (and gets again at each renewal; "
        "default: 86400, a day)",
    )
    parser.add_argument(
        "--max-pending-enrollments",
        type=int,
        default=10_000,
        metavar="N",
        help="refuse new enrollment requests while N wait for a person (default: 10000)",
    )
    parser.add_argument(
        "--pending-retry",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="a device waiting for approval asks again after this long (+-20%%), so it "
        "hears an approval that late at most (1..300, default: 30)",
    )
    parser.add_argument(
        "--metrics-address",
        default=os.environ.get("FLEET_METRICS_ADDRESS", "0.0.0.0:8080"),
        metavar="HOST:PORT",
        help="serve /metrics (Prometheus), /healthz and /readyz on this address ([::]:PORT "
        "for IPv6, port 0: any free port); '' or off: no HTTP port "
        "(default: $FLEET_METRICS_ADDRESS or 0.0.0.0:8080)",
    )
    add_leader_args(parser)
    add_bucket_args(parser)
    parser.add_argument(
        "--privileged-namespaces",
        type=privileged_namespaces,
        default=privileged_namespaces(os.environ.get("FLEET_PRIVILEGED_NAMESPACES", "*")),
        metavar="NS[,NS...]",
        help="only Deployments in these namespaces may be granted privileges (spec.privileges:"
        " host network, devices, capabilities, privileged); '' none, '*' every namespace "
        "(default: $FLEET_PRIVILEGED_NAMESPACES or *; docs/workloads.md)",
    )
    operator_dashboard.add_args(parser)
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
    if args.device_credential_ttl < 60:
        parser.error(f"--device-credential-ttl must be >= 60, got {args.device_credential_ttl:g}")
    if not 1 <= args.pending_retry <= 300:
        parser.error(f"--pending-retry must be 1..300, got {args.pending_retry:g}")
    _check_auth_args(parser, args)
    operator_dashboard.check_args(parser, args)
    args.lease_timing = lease_timing(parser, args.lease_timing, args.nats_connect_timeout)
    args.shard = shard_of_args(parser, args)
    args.bucket_settings = bucket_settings(parser, args)
    try:
        args.metrics_address = parse_address(args.metrics_address)
    except ValueError as exc:
        parser.error(f"--metrics-address: {exc}")
    if args.nats_credentials is None and os.environ.get("FLEET_NATS_CREDENTIALS"):
        args.nats_credentials = Path(os.environ["FLEET_NATS_CREDENTIALS"])
    if args.nats_ca is None and os.environ.get("FLEET_NATS_CA"):
        args.nats_ca = Path(os.environ["FLEET_NATS_CA"])
    if not args.nats_url:
        args.nats_url = [os.environ.get("FLEET_NATS_URL", "nats://127.0.0.1:4222")]
    return args


def _check_auth_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.init_auth and args.auth_dir is None:
        parser.error("--init-auth needs --auth-dir")
    if args.auth_keys is not None and args.auth_dir is None:
        parser.error("--auth-keys needs --auth-dir (where revocations are kept)")
    if args.auth_keys is not None and args.init_auth:
        parser.error("--init-auth makes keys in --auth-dir: not with --auth-keys")
    if args.rotate_signing_key and (args.auth_dir is None or args.auth_keys is not None):
        parser.error(
            "--rotate-signing-key needs --auth-dir holding the keys (not --auth-keys: "
            "rotate in the directory the Secret was made from, then update the Secret)"
        )
    if args.rotate_signing_key and args.init_auth:
        parser.error("--rotate-signing-key and --init-auth exclude each other")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    hush_tls_eof_warning()
    _tune_interpreter()
    try:
        if args.rotate_signing_key:
            return _rotate(args)
        # under leader election a standby writes nothing: the authority is read (and the
        # service credentials issued) only once this replica leads (_run)
        auth = None if args.leader_elect and not args.init_auth else _auth(args)
    except ConfigError as exc:
        print(f"fleet-operator: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.init_auth:
        return 0

    from fleet.runtime.kube.config import make_api_client

    try:
        api_client = make_api_client(
            kube_url=args.kube_url, kubeconfig=args.kubeconfig, context=args.context
        )
    except ConfigError as exc:
        print(f"fleet-operator: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return _run(args, auth, api_client)


def _run(args: argparse.Namespace, auth: tuple[Authority, Path, Path, Path] | None,
         api_client: Any) -> int:  # fmt: skip
    """Wire the operator's parts and run until a signal (or a lost Lease, or a death)."""
    import uvloop

    from fleet.actors.operator.app import Operator, OperatorConfig
    from fleet.actors.operator.enrollment.service import EnrollmentSetup
    from fleet.runtime.actorkit import failfast
    from fleet.runtime.actorkit.supervisor import Supervisor
    from fleet.runtime.aiokit.loop import EventLoopThread
    from fleet.runtime.fencing import OPEN
    from fleet.runtime.kube.client import KubeClient
    from fleet.runtime.nats.bus import Bus
    from fleet.runtime.nats.permissions import operator_permissions

    supervisor = Supervisor(name="fleet-operator")
    failfast.install(supervisor.fail)  # an actor that dies stops the operator: exit 70
    loop_thread = EventLoopThread(name="operator-loop", loop_factory=uvloop.new_event_loop)
    elector = elector_of(args, api_client) if args.leader_elect else None
    # a shard waits at the shard map after taking its Lease: still a standby (Ready, so a
    # rolling update that changes the shard count goes on: docs/operator.md, "Shards")
    shard_map = shard_map_of(args, api_client) if elector is not None else None

    def leading() -> bool:
        return elector is not None and elector.led and (shard_map is None or shard_map.passed)

    # under leader election the operator's Kubernetes calls give up before the Lease could
    # pass to another replica: a write in flight never lands after the fence closed
    kube_timeout = timeout_under_lease(args) if elector is not None else 10.0
    config = OperatorConfig(
        liveness_timeout=args.liveness_timeout, device_retention=args.device_retention,
        namespaces=tuple(args.namespace), device_qps=args.device_qps,
        privileged_namespaces=args.privileged_namespaces, shard=args.shard,
    )  # fmt: skip
    bus_box: list[Bus] = []  # made once leading: its credentials come from the authority
    try:  # first: it answers while the operator waits for NATS, and stops last
        metrics, health = _serve_http(
            args.metrics_address, supervisor=supervisor, loop_thread=loop_thread,
            nats_connected=lambda: bool(bus_box) and bus_box[0].connected,
            config=config, standby=lambda: elector is not None and not leading(),
        )  # fmt: skip
        if elector is not None:  # a standby writes nothing: the authority is read once
            # leading (None: a signal)
            auth = _lead_then_auth(args, elector, supervisor, shard_map)
            if auth is None and (not elector.led or supervisor.stop_event.is_set()):
                # stopped (a signal) while waiting to lead or at the shard map: 0; the
                # Lease lost while waiting at the shard map: 70 (run_until_signal says)
                return supervisor.run_until_signal()
    except ConfigError as exc:
        print(f"fleet-operator: {exc}", file=sys.stderr)
        supervisor.stop()
        return EXIT_CONFIG
    credentials = args.nats_credentials or (auth[1] if auth is not None else None)
    bus = Bus(
        urls=args.nats_url, name="fleet-operator", credentials=credentials, tls_ca=args.nats_ca,
        inbox_prefix=operator_permissions().inbox_prefix if credentials else "_INBOX",
        fence=elector,
    )  # fmt: skip
    bus_box.append(bus)
    loop_thread.start()
    supervisor.add_cleanup("event-loop", loop_thread.stop)
    try:
        dashboard = operator_dashboard.start(
            args, supervisor=supervisor, api_client=api_client, fence=elector,
            kube_timeout=kube_timeout,
        )  # fmt: skip
    except ConfigError as exc:
        print(f"fleet-operator: {exc}", file=sys.stderr)
        supervisor.stop()
        return EXIT_CONFIG

    _warn_about_nats(args, credentials=credentials)
    logger.info("connecting to NATS at %s", ", ".join(args.nats_url))
    supervisor.add_cleanup("nats", lambda: loop_thread.run(bus.close(), timeout=10))
    supervisor.catch_signals()  # SIGTERM while waiting for NATS: a clean stop
    if not connect(args, bus=bus, loop_thread=loop_thread, supervisor=supervisor,
                    bounded=elector is not None):  # fmt: skip
        return supervisor.run_until_signal()  # stopped or given up: 0 or 70, Lease released
    operator = Operator(
        bus=bus,
        loop_thread=loop_thread,
        kube=KubeClient(api_client, health=health, fence=elector or OPEN, timeout=kube_timeout),
        config=config,
        metrics=metrics,
        dashboard=dashboard,
        supervisor=supervisor,  # its parts start after the loop and NATS, and stop before
        enrollment=None
        if auth is None
        else EnrollmentSetup(
            authority=auth[0], auth_dir=args.auth_dir, system_credentials=auth[2],
            enrollment_credentials=auth[3],
            nats_urls=tuple(args.nats_url), tls_ca=args.nats_ca,
            credential_ttl=args.device_credential_ttl, max_pending=args.max_pending_enrollments,
            pending_retry=args.pending_retry, fence=elector or OPEN,
        ),
    )  # fmt: skip
    try:
        operator.start()
    except BaseException:
        supervisor.stop()
        raise
    return supervisor.run_until_signal()


def _lead_then_auth(
    args: argparse.Namespace,
    elector: LeaseElector,
    supervisor: Supervisor,
    shard_map: ShardMap | None,
) -> tuple[Authority, Path, Path, Path] | None:
    """Under leader election: check the authority exists (reading only, so a standby that
    could never lead says so at once), wait to lead, then read it and issue the service
    credentials. None: no --auth-dir, or stopped while waiting (``elector.led`` False)."""
    if args.auth_dir is not None:
        _check_auth_exists(args)
    if not lead(elector, supervisor, shard_map=shard_map):
        return None
    return _auth(args)


def _tune_interpreter() -> None:
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


def _warn_about_nats(args: argparse.Namespace, *, credentials: Path | None) -> None:
    if credentials is None:
        logger.warning(
            "connecting to NATS WITHOUT credentials (no --auth-dir, no --nats-credentials): "
            "this only works against a server that lets anyone in, where any device may "
            "read and rewrite every device's desired state. For development only "
            "(docs/security.md)."
        )
    elif args.nats_ca is None and not all(u.startswith("tls://") for u in args.nats_url):
        logger.warning("connecting to NATS without TLS (no --nats-ca): the bus is readable")


def _serve_http(
    address: tuple[str, int] | None,
    *,
    supervisor: Supervisor,
    loop_thread: EventLoopThread,
    nats_connected: Callable[[], bool],
    config: OperatorConfig,
    standby: Callable[[], bool],
) -> tuple[MetricsPort, ApiHealth]:
    """Start the HTTP port (``--metrics-address``; None: none); the metrics the
    operator's parts publish to, and the Kubernetes API health its client reports to."""
    from typing import get_args

    import pykka

    from fleet.actors.operator.ports import NO_METRICS
    from fleet.actors.operator.probes import Probes
    from fleet.actors.operator.rollout import RolloutPhase
    from fleet.runtime.actorkit.pool import live_pools
    from fleet.runtime.kube.health import ApiHealth
    from fleet.runtime.prometheus.endpoint import HttpEndpoint
    from fleet.runtime.prometheus.mailboxes import MailboxDepths
    from fleet.runtime.prometheus.operator_metrics import OperatorMetrics

    if address is None:
        return NO_METRICS, ApiHealth()

    metrics = OperatorMetrics(rollout_phases=get_args(RolloutPhase))
    metrics.registry.register(MailboxDepths(actors=pykka.ActorRegistry.get_all, pools=live_pools))
    health = ApiHealth(on_error=metrics.kube_error)
    probes = Probes(
        supervisor=supervisor, loop_running=lambda: loop_thread.running,
        nats_connected=nats_connected, synced=lambda: metrics.is_synced, kube=health,
        # a healthy operator opens a watch again at least this often
        kube_within=2 * (config.watch_timeout + config.watch_read_timeout),
        standby=standby,  # waiting for the leader Lease
    )  # fmt: skip
    host, port = address
    endpoint = HttpEndpoint(
        host=host, port=port, registry=metrics.registry, alive=probes.alive, ready=probes.ready
    )
    try:
        endpoint.start()
    except OSError as exc:
        raise ConfigError(f"--metrics-address {host}:{port}: {exc.strerror or exc}") from exc
    supervisor.add_cleanup("http endpoint", endpoint.stop)
    shown, bound = (f"[{host}]" if ":" in host else host), endpoint.address[1]
    logger.info("serving /metrics, /healthz and /readyz on http://%s:%d", shown, bound)
    return metrics, health


def _auth(args: argparse.Namespace) -> tuple[Authority, Path, Path, Path] | None:
    """The authority in ``--auth-dir`` (created if absent) with the operator's and the
    system user's credentials issued now; None without ``--auth-dir``."""
    from fleet.runtime.nats.authority_files import load_or_create, service_credentials

    if args.auth_dir is None:
        return None
    if args.leader_elect and not args.init_auth:
        _check_auth_exists(args)  # replicas never race to make two authorities
    authority = load_or_create(args.auth_dir, keys=args.auth_keys)
    operator, system, enrollment = service_credentials(args.auth_dir, authority)
    if args.init_auth:
        for path in sorted(args.auth_dir.iterdir()):
            print(path)
    return authority, operator, system, enrollment


def _check_auth_exists(args: argparse.Namespace) -> None:
    """Under ``--leader-elect`` the authority is made beforehand (``--init-auth``, or the
    ``--auth-keys`` Secret), never by a replica: a missing one is a ConfigError naming it."""
    keys: Path = args.auth_keys or args.auth_dir
    if not (keys / "account.seed").exists():
        raise ConfigError(
            f"{keys}: no fleet authority (account.seed); with --leader-elect it must exist "
            "before the replicas start: make it with `fleet-operator --auth-dir DIR --init-auth`"
        )


def _rotate(args: argparse.Namespace) -> int:
    """``--rotate-signing-key``: done in the directory, then what a person does next."""
    import datetime

    from fleet.runtime.nats.authority_files import RETIRED_KEYS, rotate_signing_key

    directory: Path = args.auth_dir
    if not (directory / "signing.seed").exists():
        raise ConfigError(f"{directory}: no signing.seed to rotate (make one: --init-auth)")
    old, new, until = rotate_signing_key(directory, keep_old_for=args.device_credential_ttl + 3600)
    when = datetime.datetime.fromtimestamp(until, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(
        f"signing key {old} replaced by {new}.\n"
        f"What the old key signed is accepted until {when}; enrolled devices renew with\n"
        "the new one before then. Next:\n"
        "  1. restart fleet-operator with this directory (it pushes the account to\n"
        "     nats-server at start); in Kubernetes, first put signing.seed and\n"
        f"     {RETIRED_KEYS} into the Secret fleet-authority (docs/install.md);\n"
        "  2. give devices not yet enrolled, and installers, the new bootstrap.creds, and\n"
        "     people the new fleetctl.creds: the old ones stop working at that time;\n"
        "  3. replace nats-server's nats-accounts.conf (Secret fleet-nats-authority) with\n"
        "     the new one, so that a fresh server starts knowing both keys."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
