"""The shard map: how many operator shards write now, so a change of count never writes twice.

Why it exists: shard ``I`` of ``N`` owns the Deployments whose name hashes to ``I``
(:mod:`fleet.actors.operator.shards`), and holds its own leader Lease (``<name>`` for one
shard, ``<name>-shard-<I>`` for more; each says its count in the annotation
``fleet.nationtech.io/shards``). A shard's Lease alone is not enough when the count
changes: going from 2 shards to 3, a Deployment owned by old shard 0 may belong to new
shard 2, whose Lease no old replica ever held. So every shard, after it takes its Lease
and before it writes anything, passes this gate:

* the shard map is one more Lease, ``<name>-shards``, whose annotation holds the count
  that may write (made by the first shard to pass, with its count);
* a shard whose count the map holds passes once no Lease of *another* count is held
  (held: a holder is set and the record changed within its duration, as this replica
  observed it, the rule the elector itself follows, so no clock is compared);
* a shard whose count the map does not hold waits until no Lease of another count than
  its own is held, then writes its count into the map (a compare-and-swap on the map's
  resourceVersion), then passes by the rule above. A shard of the old count that took its
  Lease meanwhile sees the new count in the map and never writes; one that already leads
  steps down when the map changes (:meth:`ShardMap.keep`).

So a count change hands over the way a failover does: the new count starts writing once
the last replica of the old count has released its Lease (a rolling update's clean stop)
or let it lapse, never while one still may write (docs/operator.md, "Shards").

What it must never do: pass while a Lease of another count is held, or crash on a Lease
the API answers (hostile bytes: read bounded and checked, an unreadable count counts as
another count).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable

import kubernetes

from fleet.errors import FleetError
from fleet.runtime.kube.errors import KubeConflict, KubeNotFound
from fleet.runtime.kube.lease import LeaseApi, LeaseRecord, LeaseTiming

logger = logging.getLogger(__name__)

SHARDS_ANNOTATION = "fleet.nationtech.io/shards"
_MAX_SHARDS = 64
_WROTE = "the shard map was just written"  # a reason to look again at once, not to wait


def shard_lease_name(base: str, *, count: int, index: int) -> str:
    """The leader Lease of shard ``index`` of ``count`` (one shard: ``base`` itself)."""
    return base if count == 1 else f"{base}-shard-{index}"


def lease_count(lease: LeaseRecord, base: str) -> int | None:
    """The shard count a shard Lease says (None: unreadable). ``base`` without the
    annotation is an operator from before shards: one shard."""
    text = (lease.metadata.annotations or {}).get(SHARDS_ANNOTATION)
    if text is None:
        return 1 if lease.metadata.name == base else None
    try:
        count = int(text)
    except ValueError:
        return None
    return count if 1 <= count <= _MAX_SHARDS else None


class ShardMap:
    """The gate of one shard (``count``, its Lease ``mine``) in ``namespace``."""

    def __init__(
        self,
        api_client: kubernetes.client.ApiClient,
        *,
        namespace: str,
        base: str,
        count: int,
        index: int,
        timing: LeaseTiming | None = None,
        request_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.namespace = namespace
        self.base = base
        self.count = count
        self.mine = shard_lease_name(base, count=count, index=index)
        self.map_name = f"{base}-shards"
        self.timing = timing or LeaseTiming()
        self._timeout = min(request_timeout, self.timing.retry_period * 2)
        self._api = LeaseApi(api_client, namespace=namespace, timeout=self._timeout)
        self._clock = clock
        self._observed: dict[str, tuple[tuple[str | None, str | None, str], float]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.passed = False  # wait() returned True: this shard may write

    # -- the gate -----------------------------------------------------------------------

    def wait(self, stop: threading.Event, *, log_every: float = 30.0) -> bool:
        """Block until this shard may write (True) or ``stop`` is set (False)."""
        logged = float("-inf")  # the first reason to wait is said at once
        while not stop.is_set():
            try:
                why = self.step()
            except FleetError as exc:
                why = f"the shard map is unreadable: {exc}"
            except Exception as exc:  # a surprise must not end the wait
                logger.exception("shard map %s: unexpected error", self.where)
                why = f"unexpected error: {exc!r}"
            if why is None:
                self.passed = True
                logger.info("shard map %s: %d shards write; this one passes", self.where,
                            self.count)  # fmt: skip
                return True
            if self._clock() - logged >= log_every:
                logger.info("waiting to write as one of %d shards: %s", self.count, why)
                logged = self._clock()
            stop.wait(self.timing.retry_period)
        return False

    @property
    def where(self) -> str:
        return f"{self.namespace}/{self.map_name}"

    def step(self) -> str | None:
        """One look (after a write to the map, one more at once): None when this shard may
        write, else why it may not yet."""
        why = self._look()
        return self._look() if why is _WROTE else why

    def _look(self) -> str | None:
        others = self.held_elsewhere()
        if others:
            return "Leases of another shard count are held: " + ", ".join(
                f"{name} ({'unreadable count' if c is None else c})" for name, c in others
            )
        try:
            current = self._read_map()
        except KubeNotFound:
            self._create_map()
            return _WROTE
        count = lease_count(current, base="")
        if count == self.count:
            return None
        self._patch_map(current.metadata.resource_version)
        logger.warning(
            "shard map %s: the shard count changes from %s to %d (no Lease of another "
            "count is held)", self.where, count, self.count,
        )  # fmt: skip
        return _WROTE

    def held_elsewhere(self) -> list[tuple[str, int | None]]:
        """The shard Leases held with another count than this shard's (name, count)."""
        out: list[tuple[str, int | None]] = []
        now = self._clock()
        seen: set[str] = set()
        for lease in self._list():
            name = lease.metadata.name
            if name != self.base and not name.startswith(f"{self.base}-shard-"):
                continue
            seen.add(name)
            spec = lease.spec
            holder = spec.holder_identity or None
            record = (holder, spec.renew_time, lease.metadata.resource_version)
            before = self._observed.get(name)
            if before is None or before[0] != record:
                self._observed[name] = (record, now)
                changed_at = now
            else:
                changed_at = before[1]
            duration = spec.lease_duration_seconds or self.timing.duration
            if holder is None or now >= changed_at + duration:
                continue  # released, or not renewed for its duration: lapsed
            count = lease_count(lease, self.base)
            if count != self.count:
                out.append((name, count))
        for gone in set(self._observed) - seen:
            del self._observed[gone]
        return out

    # -- while writing ------------------------------------------------------------------

    def keep(self, on_changed: Callable[[str], None]) -> None:
        """Look at the map every retry period on a thread; ``on_changed(reason)`` once if it
        holds another count (this shard must stop writing). Stopped by :meth:`stop`."""
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._watch, args=(on_changed,), name="shard-map", daemon=True
        )
        self._thread.start()

    def _watch(self, on_changed: Callable[[str], None]) -> None:
        while not self._stop.wait(self.timing.retry_period):
            try:
                count = lease_count(self._read_map(), base="")
            except FleetError as exc:
                logger.debug("shard map %s: %s", self.where, exc)
                continue
            except Exception:
                logger.exception("shard map %s: unexpected error", self.where)
                continue
            if count != self.count:
                reason = (
                    f"the shard map {self.where} says {count} shards now; this replica runs "
                    f"as one of {self.count}: stepping down"
                )
                logger.error("%s", reason)
                on_changed(reason)
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self._timeout + self.timing.retry_period)

    # -- the API ------------------------------------------------------------------------

    def _list(self) -> list[LeaseRecord]:
        return self._api.list()

    def _read_map(self) -> LeaseRecord:
        return self._api.read(self.map_name)

    def _create_map(self) -> None:
        spec = {"holderIdentity": f"shards={self.count}", "renewTime": _now()}
        try:
            self._api.create(
                self.map_name, spec=spec, annotations={SHARDS_ANNOTATION: str(self.count)}
            )
        except KubeConflict:
            return  # another shard made it first: looked at next time

    def _patch_map(self, resource_version: str) -> None:
        body = {
            "metadata": {
                "resourceVersion": resource_version,
                "annotations": {SHARDS_ANNOTATION: str(self.count)},
            },
            "spec": {"holderIdentity": f"shards={self.count}", "renewTime": _now()},
        }
        try:
            self._api.patch(self.map_name, body)
        except KubeConflict:
            return  # changed in between: looked at next time


def _now() -> str:
    return dt.datetime.now(tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
