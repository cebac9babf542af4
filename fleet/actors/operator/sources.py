"""Source actors: one per watched KV bucket, one for the Kubernetes Deployment watches.

Why they exist: the watches deliver raw entries (on the loop thread) and raw objects (on
watcher threads); these actors turn them into the operator's typed messages off those
threads, so decoding never slows a watch. A malformed entry (bad key, bad JSON, a field
that breaks the contract) is logged with its bucket and key and skipped; it never stops
the others.

What they must never do: block, or forward anything they could not decode.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from typing import Any

import pykka

from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_HEARTBEAT,
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
    DeviceId,
    DeviceInfo,
    decode_heartbeat,
    decode_info,
    decode_state,
    parse_desired_state_key,
    parse_device_heartbeat_key,
    parse_device_info_key,
    parse_device_state_key,
)
from fleet.errors import ContractError
from fleet.runtime.failfast import SupervisedActor
from fleet.runtime.kube import KubeObject
from fleet.runtime.kv import KvEntry

from . import messages as m

logger = logging.getLogger(__name__)


def _skip(entry: KvEntry, exc: Exception) -> None:
    logger.warning(
        "skipping malformed entry %s/%s (revision %d): %s",
        entry.bucket,
        entry.key,
        entry.revision,
        exc,
    )


def _desired(entries: tuple[KvEntry, ...]) -> m.Msg:
    out: list[m.DesiredEntry] = []
    for e in entries:
        try:
            device, deployment = parse_desired_state_key(e.key)
        except ContractError as exc:
            _skip(e, exc)
            continue
        value = None if e.deleted else bytes(e.value)
        out.append(
            m.DesiredEntry(device=device, deployment=deployment, revision=e.revision, value=value)
        )
    return m.DesiredSeen(entries=tuple(out))


def _reports(entries: tuple[KvEntry, ...]) -> m.Msg:
    out: list[m.Report] = []
    for e in entries:
        try:
            device, deployment = parse_device_state_key(e.key)
            if e.deleted:
                out.append(
                    m.Report(
                        device=device,
                        deployment=deployment,
                        phase=None,
                        desired_revision=-1,
                        message=None,
                        updated_at=None,
                    )
                )
                continue
            state = decode_state(e.value)
            if state.device_id != device or state.deployment != deployment:
                raise ContractError(  # noqa: TRY301 -- one skip path for every contract error
                    f"value names {state.device_id}/{state.deployment}, key does not"
                )
        except ContractError as exc:
            _skip(e, exc)
            continue
        out.append(
            m.Report(
                device=device,
                deployment=deployment,
                phase=state.phase,
                desired_revision=state.desired_revision,
                message=state.message,
                updated_at=state.updated_at,
            )
        )
    return m.ReportsSeen(reports=tuple(out))


def _infos(entries: tuple[KvEntry, ...]) -> m.Msg:
    out: list[tuple[DeviceId, DeviceInfo | None]] = []
    for e in entries:
        try:
            device = parse_device_info_key(e.key)
            info = None if e.deleted else decode_info(e.value)
            if info is not None and info.device_id != device:
                raise ContractError(  # noqa: TRY301 -- one skip path for every contract error
                    f"value names device {info.device_id!r}, key does not"
                )
        except ContractError as exc:
            _skip(e, exc)
            continue
        out.append((device, info))
    return m.InfosSeen(infos=tuple(out))


def _beats(entries: tuple[KvEntry, ...]) -> m.Msg:
    out: list[tuple[DeviceId, float, datetime.datetime | None]] = []
    for e in entries:
        try:
            device = parse_device_heartbeat_key(e.key)
            if e.deleted:
                out.append((device, 0.0, None))
                continue
            beat = decode_heartbeat(e.value)
        except ContractError as exc:
            _skip(e, exc)
            continue
        out.append((device, beat.at.timestamp(), beat.at))
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


DECODERS: dict[str, Callable[[tuple[KvEntry, ...]], m.Msg]] = {
    BUCKET_DESIRED_STATE: _desired,
    BUCKET_DEVICE_STATE: _reports,
    BUCKET_DEVICE_INFO: _infos,
    BUCKET_DEVICE_HEARTBEAT: _beats,
}


class KvSource(SupervisedActor):
    """Decodes one bucket's entries and tells the fleet index."""

    def __init__(self, *, bucket: str, index: pykka.ActorRef[Any]) -> None:
        super().__init__()
        self.bucket = bucket
        self._decode = DECODERS[bucket]
        self._index = index

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, m.KvBatch):
            self._index.tell(self._decode(latest_per_key(message.entries)))
        elif isinstance(message, m.KvSynced):
            self._index.tell(m.SourceSynced(source=self.bucket))
        return None


class KubeSource(SupervisedActor):
    """Forwards the Deployment watches' lists and events to the fleet index, in order."""

    def __init__(self, *, index: pykka.ActorRef[Any], scopes: int) -> None:
        super().__init__()
        self._index = index
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
        return None

    @staticmethod
    def listed(ref: pykka.ActorRef[Any]) -> Callable[[str | None, tuple[KubeObject, ...]], None]:
        return lambda scope, objects: ref.tell(m.DeploymentsListed(scope=scope, objects=objects))

    @staticmethod
    def event(ref: pykka.ActorRef[Any]) -> Callable[[str, KubeObject], None]:
        return lambda kind, obj: ref.tell(m.DeploymentEvent(type=kind, obj=obj))
