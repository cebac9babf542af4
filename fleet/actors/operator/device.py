"""One pooled actor per device: the keeper of its reports and its liveness.

Why it exists: a device's reports (one per deployment) and whether it is reachable are
needed twice: on its Device resource (``kubectl get fleetdev``) and, as its class, in the
aggregate of every Deployment that targets it. This actor is the one place they live.
It composes plain classes: :mod:`.liveness` (its last heartbeat against the timeout; the
fleet index tells it the beats that change something and when the last one expired:
:mod:`.liveness_book`), :mod:`.reports` (its reports, the
revision each targeting Deployment expects, the class last sent to each) and
:mod:`.picture` (its Device resource). A Deployment actor registers with ``Expect``; this
actor answers with ``Classified`` and tells it again whenever the class changes.

The Device resource is written by the mirror (:mod:`.mirror`), which rate-limits: this
actor announces a change once (``MirrorDirty``) and sends its picture when the mirror
pulls it (``MirrorPull``). Forgotten (silent longer than the retention), it sends its last
picture, marked stale, and stops. With operator shards (:mod:`.shards`) it has no mirror
(``mirror`` None) and posts no Events unless its device belongs to this shard.

It exists only for a device that announced itself (device-info); the fleet index hands
it what arrived before (:mod:`.strays`). What it must never do: block (it runs on a
shared pool of a few threads), or talk to Kubernetes itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

import pykka

from fleet.contracts import DeviceId
from fleet.runtime.actorkit.pool import ActorPool
from fleet.runtime.actorkit.pooled import PooledActor
from fleet.runtime.aiokit.timers import TimerPort

from . import messages as m
from .events import DeviceEvents
from .liveness import Liveness
from .picture import DevicePicture
from .ports import NO_EVENTS, NO_METRICS, EventsPort, MetricsPort
from .reports import DeviceReports, Send

logger = logging.getLogger(__name__)


class DeviceActor(PooledActor):
    def __init__(
        self,
        *,
        pool: ActorPool,
        device: DeviceId,
        mirror: pykka.ActorRef[Any] | None,
        timers: TimerPort,
        liveness_timeout: float,
        beat: m.Beat | None = None,
        reports: Iterable[m.Report] = (),
        duplicate: tuple[str, ...] | None = None,
        metrics: MetricsPort = NO_METRICS,
        events: EventsPort = NO_EVENTS,
    ) -> None:
        super().__init__(pool=pool)
        self._metrics = metrics
        self._events = DeviceEvents(device, events)
        self.device = device
        self._mirror = mirror
        self._timers = timers  # kept for the actor's own timers; liveness checks come
        # from the fleet index's liveness book (:mod:`.liveness_book`), not from here
        self._liveness = Liveness(timeout=liveness_timeout)
        self._reports = DeviceReports(device, reports)
        self._picture = DevicePicture(device)
        self._announced = False
        if beat is not None:
            self._beat(beat)
        if duplicate is not None:
            self._picture.set_duplicate(duplicate)

    def on_stop(self) -> None:
        if self._liveness.online:  # forgotten (or the operator stops): it counts no more
            self._metrics.device_online(False)

    def on_receive(self, message: Any) -> Any:
        handler = _HANDLERS.get(type(message))
        picture = self._picture
        if handler is None:
            if isinstance(message, m.MirrorPull):
                self._pulled()
            else:
                logger.warning("device %s: unexpected message %r", self.device, message)
        elif picture.forgotten is not None:
            pass  # forgotten: a newer actor of the same id takes what comes
        elif handler(self, message) and not self._announced and picture.shown:
            if self._mirror is None:
                return None  # another operator shard writes this device's resource
            # Pull, not push: the mirror asks for the picture when it can write it, so a
            # burst of changes costs one snapshot per write, not one per change.
            self._announced = True
            self._mirror.tell(m.MirrorDirty(device=self.device, ref=self.actor_ref))
        return None

    def _pulled(self) -> None:
        assert self._mirror is not None  # only the mirror pulls
        self._announced = False
        picture = self._picture.render(liveness=self._liveness, reports=self._reports)
        if picture is not None:
            self._mirror.tell(picture)
        if self._picture.forgotten is not None:
            self.stop()  # its last picture is with the mirror

    # Each handler returns whether the Device resource's picture changed.

    def _on_info(self, msg: m.DeviceInfoSeen) -> bool:
        self._picture.set_info(msg.info)
        return True

    def _on_beat(self, beat: m.Beat) -> bool:
        self._beat(beat)
        return True

    def _beat(self, beat: m.Beat) -> None:
        now = time.time()
        liveness = self._liveness
        changed = liveness.beat(beat.at, beat.when, now=now)
        if changed or not liveness.online:  # Events: only a change, or a silent device
            self._events.liveness(
                online=liveness.online, changed=changed, known=liveness.at is not None,
                timeout=liveness.timeout,
            )  # fmt: skip
        if changed:
            online = liveness.online
            self._metrics.device_online(online)  # a change of state: rare, not per beat
            self._send(self._reports.classes(online=online))

    def _on_check(self, _msg: m.LivenessCheck) -> bool:
        now = time.time()
        changed = self._liveness.check(now=now)
        if changed:
            self._metrics.device_online(False)
            self._events.liveness(online=False, changed=True, known=True,
                                  timeout=self._liveness.timeout)  # fmt: skip
            self._send(self._reports.classes(online=False))
        return changed

    def _on_report(self, report: m.Report) -> bool:
        sends = self._reports.report(report, self._liveness.online)
        if sends:
            self._send(sends)
        return True

    def _on_duplicate(self, msg: m.DeviceDuplicate) -> bool:
        self._picture.set_duplicate(msg.instances)
        self._events.duplicate(msg.instances)
        return True

    def _on_expect(self, msg: m.Expect) -> bool:
        online = self._liveness.online
        sends = self._reports.expect(msg.deployment, msg.reply, msg.revision, online, msg.answer)
        if sends:
            self._send(sends)
        return False

    def _on_unexpect(self, msg: m.Unexpect) -> bool:
        self._reports.unexpect(msg.deployment, msg.reply)
        return False

    def _on_forgotten(self, msg: m.DeviceForgotten) -> bool:
        self._picture.forgotten = msg.at
        if self._picture.info is None or self._mirror is None:
            self.stop()  # no Device resource to mark (or another shard marks it)
            return False
        return True

    def _send(self, sends: Sequence[Send]) -> None:
        for reply, value in sends:
            try:
                reply.put(value)
            except pykka.ActorDeadError:  # the Deployment actor is gone
                self._reports.drop_ref(reply)


_HANDLERS: dict[type, Any] = {
    m.DeviceInfoSeen: DeviceActor._on_info,
    m.Beat: DeviceActor._on_beat,
    m.LivenessCheck: DeviceActor._on_check,
    m.Report: DeviceActor._on_report,
    m.DeviceDuplicate: DeviceActor._on_duplicate,
    m.Expect: DeviceActor._on_expect,
    m.Unexpect: DeviceActor._on_unexpect,
    m.DeviceForgotten: DeviceActor._on_forgotten,
}
