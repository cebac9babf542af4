"""Leader election on a ``coordination.k8s.io/v1`` Lease: which operator replica may write.

Why it exists: two operator replicas make the operator survive a node loss, but two
writers would fight over every desired entry and status. The replicas elect one leader
on a Lease, the way client-go's ``leaderelection`` does (and with its timing rules):

* a candidate takes the Lease when nobody holds it, or when the holder's record has not
  changed for ``duration`` seconds *as this candidate observed it* (its own monotonic
  clock: no trust in anyone's wall clock), with a compare-and-swap on
  ``resourceVersion``, so two candidates never both win;
* the leader renews every ``retry_period``; a renewal that has not succeeded for
  ``renew_deadline`` seconds (the API away, the process stalled) loses the lead;
* the **fence** (:meth:`LeaseElector.check`, a :class:`~fleet.runtime.fencing.WriteFence`):
  writes are allowed only until ``renew_deadline`` after the start of the last successful
  renewal. Another replica cannot take over before ``duration`` after it saw that
  renewal, which came later; so with ``duration > renew_deadline`` a deposed leader has
  stopped writing ``duration - renew_deadline`` seconds (5 s by default) before anyone
  else may start;
* on a clean stop the leader releases the Lease (holder cleared), so a rolling update
  fails over at once instead of after ``duration``.

The client-go timing is kept (15 s / 10 s / 2 s). The Python client's own
``leaderelection`` package is not used: it replaces the Lease with PUT and never stops
trying, and it has no fence.

What it must never do: extend the fence past what the last successful renewal allows,
or let a Lease the API answers (hostile bytes) crash it: it is read bounded and checked.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import kubernetes
import msgspec

from fleet.contracts.limits import json_depth
from fleet.errors import ConfigError, Fenced, FleetError
from fleet.runtime.kube.errors import KubeConflict, KubeError, KubeNotFound, translate

logger = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
_MAX_LEASE_BYTES = 64 * 1024
_MAX_DEPTH = 32


@dataclasses.dataclass(frozen=True)
class LeaseTiming:
    """client-go's defaults: 15 s lease, 10 s renew deadline, 2 s retry period."""

    duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.duration > self.renew_deadline > self.retry_period > 0:
            raise ConfigError(
                "leader election needs lease duration > renew deadline > retry period > 0, "
                f"got {self.duration} / {self.renew_deadline} / {self.retry_period} s"
            )


class _Meta(msgspec.Struct, rename="camel"):
    resource_version: str = ""
    name: str = ""
    annotations: dict[str, str] | None = None


class _Spec(msgspec.Struct, rename="camel"):
    holder_identity: str | None = None
    lease_duration_seconds: int | None = None
    acquire_time: str | None = None
    renew_time: str | None = None
    lease_transitions: int | None = None


class LeaseRecord(msgspec.Struct):
    metadata: _Meta = msgspec.field(default_factory=_Meta)
    spec: _Spec = msgspec.field(default_factory=_Spec)


_DECODER = msgspec.json.Decoder(LeaseRecord)


def decode_lease(data: bytes) -> LeaseRecord:
    """A Lease as the API answered it, bounded; :class:`KubeError` if it is not one."""
    if len(data) > _MAX_LEASE_BYTES or json_depth(data) > _MAX_DEPTH:
        raise KubeError(f"the Lease answered is too large or too deep ({len(data)} bytes)")
    try:
        lease = _DECODER.decode(data)
    except msgspec.MsgspecError as exc:
        raise KubeError(f"the Lease answered is malformed: {exc}") from exc
    return _sane(lease)


def _sane(lease: LeaseRecord) -> LeaseRecord:
    spec = lease.spec
    if spec.lease_duration_seconds is not None and not 0 < spec.lease_duration_seconds <= 3600:
        spec.lease_duration_seconds = None  # absurd: read as "not said", the default applies
    return lease


def _micro_time(now: dt.datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _LeaseList(msgspec.Struct):
    items: list[LeaseRecord] = msgspec.field(default_factory=list)


_LIST_DECODER = msgspec.json.Decoder(_LeaseList)
_MAX_LIST_BYTES = 4 * 1024 * 1024


class LeaseApi:
    """The Lease calls of one namespace, raw (bounded reads, errors translated): what the
    elector and the shard map (:mod:`fleet.runtime.kube.shard_map`) both ask."""

    def __init__(
        self, api_client: kubernetes.client.ApiClient, *, namespace: str, timeout: float
    ) -> None:
        self._api: Any = kubernetes.client.CoordinationV1Api(api_client)  # raw responses
        self.namespace = namespace
        self.timeout = timeout

    def read(self, name: str) -> LeaseRecord:
        try:
            resp = self._api.read_namespaced_lease(
                name, self.namespace, _preload_content=False, _request_timeout=self.timeout
            )
            try:
                data: bytes = resp.read()
            finally:
                resp.release_conn()
        except Exception as exc:
            raise translate(exc, what=f"get lease {self.namespace}/{name}") from exc
        return decode_lease(data)

    def list(self) -> list[LeaseRecord]:
        what = f"list leases in {self.namespace}"
        try:
            resp = self._api.list_namespaced_lease(
                self.namespace, _preload_content=False, _request_timeout=self.timeout
            )
            try:
                data: bytes = resp.read()
            finally:
                resp.release_conn()
        except Exception as exc:
            raise translate(exc, what=what) from exc
        if len(data) > _MAX_LIST_BYTES or json_depth(data) > _MAX_DEPTH:
            raise KubeError(f"{what}: the answer is too large or too deep ({len(data)} bytes)")
        try:
            leases = _LIST_DECODER.decode(data).items
        except msgspec.MsgspecError as exc:
            raise KubeError(f"{what}: the answer is malformed: {exc}") from exc
        for lease in leases:
            _sane(lease)
        return leases

    def create(self, name: str, *, spec: dict[str, Any], annotations: Mapping[str, str]) -> None:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": name, "namespace": self.namespace,
                **({"annotations": dict(annotations)} if annotations else {}),
            },
            "spec": spec,
        }  # fmt: skip
        try:
            resp = self._api.create_namespaced_lease(
                self.namespace, body, _preload_content=False, _request_timeout=self.timeout
            )
            resp.release_conn()
        except Exception as exc:
            raise translate(exc, what=f"create lease {self.namespace}/{name}") from exc

    def patch(self, name: str, body: dict[str, Any]) -> None:
        """A merge patch (with ``metadata.resourceVersion``: a compare-and-swap)."""
        try:
            resp = self._api.patch_namespaced_lease(
                name, self.namespace, body, _content_type=MERGE_PATCH,
                _preload_content=False, _request_timeout=self.timeout,
            )  # fmt: skip
            resp.release_conn()
        except Exception as exc:
            raise translate(exc, what=f"patch lease {self.namespace}/{name}") from exc


class LeaseElector:
    """One candidate for the Lease ``namespace/name``; also the write fence of its process.

    :meth:`acquire` blocks until this candidate leads (or ``stop`` is set); :meth:`keep`
    renews on a thread of its own and calls ``on_lost`` once if the lead is lost;
    :meth:`release` gives it up. All calls block: never on the event loop.
    """

    def __init__(
        self,
        api_client: kubernetes.client.ApiClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        timing: LeaseTiming | None = None,
        request_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        """``annotations``: written on the Lease whenever this candidate takes it (an
        operator shard's count: :mod:`fleet.runtime.kube.shard_map`)."""
        self.api_client = api_client
        self._annotations = dict(annotations or {})
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.timing = timing or LeaseTiming()
        self._timeout = min(request_timeout, self.timing.retry_period * 2)
        self._api = LeaseApi(api_client, namespace=namespace, timeout=self._timeout)
        self._clock = clock
        self._lock = threading.Lock()
        self._valid_until = 0.0  # the fence: monotonic time writes are allowed until
        self._observed: tuple[str | None, str | None, str] | None = None
        self._observed_at = 0.0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.transitions = 0
        self.led = False  # acquire() succeeded once: no longer a standby

    @property
    def where(self) -> str:
        return f"{self.namespace}/{self.name}"

    # -- the fence --------------------------------------------------------------------

    def holding(self) -> bool:
        """True while this process may write (see the module's rule)."""
        with self._lock:
            return self._clock() < self._valid_until

    def check(self, what: str) -> None:
        if not self.holding():
            raise Fenced(
                f"{what}: refused: this replica ({self.identity}) does not hold the leader "
                f"Lease {self.where}"
            )

    # -- electing ---------------------------------------------------------------------

    def acquire(self, stop: threading.Event, *, log_every: float = 30.0) -> bool:
        """Block until this candidate leads (True) or ``stop`` is set (False)."""
        logger.info("waiting to lead: Lease %s, identity %s", self.where, self.identity)
        logged = self._clock()
        while not stop.is_set():
            if self.try_acquire_or_renew():
                logger.info("leading: holds Lease %s as %s", self.where, self.identity)
                self.led = True
                return True
            if self._clock() - logged >= log_every:
                holder = self._observed[0] if self._observed else None
                logger.info("still waiting to lead: Lease %s is held by %s", self.where, holder)
                logged = self._clock()
            stop.wait(self.timing.retry_period)
        return False

    def try_acquire_or_renew(self) -> bool:
        """One attempt: True when this candidate now holds the Lease (fence extended)."""
        started = self._clock()
        try:
            return self._attempt(started)
        except FleetError as exc:
            logger.debug("Lease %s: %s", self.where, exc)
        except Exception:  # a thread that renews must not die of a surprise
            logger.exception("Lease %s: unexpected error", self.where)
        return False

    def _attempt(self, started: float) -> bool:
        now = dt.datetime.now(tz=dt.UTC)
        try:
            lease = self._read()
        except KubeNotFound:
            self._create(now)
            self._extend(started)
            return True
        spec = lease.spec
        holder = spec.holder_identity or None
        record = (holder, spec.renew_time, lease.metadata.resource_version)
        if record != self._observed:
            self._observed, self._observed_at = record, self._clock()
        mine = holder == self.identity
        if holder is not None and not mine:
            duration = spec.lease_duration_seconds or self.timing.duration
            if self._clock() < self._observed_at + duration:
                return False  # held by another, not expired as far as this candidate saw
        transitions = spec.lease_transitions or 0
        metadata: dict[str, Any] = {"resourceVersion": lease.metadata.resource_version}
        if self._annotations:  # a candidate restarted with other flags says so
            metadata["annotations"] = self._annotations
        body: dict[str, Any] = {
            "metadata": metadata,
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": round(self.timing.duration),
                "renewTime": _micro_time(now),
                "acquireTime": spec.acquire_time if mine else _micro_time(now),
                "leaseTransitions": transitions if mine else transitions + 1,
            },
        }
        try:
            self._patch(body)
        except KubeConflict:
            return False  # someone wrote it in between: look again next period
        if not mine:
            self.transitions = transitions + 1
        self._extend(started)
        return True

    def _extend(self, started: float) -> None:
        with self._lock:
            self._valid_until = max(self._valid_until, started + self.timing.renew_deadline)

    # -- keeping and giving up --------------------------------------------------------

    def keep(self, on_lost: Callable[[str], None]) -> None:
        """Renew every ``retry_period`` on a thread; ``on_lost(reason)`` once when the lead
        is lost (the fence has closed by then). Stopped by :meth:`release`."""
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._renew_loop, args=(on_lost,), name="lease-renew", daemon=True
        )
        self._thread.start()

    def _renew_loop(self, on_lost: Callable[[str], None]) -> None:
        while not self._stop.wait(self.timing.retry_period):
            self.try_acquire_or_renew()
            if not self.holding():
                holder = self._observed[0] if self._observed else None
                reason = (
                    f"lost the leader Lease {self.where}: not renewed for "
                    f"{self.timing.renew_deadline:g} s (last seen holder: {holder})"
                )
                logger.error("%s; writes are fenced off", reason)
                on_lost(reason)
                return

    def release(self) -> None:
        """Stop renewing; if this candidate still holds the Lease, clear its holder so
        another replica takes over at once (a failed release only costs ``duration``)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self._timeout + self.timing.retry_period)
        held = self.holding()
        with self._lock:
            self._valid_until = 0.0  # closed first: nothing writes during the release
        if not held:
            return
        try:
            lease = self._read()
            if lease.spec.holder_identity != self.identity:
                return
            self._patch(
                {
                    "metadata": {"resourceVersion": lease.metadata.resource_version},
                    "spec": {"holderIdentity": None, "leaseDurationSeconds": 1},
                }
            )
            logger.info("released the leader Lease %s", self.where)
        except FleetError as exc:
            logger.warning("could not release the leader Lease %s: %s", self.where, exc)

    # -- the API ------------------------------------------------------------------------

    def _read(self) -> LeaseRecord:
        return self._api.read(self.name)

    def _create(self, now: dt.datetime) -> None:
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": round(self.timing.duration),
            "acquireTime": _micro_time(now),
            "renewTime": _micro_time(now),
            "leaseTransitions": 0,
        }
        self._api.create(self.name, spec=spec, annotations=self._annotations)
        self.transitions = 0

    def _patch(self, body: dict[str, Any]) -> None:
        self._api.patch(self.name, body)
