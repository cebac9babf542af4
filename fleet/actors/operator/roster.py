"""The fleet's devices as the fleet index sees them: their actors, and what waits for one.

Why it exists: the fleet index routes every heartbeat, info and report to the device actor
that keeps it, creates that actor when a device announces itself (handing it what arrived
before: :mod:`.strays`), and forgets devices silent for longer than the retention
(:mod:`.retention`, their keys: :mod:`.forgetting`). :class:`DeviceRoster` is that
bookkeeping, apart from the index's other job (Deployments, names and targeting), with
the duplicate-instance detector (:mod:`.duplicates`) and the coarse clock the device
actors' liveness checks run on (:mod:`.clock`, fired at each :meth:`tick`).

Plain and synchronous: it tells device actors (refs), starts them through the factory it
is given, and never waits. What it must never do: start an actor for an id that never
announced itself (device-info), or keep anything of a device its actor keeps.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Iterable
from typing import Any

from fleet.contracts import DeviceId, DeviceInfo
from fleet.runtime.actorkit.coarse_timers import CoarseTimers
from fleet.runtime.actorkit.index import ActorIndex

from . import messages as m
from .agent_figures import AgentFigures
from .duplicates import Change, DuplicateDetector
from .forgetting import KeyDeletions
from .liveness_book import LivenessBook
from .ports import KeyDeleterPort, RepliesPort
from .retention import Forgotten, Retention
from .strays import Strays

logger = logging.getLogger(__name__)

_CHECK = m.LivenessCheck()

# (device, last beat, reports, duplicate instances) -> the new device actor's ref
StartDevice = Callable[[DeviceId, m.Beat | None, tuple[m.Report, ...], tuple[str, ...] | None], Any]


class DeviceRoster:
    def __init__(
        self,
        *,
        start: StartDevice,
        liveness_timeout: float,
        retention: float,
        deleter: KeyDeleterPort | None,
        replies: RepliesPort,
        clock: CoarseTimers | None = None,
        owns_device: Callable[[DeviceId], bool] = lambda _device: True,
    ) -> None:
        """``owns_device``: whether this operator shard deletes a forgotten device's keys
        (:mod:`.shards`; every shard forgets it, one deletes)."""
        self._start = start
        self._owns_device = owns_device
        self.actors: ActorIndex[DeviceId] = ActorIndex(name="devices")
        self.clock = clock if clock is not None else CoarseTimers()
        self._strays = Strays()
        self._beating: set[DeviceId] = set()  # ids with a heartbeat key (the summary's)
        self.retention = Retention(
            retention=retention if deleter is not None else 0.0,
            quiet=liveness_timeout,
            grace=2 * liveness_timeout,
        )
        self.keys = KeyDeletions(deleter=deleter, replies=replies)
        self._duplicates = DuplicateDetector(window=liveness_timeout)
        self.liveness = LivenessBook(timeout=liveness_timeout)  # who is online, in numbers
        self.forgotten = 0
        self.agents = AgentFigures()  # what the agents' heartbeats count, fleet-wide

    def actor(self, device: DeviceId) -> Any:
        """The device's actor, started on first need with what waited for it."""
        ref = self.actors.get(device)
        if ref is None:
            beat, reports = self._strays.take(device)
            ref = self._start(device, beat, reports, self._duplicates.flagged(device))
            self.actors.add(device, ref)
            if beat is not None and beat.when is not None:
                self.liveness.told(device, beat.at)
        return ref

    def report(self, report: m.Report, *, now: float) -> Any:
        """Route one report to its keeper; the device's actor, if it has one."""
        device, retention = report.device, self.retention
        if report.phase is None:
            retention.report_key(device, report.deployment, 0)
        else:
            if report.updated_at is not None:
                retention.seen(device, report.updated_at.timestamp(), now=now)
            retention.report_key(device, report.deployment, report.revision)
        ref = self.actors.get(device)
        if ref is not None:
            ref.tell(report)
        else:
            self._strays.report(report)
        return ref

    def beats(self, beats: Iterable[m.Beat], *, now: float) -> None:
        beats = tuple(beats)
        self.agents.beats(beats)
        retention, get, book = self.retention, self.actors.get, self.liveness
        for beat in beats:
            device = beat.device
            if beat.when is None:
                retention.beat_key(device, 0)
                self._beating.discard(device)
                book.drop(device)
                tell = True
            else:
                # Its actor hears only the beats that change something (liveness_book.py):
                # one message per beat was most of what a heartbeat cost at 100,000 devices.
                tell = book.beat(device, beat.at, now=now)
                retention.seen(device, beat.at, now=now)
                retention.beat_key(device, beat.revision)
                self._beating.add(device)
                if beat.instances:
                    change = self._duplicates.beats(device, beat.instances, now=now)
                    if change is not None:
                        self._duplicate(change)
            ref = get(device)
            if ref is not None:
                if tell:
                    ref.tell(beat)
            else:
                self._strays.beat(beat)  # the latest, always: its actor starts with it

    def info(self, device: DeviceId, info: DeviceInfo | None, revision: int, *, now: float) -> None:
        if info is None:
            self.retention.info_key(device, 0)
            ref = self.actors.get(device)
            if ref is not None:  # an unknown (or forgotten) id makes no actor to delete
                ref.tell(m.DeviceInfoSeen(info=None))
        else:
            self.retention.seen(device, info.updated_at.timestamp(), now=now)
            self.retention.info_key(device, revision)
            self.actor(device).tell(m.DeviceInfoSeen(info=info))

    def _duplicate(self, change: Change) -> None:
        if change.instances is not None:
            logger.warning(
                "device %s: agent instances %s beat interleaved under one device id: two or "
                "more processes use it (a cloned disk or config?)",
                change.device, " and ".join(change.instances),
            )  # fmt: skip
        else:
            logger.info("device %s: one agent instance again", change.device)
        ref = self.actors.get(change.device)
        if ref is not None:
            ref.tell(m.DeviceDuplicate(instances=change.instances))

    def tick(self, *, now: float) -> list[Forgotten]:
        """Fire the liveness checks that are due; forget the devices silent for longer than
        the retention (their actors mark the Device stale and stop; their keys go)."""
        self.clock.fire(now=now)
        for device in self.liveness.expired(now=now):
            ref = self.actors.get(device)
            if ref is not None:
                ref.tell(_CHECK)  # it finds its last beat too old, and goes offline
        forgotten = self.retention.expired(now=now)
        at = datetime.datetime.fromtimestamp(now, tz=datetime.UTC)
        for old in forgotten:
            self.forgotten += 1
            self._strays.drop(old.device)
            self._beating.discard(old.device)
            self._duplicates.drop(old.device)
            self.liveness.drop(old.device)
            self.agents.forget(old.device)
            ref = self.actors.pop(old.device)
            if ref is not None:
                ref.tell(m.DeviceForgotten(at=at))
        if forgotten:
            logger.info(
                "forgot %d devices silent for more than %.0f s (e.g. %s, last heard from %s)",
                len(forgotten), self.retention.retention, forgotten[0].device,
                _when(forgotten[0].last_seen),
            )  # fmt: skip
        owns = self._owns_device
        self.keys.delete([(f.device, f.keys) for f in forgotten if f.keys and owns(f.device)],
                         now=now)  # fmt: skip
        return forgotten

    def summary(self) -> dict[str, int]:
        return {
            "heartbeats": len(self._beating),
            "device_actors": len(self.actors),
            "liveness_checks": len(self.liveness),
            "tracked": len(self.retention),
            "forgotten": self.forgotten,
        }


def _when(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC).isoformat(timespec="seconds")
