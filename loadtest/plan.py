"""The load run's data plane and what the run writes: NATS, the Deployments, a fault.

Why it exists: ``loadtest/run`` needs a nats-server with the buckets and a connection of
its own (to time the rollout and to check), the Deployments it applies (their selectors
exercise ``matchLabels``, ``In``/``NotIn`` and ``Exists``), and, for the negative check,
one deliberately wrong report. Each lives here so the run reads as its steps.

What it must never do: write anything but the run's own Deployments (namespace
``fleet-load``) and, when a fault is asked for, the one injected report.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
    CRD_GROUP,
    CRD_VERSION,
    KIND_DEPLOYMENT,
    PLURAL_DEPLOYMENTS,
    Phase,
    decode_report_entry,
    desired_state_key,
    report_entry,
)
from fleet.errors import ContractError
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.buckets import BucketSettings
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.server import LocalNatsServer
from loadtest.identities import RunIdentity
from loadtest.runtime_mix import score_of

SWARM_LABEL = "fleet.load/swarm"
RING_LABEL = "fleet.load/ring"
MOVED = "moved"  # the ring a relabeled device moves to (see DeviceBehaviour.relabel_to)


class Plane:
    """nats-server (own store under the work dir) and one connected Bus on uvloop."""

    def __init__(
        self,
        *,
        workdir: Path,
        auth: bool = False,
        tls: bool = True,
        urls: Sequence[str] = (),
        buckets: BucketSettings | None = None,
    ) -> None:
        """``auth``: device identity on (:mod:`loadtest.identities`): the server with JWT
        auth and TLS, the run's own connection with the operator's credential. ``urls``:
        an existing NATS server or cluster instead of a server of its own (no ``auth``).
        ``buckets``: how the run makes the buckets (the operator's ``--bucket-*``)."""
        self._buckets = buckets
        self.identity = RunIdentity.create(workdir / "identity", tls=tls) if auth else None
        store = workdir / "jetstream"
        self.nats: LocalNatsServer | None = None
        if not urls:
            self.nats = (
                self.identity.server(store) if self.identity else LocalNatsServer(store_dir=store)
            )
        self._urls = tuple(urls)
        self.loop: EventLoopThread
        self.bus: Bus

    def operator_args(self) -> list[str]:
        """What ``fleet-operator`` needs on its command line to connect."""
        ident = self.identity
        if ident is None:
            return []
        ca = ["--nats-ca", str(ident.ca_cert)] if ident.ca_cert is not None else []
        return ["--nats-credentials", str(ident.operator_creds), *ca]

    def swarm_args(self) -> list[str]:
        """What the locust swarm needs to give each device its own credential."""
        ident = self.identity
        if ident is None:
            return []
        ca = ["--nats-ca", str(ident.ca_cert)] if ident.ca_cert is not None else []
        return ["--auth-file", str(ident.seeds_file), *ca]

    def __enter__(self) -> Plane:
        import uvloop

        if self.nats is not None:
            self.nats.start()
        self.loop = EventLoopThread(name="loadtest-run", loop_factory=uvloop.new_event_loop)
        self.loop.start()
        ident = self.identity
        self.bus = Bus(
            urls=self.urls, name="loadtest-run",
            credentials=ident.operator_creds if ident else None,
            tls_ca=ident.ca_cert if ident else None,
            inbox_prefix=ident.operator.inbox_prefix if ident else "_INBOX",
        )  # fmt: skip

        async def up() -> None:
            await self.bus.start()
            await self.bus.wait_connected(timeout=10)
            await self.bus.ensure_buckets(settings=self._buckets)

        self.loop.run(up(), timeout=30)
        if self.nats is None:
            self._check_empty()
        return self

    def _check_empty(self) -> None:
        """An existing NATS must not hold devices yet: the verdict reads the buckets whole."""
        for bucket in (BUCKET_DEVICE_INFO, BUCKET_DESIRED_STATE):
            messages, _last = self.loop.run(stream_counts(self.bus, bucket), timeout=30)
            if messages:
                self.__exit__(None, None, None)
                raise SystemExit(
                    f"loadtest: bucket {bucket} of {', '.join(self.urls)} already holds "
                    f"{messages} entries: the verdict would count them. Use a fresh NATS, or "
                    "delete the buckets' streams first (nats stream rm KV_{bucket})"
                )

    @property
    def urls(self) -> list[str]:
        """Where the run's processes connect: its own server, or the existing ones."""
        return [self.nats.url] if self.nats is not None else list(self._urls)

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        try:
            self.loop.run(self.bus.close(), timeout=10)
        finally:
            self.loop.stop()
            if self.nats is not None:
                self.nats.stop()

    @property
    def nats_pid(self) -> int | None:
        return self.nats.pid if self.nats is not None else None


async def stream_counts(bus: Bus, bucket: str) -> tuple[int, int]:
    """(live messages, last sequence) of a bucket's stream: cheap, whatever its size."""
    return await bus.kv.counts(bucket)


def deployment_manifest(
    *, name: str, index: int, swarm: str, score_type: str = "podman"
) -> dict[str, Any]:
    """The ``index``-th Deployment: selects the swarm; its score of ``score_type`` (podman:
    one busybox container; :func:`loadtest.runtime_mix.score_of`)."""
    variants: list[dict[str, Any]] = [
        {"matchLabels": {SWARM_LABEL: swarm}},
        {
            "matchExpressions": [
                {"key": SWARM_LABEL, "operator": "In", "values": [swarm]},
                {"key": RING_LABEL, "operator": "NotIn", "values": [MOVED]},
            ]
        },
        {"matchExpressions": [{"key": SWARM_LABEL, "operator": "Exists"}]},
    ]
    return {
        "apiVersion": f"{CRD_GROUP}/{CRD_VERSION}",
        "kind": KIND_DEPLOYMENT,
        "metadata": {"name": name, "labels": {SWARM_LABEL: swarm}},
        "spec": {
            "selector": variants[index % len(variants)],
            "score": score_of(score_type, index),
        },
    }


def apply_deployments(
    *, kube_url: str, namespace: str, swarm: str, count: int, types: tuple[str, ...] = ("podman",)
) -> list[str]:
    """Create ``count`` Deployments (load-0, load-1, ...), the ``i``-th of score type
    ``types[i % len(types)]``; return their names."""
    from kubernetes import client

    config = client.Configuration()
    config.host = kube_url
    names = [f"load-{i}" for i in range(count)]
    with client.ApiClient(config) as api:
        objects = client.CustomObjectsApi(api)
        for i, name in enumerate(names):
            objects.create_namespaced_custom_object(
                CRD_GROUP,
                CRD_VERSION,
                namespace,
                PLURAL_DEPLOYMENTS,
                deployment_manifest(
                    name=name, index=i, swarm=swarm, score_type=types[i % len(types)]
                ),
            )
    return names


def inject_stale_aggregate(plane: Plane, namespace: str) -> str:
    """Rewrite one Running report as Failed (same revision) behind a frozen operator.

    The devices now say one more Failed and one fewer Running than the aggregate, which
    the operator (paused by the caller) cannot correct: the check must FAIL.
    """

    async def flip() -> str:
        states = await plane.bus.snapshot(BUCKET_DEVICE_STATE)
        desired = await plane.bus.snapshot(BUCKET_DESIRED_STATE)
        for key, entry in sorted(states.items()):
            try:
                state = decode_report_entry(key, entry.value).state
            except ContractError:
                continue
            if state is None or state.phase is not Phase.RUNNING:
                continue
            current = desired.get(desired_state_key(state.device_id, state.deployment))
            if current is None or current.revision != state.desired_revision:
                continue
            _, wrong = report_entry(
                device=state.device_id,
                deployment=state.deployment,
                phase=Phase.FAILED,
                desired_revision=state.desired_revision,
                message="injected by loadtest --inject-fault stale-aggregate",
                at=dt.datetime.now(dt.UTC),
            )
            await plane.bus.put(BUCKET_DEVICE_STATE, key, wrong)
            return f"{key} now says Failed; the operator ({namespace}) is frozen"
        return "no Running report to flip (nothing injected)"

    return plane.loop.run(flip(), timeout=120)
