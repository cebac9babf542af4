"""``fleetctl dashboard``: the operator's web dashboard, served locally for one person.

Why it exists: the page is the same as the operator's (docs/dashboard.md), fed from the
NATS and the Kubernetes API ``fleetctl`` already reaches (its credentials: read-only).
It binds to 127.0.0.1 only, with a random token in the URL it prints: a request without
that token is a 401, so another user of the machine cannot read the fleet through it.
It runs until Ctrl-C (or SIGTERM), then stops its watches and its server.

What it must never do: listen beyond 127.0.0.1, or write to a bucket or to Kubernetes.
"""

from __future__ import annotations

import argparse
import secrets
import signal
import threading
from typing import Any

from fleet.dashboard.feeds import Feeds
from fleet.dashboard.service import DashboardService
from fleet.runtime.kube.client import DEPLOYMENTS
from fleet.runtime.web.access import StaticToken

from .connect import Buckets, kube_errors

HOST = "127.0.0.1"


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "dashboard",
        parents=[common],
        help="serve the live web dashboard on 127.0.0.1 (prints its URL)",
    )
    p.add_argument("--port", type=_port, default=0, metavar="PORT",
                   help="port on 127.0.0.1 (default: 0, any free one)")  # fmt: skip


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0..65535, got {text!r}")
    return int(text)


def run(ctl: Any) -> int:
    """Serve until a signal; 0 when stopped by one."""
    args = ctl.args
    token = secrets.token_urlsafe(24)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with kube_errors(ctl.kube):
        ctl.kube.list_objects(DEPLOYMENTS, namespace=None)  # reachable, CRDs served
    with ctl.buckets() as buckets:
        assert isinstance(buckets, Buckets)
        service = DashboardService(host=HOST, port=args.port, access=StaticToken(token),
                                   liveness_timeout=args.liveness_timeout)  # fmt: skip
        host, port = service.start()
        feeds = Feeds(feed=service.feed, kv=buckets.kv, loop=buckets.loop, kube=ctl.kube)
        try:
            feeds.start()
            ctl.print(f"dashboard: http://{host}:{port}/?token={token}")
            ctl.print("(only this URL opens it; Ctrl-C stops it)")
            stop.wait()
        finally:
            feeds.stop()
            service.stop()
    return 0
