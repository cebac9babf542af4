"""Source actors: one per watched KV bucket, one for the Kubernetes Deployment watches.

Why they exist: the watches deliver raw entries (on the loop thread) and raw objects (on
watcher threads); these actors turn them into the operator's typed messages off those
threads, so decoding never slows a watch. Entries are decoded by the contracts' decoder
of their bucket (:mod:`fleet.contracts.entries`: key and value checked together), as
every reader does. A malformed entry (bad key, bad JSON, a field that breaks the
contract, a key and a value naming different devices) is skipped and logged with its
bucket, key and revision, rate-limited (:mod:`.skiplog`); it never stops the others.
Every batch but the heartbeats' is reduced to each key's latest entry before decoding
(the heartbeats' sequence shows two agents beating under one id); a heartbeat that differs
from its key's last one only in ``at`` and ``seq`` is not decoded in full
(:mod:`.beat_reader`).

What they must never do: block, forward anything they could not decode, or die of an
entry (any exception from decoding one entry skips that entry).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import pykka

from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_HEARTBEAT,
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
    DeviceId,
    DeviceInfo,
    decode_info_entry,
    decode_report_entry,
    parse_desired_state_key,
    parse_device_heartbeat_key,
)
from fleet.errors import ContractError
from fleet.runtime.actorkit.failfast import SupervisedActor
from fleet.runtime.aiokit.timers import TimerPort
from fleet.runtime.kube.client import KubeObject
from fleet.runtime.nats.kv import KvEntry

from . import messages as m
from .beat_reader import BeatReader, Read
from .skiplog import SkipLog

logger = logging.getLogger(__name__)

Decoder = Callable[[tuple[KvEntry, ...], SkipLog], m.Msg]
T = TypeVar("T")


def _unexpected(skips: SkipLog, entry: KvEntry, exc: Exception) -> None:
    # The decoders are total (ContractError only): anything else is a bug in fleet. It is
    # logged with its traceback, and the entry skipped like any other bad one: a hostile
    # entry must never kill the source (the process would exit, restart, read it again).
    skips.skip(entry.key, f"unexpected {type(exc).__name__}: {exc}", exc=exc)


def _each(entries: tuple[KvEntry, ...], skips: SkipLog, decode: Callable[[KvEntry], T]) -> list[T]:
    """``decode`` every entry; one that fails is skipped (and logged, rate-limited)."""
    out: list[T] = []
    for e in entries:
        try:
            out.append(decode(e))
        except ContractError as exc:
            skips.skip(e.key, f"revision {e.revision}: {exc}")
        except Exception as exc:
            _unexpected(skips, e, exc)
    return out


def _desired(e: KvEntry) -> m.DesiredEntry:
    # The value is kept as bytes, never decoded: the Deployment actor compares it with
    # what it would write and rewrites it if it differs, whatever it holds.
    device, deployment = parse_desired_state_key(e.key)
    value = None if e.deleted else bytes(e.value)
    return m.DesiredEntry(device=device, deployment=deployment, revision=e.revision, value=value)


def _desireds(entries: tuple[KvEntry, ...], skips: SkipLog) -> m.Msg:
    return m.DesiredSeen(entries=tuple(_each(entries, skips, _desired)))


def _report(e: KvEntry) -> m.Report:
    entry = decode_report_entry(e.key, e.value, deleted=e.deleted)
    state = entry.state
    if state is None:
        return m.Report(
            device=entry.device, deployment=entry.deployment, phase=None, desired_revision=-1,
            message=None, updated_at=None, revision=e.revision,
        )  # fmt: skip
    return m.Report(
        device=entry.device,
        deployment=entry.deployment,
        phase=state.phase,
        desired_revision=state.desired_revision,
        message=state.message,
        updated_at=state.updated_at,
        unhealthy=state.health == "unhealthy",
        revision=e.revision,
    )


def _reports(entries: tuple[KvEntry, ...], skips: SkipLog) -> m.Msg:
    return m.ReportsSeen(reports=tuple(_each(entries, skips, _report)))


def _info(e: KvEntry) -> tuple[DeviceId, DeviceInfo | None, int]:
    entry = decode_info_entry(e.key, e.value, deleted=e.deleted)
    return (entry.device, entry.info, e.revision)


def _infos(entries: tuple[KvEntry, ...], skips: SkipLog) -> m.Msg:
    return m.InfosSeen(infos=tuple(_each(entries, skips, _info)))


def _beat(entries: list[KvEntry], skips: SkipLog, reader: BeatReader) -> m.Beat | None:
    """One key's beats of a batch: the latest, with every beat's instance id in order.

    Every entry is read (not only the latest): A, B, A for one key is two agents. The
    reader decodes in full only a beat that may say something new (:mod:`.beat_reader`)."""
    last = entries[-1]
    instances: list[str] = []
    latest: tuple[KvEntry, Read] | None = None
    for e in entries:
        if e.deleted:
            latest = None
            reader.forget(e.key)
            continue
        try:
            beat = reader.read(e.key, e.value)
        except ContractError as exc:
            skips.skip(e.key, f"revision {e.revision}: {exc}")
            continue
        latest = (e, beat)
        if beat.instance is not None:
            instances.append(beat.instance)
    if last.deleted:
        device = parse_device_heartbeat_key(last.key)
        return m.Beat(device=device, at=0.0, when=None, revision=last.revision)
    if latest is None:
        return None
    entry, beat = latest
    return m.Beat(
        device=beat.device,  # the key's: the reader checked that the value names it
        at=beat.when.timestamp(),
        when=beat.when,
        revision=entry.revision,
        instances=tuple(instances),
        health=beat.health,
        repeat=beat.repeat and len(entries) == 1,
    )


def _beats(entries: tuple[KvEntry, ...], skips: SkipLog, reader: BeatReader) -> m.Msg:
    # Not reduced to each key's latest entry first (as the other buckets are): A, B, A
    # in one batch is two agents beating under one id, and only the sequence shows it.
    by_key: dict[str, list[KvEntry]] = {}
    for e in entries:
        by_key.setdefault(e.key, []).append(e)
    out: list[m.Beat] = []
    for key, runs in by_key.items():
        try:
            beat = _beat(runs, skips, reader)
        except ContractError as exc:
            skips.skip(key, f"revision {runs[-1].revision}: {exc}")
            continue
        except Exception as exc:
            _unexpected(skips, runs[-1], exc)
            continue
        if beat is not None:
            out.append(beat)
    return m.BeatsSeen(beats=tuple(out))


def latest_per_key(entries: tuple[KvEntry, ...]) -> tuple[KvEntry, ...]:
    """Each key's last entry of a batch, in the order of those last entries.

    Only a key's latest value counts for the fleet's picture, and under load one batch
    holds a device's Pending, Pulling, Starting and Running at once: decoding and
    indexing the three superseded ones was most of the operator's work per report.
    """
    if len(entries) < 2:
        return entries
    latest: dict[str, KvEntry] = {}
    for entry in entries:
        latest.pop(entry.key, None)
        latest[entry.key] = entry
    return entries if len(latest) == len(entries) else tuple(latest.values())


DECODERS: dict[str, Decoder] = {
    BUCKET_DESIRED_STATE: _desireds,
    BUCKET_DEVICE_STATE: _reports,
    BUCKET_DEVICE_INFO: _infos,
    BUCKET_DEVICE_HEARTBEAT: lambda entries, skips: _beats(entries, skips, BeatReader()),
}
COALESCED: frozenset[str] = frozenset(DECODERS) - {BUCKET_DEVICE_HEARTBEAT}
"""Buckets whose batches are reduced to each key's latest entry before decoding."""


class _FlushSkips(m.Msg, frozen=True, kw_only=True):
    pass


class KvSource(SupervisedActor):
    """Decodes one bucket's entries and tells the fleet index."""

    def __init__(
        self,
        *,
        bucket: str,
        index: pykka.ActorRef[Any],
        timers: TimerPort | None = None,
        skip_window: float = 10.0,
        tap: Callable[[m.Msg], None] | None = None,
    ) -> None:
        """``tap``: also handed each decoded batch (the dashboard's feed: it must not block)."""
        super().__init__()
        self._tap = tap
        self.bucket = bucket
        self._decode = DECODERS[bucket]
        if bucket == BUCKET_DEVICE_HEARTBEAT:  # its reader keeps each key's last shape
            self._decode = functools.partial(_beats, reader=BeatReader())
        self._coalesce = bucket in COALESCED
        self._index = index
        self._timers = timers
        self.skips = SkipLog(logger, what=f"entries of {bucket}", prefix=f"{bucket}/",
                             window=skip_window)  # fmt: skip
        self._flush_armed = False

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, m.KvBatch):
            entries = latest_per_key(message.entries) if self._coalesce else message.entries
            decoded = self._decode(entries, self.skips)
            self._index.tell(decoded)
            if self._tap is not None:
                self._tap(decoded)
        elif isinstance(message, m.KvSynced):
            self._index.tell(m.SourceSynced(source=self.bucket))
        elif isinstance(message, _FlushSkips):
            self._flush_armed = False
            self.skips.flush()
        if self.skips.pending and not self._flush_armed and self._timers is not None:
            self._flush_armed = True
            self._timers.tell_later(self.actor_ref, _FlushSkips(), delay=self.skips.window)
        return None


class KubeSource(SupervisedActor):
    """Forwards the Deployment watches' lists and events to the fleet index, in order."""

    def __init__(
        self, *, index: pykka.ActorRef[Any], scopes: int, tap: Callable[[m.Msg], None] | None = None
    ) -> None:
        super().__init__()
        self._index = index
        self._tap = tap
        self._unsynced = scopes

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, m.DeploymentsListed):
            self._index.tell(message)
            if self._unsynced > 0:
                self._unsynced -= 1
                if self._unsynced == 0:
                    self._index.tell(m.SourceSynced(source="kubernetes"))
        elif isinstance(message, m.DeploymentEvent):
            self._index.tell(message)
        if self._tap is not None and isinstance(message, m.DeploymentsListed | m.DeploymentEvent):
            self._tap(message)
        return None

    @staticmethod
    def listed(ref: pykka.ActorRef[Any]) -> Callable[[str | None, tuple[KubeObject, ...]], None]:
        return lambda scope, objects: ref.tell(m.DeploymentsListed(scope=scope, objects=objects))

    @staticmethod
    def event(ref: pykka.ActorRef[Any]) -> Callable[[str, KubeObject], None]:
        return lambda kind, obj: ref.tell(m.DeploymentEvent(type=kind, obj=obj))
