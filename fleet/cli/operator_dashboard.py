"""``fleet-operator --dashboard-address HOST:PORT``: the live web dashboard, or none.

Why it exists: kept apart from :mod:`fleet.cli.operator` (which only calls it) so the
operator's entry point stays a list of steps. Off unless the flag is given. In the
operator every viewer brings a Kubernetes bearer token, reviewed by the API server
(TokenReview, then SubjectAccessReview for ``list`` on fleet Deployments;
docs/dashboard.md).

The rollout buttons run ``fleetctl rollout``'s own code (:mod:`fleet.cli.dashboard_rollouts`)
with the operator's credentials, for viewers Kubernetes lets ``patch`` that Deployment,
each audited in the log and as an Event (a recorder of the dashboard's own).

What it must never do: start anything when the flag is absent.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fleet.errors import ConfigError
from fleet.runtime.prometheus.address import parse_address

if TYPE_CHECKING:
    from fleet.runtime.actorkit.supervisor import Supervisor
    from fleet.runtime.fencing import WriteFence

logger = logging.getLogger("fleet.operator")
TOKEN_ENV = "FLEET_DASHBOARD_TOKEN"
"""Set (16 characters or more): viewers bring this one token instead of a Kubernetes one
(``scripts/demo``, a local operator; never in a cluster). An environment variable, not a
flag, so it is not in ``ps``."""


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dashboard-address",
        default=os.environ.get("FLEET_DASHBOARD_ADDRESS", "off"),
        metavar="HOST:PORT",
        help="serve the live web dashboard on this address (viewers bring a Kubernetes "
        "bearer token; docs/dashboard.md); off: none (default: $FLEET_DASHBOARD_ADDRESS or off)",
    )


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    try:
        args.dashboard_address = parse_address(args.dashboard_address)
    except ValueError as exc:
        parser.error(f"--dashboard-address: {exc}")


def start(
    args: argparse.Namespace,
    *,
    supervisor: Supervisor,
    api_client: Any,
    fence: WriteFence | None = None,
    kube_timeout: float = 10.0,
) -> Callable[[object], None] | None:
    """Start the dashboard if asked; the feed to hand the operator (None: none).
    ``fence``: the leader Lease (None: no leader election); its actions' writes ask it."""
    if args.dashboard_address is None:
        return None
    from fleet.cli.dashboard_rollouts import KubeRollouts
    from fleet.dashboard.access import KubeAccess
    from fleet.dashboard.service import DashboardService
    from fleet.runtime.fencing import OPEN
    from fleet.runtime.kube.access_review import AccessReviewer
    from fleet.runtime.kube.client import KubeClient
    from fleet.runtime.kube.event_recorder import EventRecorder
    from fleet.runtime.web.access import Access, StaticToken

    host, port = args.dashboard_address
    token = os.environ.get(TOKEN_ENV, "")
    try:
        access: Access = StaticToken(token) if token else KubeAccess(AccessReviewer(api_client))
    except ValueError as exc:
        raise ConfigError(f"${TOKEN_ENV}: {exc}") from exc
    kube = KubeClient(api_client, fence=fence or OPEN, timeout=kube_timeout)
    audit = EventRecorder(kube)  # the actions' Events: a recorder of its own, no wait on
    service = DashboardService(  # the operator's (which starts later)
        host=host, port=port, access=access, liveness_timeout=args.liveness_timeout,
        rollouts=KubeRollouts(kube, events=audit.post),
    )  # fmt: skip
    try:
        bound = service.start()
    except OSError as exc:
        raise ConfigError(f"--dashboard-address {host}:{port}: {exc.strerror or exc}") from exc
    audit.start()
    supervisor.add_cleanup("dashboard", service.stop)
    supervisor.add_cleanup("dashboard-events", audit.stop)
    shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    if token:
        logger.info("serving the dashboard on http://%s:%d/ (viewers bring $%s)", shown,
                    bound[1], TOKEN_ENV)  # fmt: skip
    else:
        logger.info("serving the dashboard on http://%s:%d/ (viewers bring a bearer token)",
                    shown, bound[1])  # fmt: skip
    return service.feed
