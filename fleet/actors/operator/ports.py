"""The small ports the operator's actors and their plain classes use; the runtime
implements them.

Each I/O method returns at once with a :class:`concurrent.futures.Future`; its outcome
becomes a message to the actor through a :class:`RepliesPort` (in an actor:
:func:`fleet.runtime.aiokit.loop.tell_when_done` to itself) and nobody waits. Unit tests
pass fakes with the same shape (``tests/operator/units/fakes.py``).

:class:`MetricsPort` and :class:`EventsPort` are the ports without I/O of their own:
they store a value and return (the runtime sends Events from a thread of its own).

What it must never do: grow a method that blocks: a port hands back a future, always
(or, :class:`MetricsPort` and :class:`EventsPort`, nothing).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import pykka

from fleet.runtime.aiokit.loop import tell_when_done
from fleet.runtime.kube.events import EventNote
from fleet.runtime.kube.revisions import Listed
from fleet.runtime.nats.kv import KvEntry
from fleet.runtime.nats.kv_publish import WriteResult

T = TypeVar("T")


class RepliesPort(Protocol):
    """Turns a future's outcome into a message for its owner, whenever it completes."""

    def when_done(
        self,
        future: concurrent.futures.Future[T],
        *,
        on_result: Callable[[T], object],
        on_error: Callable[[BaseException], object],
    ) -> None: ...


class TellReplies:
    """:class:`RepliesPort` of an actor: the message is told to ``ref``."""

    def __init__(self, ref: pykka.ActorRef[Any]) -> None:
        self._ref = ref

    def when_done(
        self,
        future: concurrent.futures.Future[T],
        *,
        on_result: Callable[[T], object],
        on_error: Callable[[BaseException], object],
    ) -> None:
        tell_when_done(future, self._ref, on_result=on_result, on_error=on_error)


class KvWriterPort(Protocol):
    def put_many(
        self, bucket: str, items: Sequence[tuple[str, bytes]]
    ) -> concurrent.futures.Future[list[WriteResult]]: ...

    def delete_many(
        self, bucket: str, keys: Sequence[str]
    ) -> concurrent.futures.Future[list[WriteResult]]: ...

    def get_many(
        self, bucket: str, keys: Sequence[str]
    ) -> concurrent.futures.Future[list[KvEntry | BaseException | None]]: ...


class KeyDeleterPort(Protocol):
    def delete_unchanged(
        self, groups: Sequence[Sequence[tuple[str, str, int]]]
    ) -> concurrent.futures.Future[list[str]]:
        """Delete each group's ``(bucket, key, revision)`` in order, each only if still at
        that revision; a group stops at its first changed key. One result per group:
        ``"deleted"``, ``"changed"`` or ``"failed: <why>"``."""
        ...


class DeploymentApiPort(Protocol):
    def patch_deployment_status(
        self, *, namespace: str, name: str, status: Mapping[str, Any]
    ) -> concurrent.futures.Future[None]: ...

    def set_deployment_finalizer(
        self, *, namespace: str, name: str, present: bool
    ) -> concurrent.futures.Future[bool]: ...

    # A Deployment's revisions (DeploymentRevision resources; fleet.runtime.kube.revisions)

    def list_revisions(
        self, *, namespace: str, deployment: str, uid: str
    ) -> concurrent.futures.Future[Listed]: ...

    def create_revision(
        self, *, namespace: str, deployment: str, uid: str, number: int, desired: bytes,
        outcome: str | None,
    ) -> concurrent.futures.Future[None]: ...  # fmt: skip

    def record_outcome(
        self, *, namespace: str, name: str, outcome: str, reason: str
    ) -> concurrent.futures.Future[None]: ...

    def delete_revision(self, *, namespace: str, name: str) -> concurrent.futures.Future[None]: ...


class DeviceApiPort(Protocol):
    def list_device_names(self) -> concurrent.futures.Future[list[str]]: ...

    def write_device(
        self,
        *,
        name: str,
        labels: Mapping[str, str | None] | None,
        spec: Mapping[str, Any],
        status: Mapping[str, Any],
        create: bool,
    ) -> concurrent.futures.Future[None]: ...

    def delete_device(self, *, name: str) -> concurrent.futures.Future[None]: ...


class MetricsPort(Protocol):
    """Plain numbers for ``/metrics`` and ``/readyz``; the runtime implements it
    (:class:`fleet.runtime.prometheus.operator_metrics.OperatorMetrics`) and reads what was
    published when scraped: nobody asks an actor.

    Every method returns at once and never fails. Publish aggregates (on a tick, a status
    flush, a change of state), never once per message: at 100,000 devices that is the
    difference between a few calls a second and a few hundred thousand.
    """

    def synced(self) -> None:
        """The fleet index has read every source once (its initial sync)."""
        ...

    def devices_known(self, count: int) -> None:
        """How many devices have an actor (announced themselves, not forgotten)."""
        ...

    def device_online(self, online: bool) -> None:
        """One device's liveness changed (True: it came online; False: it went silent)."""
        ...

    def deployment(
        self, key: tuple[str, str], *, owner: str, counts: Mapping[str, int],
        rollout: tuple[str, int] | None,
    ) -> None:  # fmt: skip
        """A Deployment's figures as its status shows them: ``counts`` its
        ``.status.aggregate``, ``rollout`` its rollout's (phase, revision) if any.
        ``owner`` names the actor, so that a predecessor's :meth:`deployment_gone`
        never removes a successor's figures."""
        ...

    def deployment_gone(self, key: tuple[str, str], *, owner: str) -> None: ...

    def desired_written(self, op: str, ok: int, failed: int, seconds: float) -> None:
        """One batch of desired-state writes (``op``: put or delete) ended after
        ``seconds``, with ``ok`` keys written and ``failed`` not."""
        ...

    def nats_reconnected(self) -> None: ...

    def watch_lag(self, bucket: str, entries: int) -> None:
        """``bucket``'s watch was ``entries`` behind its stream when last sampled."""
        ...

    def status_lag(self, seconds: float) -> None:
        """A Deployment's status patch was acknowledged ``seconds`` after the first change
        it shows reached the Deployment's actor (at most one per status interval)."""
        ...

    def agent_figures(self, totals: Sequence[int], *, reporting: int) -> None:
        """What the agents' heartbeats counted, summed fleet-wide since the operator
        started (in the order of ``fleet.contracts.AGENT_HEALTH_COUNTERS``), and how many
        devices send their counters. Published on the fleet index's tick."""
        ...

    def events_recorded(self, result: str, count: int) -> None:
        """``count`` Kubernetes Event notes ended as ``result``: created, patched (a
        repeat), dropped (the queue was full) or failed (the API refused them)."""
        ...


class NoMetrics:
    """:class:`MetricsPort` that keeps nothing: the default (unit tests, and
    ``fleet-operator --metrics-address off``)."""

    def synced(self) -> None:
        pass

    def devices_known(self, count: int) -> None:
        pass

    def device_online(self, online: bool) -> None:
        pass

    def deployment(
        self, key: tuple[str, str], *, owner: str, counts: Mapping[str, int],
        rollout: tuple[str, int] | None,
    ) -> None:  # fmt: skip
        pass

    def deployment_gone(self, key: tuple[str, str], *, owner: str) -> None:
        pass

    def desired_written(self, op: str, ok: int, failed: int, seconds: float) -> None:
        pass

    def nats_reconnected(self) -> None:
        pass

    def watch_lag(self, bucket: str, entries: int) -> None:
        pass

    def status_lag(self, seconds: float) -> None:
        pass

    def agent_figures(self, totals: Sequence[int], *, reporting: int) -> None:
        pass

    def events_recorded(self, result: str, count: int) -> None:
        pass


NO_METRICS: MetricsPort = NoMetrics()


class EventsPort(Protocol):
    """Kubernetes Events (``kubectl describe``): the runtime implements it
    (:class:`fleet.runtime.kube.event_recorder.EventRecorder`), coalesces, rate-limits and
    sends them off the caller's thread. Returns at once and never fails; a note may be
    dropped (a bounded queue). Post on a change of state, never once per message."""

    def post(self, note: EventNote) -> None: ...


class NoEvents:
    """:class:`EventsPort` that posts nothing (unit tests; ``OperatorConfig(events=None)``)."""

    def post(self, note: EventNote) -> None:
        pass


NO_EVENTS: EventsPort = NoEvents()
