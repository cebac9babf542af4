"""Fakes behind the operator's ports, for unit tests without servers or actors.

Futures handed out are completed by the test (``complete``/``fail``) or at once
(``auto=True``); a :class:`Replies` turns each completion into the message the actor
would have been told, in completion order.
"""

from __future__ import annotations

import concurrent.futures
import datetime
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from fleet.contracts import DeploymentName, DeviceId, Phase
from fleet.errors import Fenced
from fleet.runtime.kube.client import KubeObject
from fleet.runtime.nats.kv import KvEntry
from fleet.runtime.nats.kv_publish import WriteResult

T = TypeVar("T")


class Switch:
    """A fence a test opens and closes."""

    def __init__(self) -> None:
        self.open = True

    def check(self, what: str) -> None:
        if not self.open:
            raise Fenced(f"{what}: refused (test)")


class Replies:
    """:class:`~fleet.actors.operator.ports.RepliesPort`: messages in ``told``."""

    def __init__(self) -> None:
        self.told: list[object] = []

    def when_done(
        self,
        future: concurrent.futures.Future[T],
        *,
        on_result: Callable[[T], object],
        on_error: Callable[[BaseException], object],
    ) -> None:
        def done(f: concurrent.futures.Future[T]) -> None:
            exc = f.exception()
            self.told.append(on_error(exc) if exc is not None else on_result(f.result()))

        future.add_done_callback(done)

    def take(self) -> list[object]:
        told, self.told = self.told, []
        return told


class Call:
    def __init__(self, op: str, bucket: str, args: Sequence[Any]) -> None:
        self.op, self.bucket, self.args = op, bucket, list(args)
        self.future: concurrent.futures.Future[Any] = concurrent.futures.Future()


class Writer:
    """:class:`~fleet.actors.operator.ports.KvWriterPort` recording every call.

    With ``auto``, puts and deletes succeed at once with revisions counting from 100,
    and reads answer from ``entries``."""

    def __init__(self, *, auto: bool = False) -> None:
        self.auto = auto
        self.calls: list[Call] = []
        self.revision = 100
        self.entries: dict[str, KvEntry] = {}

    def _call(self, op: str, bucket: str, args: Sequence[Any]) -> concurrent.futures.Future[Any]:
        call = Call(op, bucket, args)
        self.calls.append(call)
        if self.auto:
            if op == "get":
                call.future.set_result([self.entries.get(k) for k in args])
            else:
                call.future.set_result(self.revisions(len(args)))
        return call.future

    def revisions(self, n: int) -> list[WriteResult]:
        out: list[WriteResult] = list(range(self.revision, self.revision + n))
        self.revision += n
        return out

    def put_many(
        self, bucket: str, items: Sequence[tuple[str, bytes]]
    ) -> concurrent.futures.Future[list[WriteResult]]:
        return self._call("put", bucket, items)

    def delete_many(
        self, bucket: str, keys: Sequence[str]
    ) -> concurrent.futures.Future[list[WriteResult]]:
        return self._call("delete", bucket, keys)

    def get_many(
        self, bucket: str, keys: Sequence[str]
    ) -> concurrent.futures.Future[list[KvEntry | BaseException | None]]:
        return self._call("get", bucket, keys)

    def keys(self, op: str) -> list[str]:
        return [a if isinstance(a, str) else a[0] for c in self.calls if c.op == op for a in c.args]


class Deleter:
    """:class:`~fleet.actors.operator.ports.KeyDeleterPort`: answers each group from
    ``results`` (default ``"deleted"``)."""

    def __init__(self, results: Sequence[str] | None = None) -> None:
        self.results = list(results or [])
        self.groups: list[list[tuple[str, str, int]]] = []

    def delete_unchanged(
        self, groups: Sequence[Sequence[tuple[str, str, int]]]
    ) -> concurrent.futures.Future[list[str]]:
        self.groups.extend(list(g) for g in groups)
        future: concurrent.futures.Future[list[str]] = concurrent.futures.Future()
        future.set_result([self.results.pop(0) if self.results else "deleted" for _ in groups])
        return future


class Ref:
    """Stands for an actor ref: records what it is told."""

    def __init__(self, name: str = "ref") -> None:
        self.name = name
        self.told: list[object] = []

    def __repr__(self) -> str:
        return f"<Ref {self.name}>"

    def tell(self, message: object) -> None:
        self.told.append(message)


class Clock:
    """A settable clock."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def obj(
    name: str = "web",
    namespace: str = "ns",
    *,
    created: str = "2024-01-01T00:00:00Z",
    spec: bytes | None = None,
    deleting: bool = False,
    finalizers: tuple[str, ...] = (),
    generation: int = 1,
) -> KubeObject:
    return KubeObject(
        namespace=namespace, name=name, uid=f"uid-{namespace}-{name}", generation=generation,
        resource_version="1", creation_timestamp=created,
        deletion_timestamp="2024-01-02T00:00:00Z" if deleting else None,
        finalizers=finalizers, spec=spec if spec is not None else spec_json(),
    )  # fmt: skip


SCORE = b'{"type":"podman","containers":[{"name":"w","image":"registry.example/w:1"}]}'


def spec_json(selector: bytes = b"{}", score: bytes = SCORE) -> bytes:
    return b'{"selector":' + selector + b',"score":' + score + b"}"


def at(seconds: float = 0.0) -> datetime.datetime:
    return datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(seconds=seconds)


def report(
    device: str = "d1",
    deployment: str = "web",
    phase: Phase | None = Phase.RUNNING,
    *,
    desired_revision: int = 1,
    message: str | None = None,
    revision: int = 7,
) -> Any:
    from fleet.actors.operator.messages import Report

    return Report(
        device=DeviceId(device), deployment=DeploymentName(deployment), phase=phase,
        desired_revision=desired_revision, message=message,
        updated_at=at() if phase is not None else None, revision=revision,
    )  # fmt: skip


def labels(**kw: str) -> Mapping[str, str]:
    return dict(kw)


class Api:
    """:class:`DeploymentApiPort` and :class:`DeviceApiPort`: records, always succeeds."""

    def __init__(self) -> None:
        self.statuses: list[Mapping[str, Any]] = []
        self.finalizers: list[bool] = []
        self.revisions: dict[tuple[str, str], Any] = {}

    @staticmethod
    def _done(value: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        future.set_result(value)
        return future

    def patch_deployment_status(
        self, *, namespace: str, name: str, status: Mapping[str, Any]
    ) -> concurrent.futures.Future[None]:
        self.statuses.append(status)
        return self._done(None)

    def set_deployment_finalizer(
        self, *, namespace: str, name: str, present: bool
    ) -> concurrent.futures.Future[bool]:
        self.finalizers.append(present)
        return self._done(True)

    # revisions: kept in a dict by (namespace, name)

    def list_revisions(
        self, *, namespace: str, deployment: str, uid: str
    ) -> concurrent.futures.Future[Any]:
        from fleet.runtime.kube.revisions import Listed

        records = [r for (ns, _), r in sorted(self.revisions.items()) if ns == namespace
                   and r.name.rsplit("-r", 1)[0] == deployment]  # fmt: skip
        return self._done(Listed(sorted(records), []))

    def create_revision(
        self, *, namespace: str, deployment: str, uid: str, number: int, desired: bytes,
        outcome: str | None,
    ) -> concurrent.futures.Future[None]:  # fmt: skip
        from fleet.runtime.kube.revisions import RevisionRecord, revision_name

        name = revision_name(deployment, number)
        self.revisions[(namespace, name)] = RevisionRecord(number, desired, outcome, "", name)
        return self._done(None)

    def record_outcome(
        self, *, namespace: str, name: str, outcome: str, reason: str
    ) -> concurrent.futures.Future[None]:
        record = self.revisions[(namespace, name)]
        self.revisions[(namespace, name)] = record._replace(outcome=outcome, reason=reason)
        return self._done(None)

    def delete_revision(self, *, namespace: str, name: str) -> concurrent.futures.Future[None]:
        self.revisions.pop((namespace, name), None)
        return self._done(None)


class Timers:
    """:class:`TimerPort` that tells at once, but for the message types in ``hold``."""

    def __init__(self, *, hold: tuple[type, ...] = ()) -> None:
        self.hold = hold
        self.held: list[object] = []

    def tell_later(self, ref: Any, message: object, *, delay: float) -> Any:
        if isinstance(message, self.hold):
            self.held.append(message)
        else:
            ref.tell(message)
        return None


def eventually(check: Callable[[], object], *, timeout: float = 5.0) -> None:
    """Poll ``check`` (a bool, or raising AssertionError) until it holds."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            if check() in (True, None):
                return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {check}")
        time.sleep(0.01)
