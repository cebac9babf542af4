"""The device: who it is, what it should run, and one reconciler per deployment.

Why it exists: one actor owns the device-wide facts (its labels and inventory, the
heartbeat, the persisted desired state) and routes everything per deployment (a
desired entry, a podman event, a resync tick) to that deployment's reconciler, starting
and stopping reconcilers as deployments come and go.

Offline autonomy starts here: on start it reconciles from the desired state persisted
under ``state_dir`` before NATS answers, and it persists every entry it receives.

What it must never do: call podman or NATS itself for a deployment (reconcilers do),
block on another actor (it only tells), or stop containers when the agent stops.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import pykka

from fleet import __version__
from fleet.contracts import (
    BUCKET_DEVICE_HEARTBEAT,
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
    DeploymentName,
    DeploymentState,
    DeviceInfo,
    HeartbeatPayload,
    decode_score,
    device_heartbeat_key,
    device_info_key,
    device_state_key,
    encode_heartbeat,
    encode_info,
    encode_state,
    parse_desired_state_key,
)
from fleet.errors import ContractError, FleetError
from fleet.runtime.desired_store import DesiredStore, StoredEntry
from fleet.runtime.failfast import SupervisedActor
from fleet.runtime.inventory import read_inventory
from fleet.runtime.podman import ContainerRuntime, EventStream, owner_labels
from fleet.runtime.publisher import PublisherPort
from fleet.runtime.timers import TimerPort

from .config import AgentConfig
from .messages import (
    Apply,
    Check,
    ContainerChanged,
    DebouncedCheck,
    DesiredChanged,
    EventsBroken,
    HeartbeatTick,
    LabelsChanged,
    ReconcilerIdle,
    Remove,
    ReopenEvents,
    ResyncTick,
)
from .reconciler import DeploymentReconciler

logger = logging.getLogger(__name__)

ReconcilerFactory = Callable[..., pykka.ActorRef[Any]]


class DeviceActor(SupervisedActor):
    def __init__(
        self,
        *,
        config: AgentConfig,
        runtime: ContainerRuntime,
        publisher: PublisherPort,
        store: DesiredStore,
        timers: TimerPort,
        max_backoff: float = 30.0,
        event_debounce: float = 0.3,
    ) -> None:
        super().__init__()
        self._config = config
        self._device = config.device_id
        self._labels = dict(config.labels)
        self._runtime = runtime
        self._publisher = publisher
        self._store = store
        self._timers = timers
        self._max_backoff = max_backoff
        self._debounce = event_debounce
        self._desired: dict[str, StoredEntry] = {}
        self._reconcilers: dict[str, pykka.ActorRef[Any]] = {}
        self._events: EventStream | None = None
        self._seq = 0
        self._info_published = False
        self._checks_pending: set[str] = set()

    # -- lifecycle -------------------------------------------------------------------------

    def on_start(self) -> None:
        self._desired = self._store.load()
        for deployment, stored in self._desired.items():
            self._dispatch(deployment, stored)
        self._publish_info()
        self._open_events()
        self.actor_ref.tell(HeartbeatTick())
        self._timers.tell_later(self.actor_ref, ResyncTick(), delay=self._config.resync_interval_s)

    def on_stop(self) -> None:
        if self._events is not None:
            self._events.close()
            self._events = None
        for ref in self._reconcilers.values():
            ref.stop(block=False)
        for ref in self._reconcilers.values():
            ref.actor_stopped.wait(self._config.stop_timeout_s + 5)
        self._reconcilers.clear()

    # -- messages ------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        handler = self._handlers.get(type(message))
        if handler is not None:
            handler(message)
        return None

    @property
    def _handlers(self) -> dict[type, Callable[[Any], None]]:
        return {
            DesiredChanged: self._on_desired,
            ContainerChanged: self._on_container_changed,
            DebouncedCheck: self._on_debounced_check,
            ResyncTick: self._on_resync,
            HeartbeatTick: lambda _: self._heartbeat(),
            ReconcilerIdle: self._on_idle,
            LabelsChanged: self._on_labels,
            EventsBroken: self._on_events_broken,
            ReopenEvents: self._on_reopen_events,
        }

    def _on_container_changed(self, message: ContainerChanged) -> None:
        deployment = message.event.deployment
        if deployment in self._reconcilers and deployment not in self._checks_pending:
            self._checks_pending.add(deployment)
            self._timers.tell_later(
                self.actor_ref, DebouncedCheck(deployment=deployment), delay=self._debounce
            )

    def _on_debounced_check(self, message: DebouncedCheck) -> None:
        self._checks_pending.discard(message.deployment)
        self._tell(message.deployment, Check(reason="podman event"))

    def _on_resync(self, _: ResyncTick) -> None:
        for deployment in list(self._reconcilers):
            self._tell(deployment, Check(reason="resync"))
        if not self._info_published:
            self._publish_info()
        self._timers.tell_later(self.actor_ref, ResyncTick(), delay=self._config.resync_interval_s)

    def _on_idle(self, message: ReconcilerIdle) -> None:
        if message.deployment not in self._desired:
            ref = self._reconcilers.pop(message.deployment, None)
            if ref is not None:
                ref.stop(block=False)

    def _on_labels(self, message: LabelsChanged) -> None:
        if message.labels != self._labels:
            self._labels = dict(message.labels)
            self._publish_info()

    def _on_events_broken(self, _: EventsBroken) -> None:
        self._events = None
        self._timers.tell_later(self.actor_ref, ReopenEvents(), delay=1.0)

    def _on_reopen_events(self, _: ReopenEvents) -> None:
        self._open_events()
        for deployment in list(self._reconcilers):  # events may have been missed
            self._tell(deployment, Check(reason="events reopened"))

    def _on_desired(self, message: DesiredChanged) -> None:
        entry = message.entry
        try:
            device, deployment = parse_desired_state_key(entry.key)
        except ContractError as exc:
            logger.warning("ignoring desired-state key %r: %s", entry.key, exc)
            return
        if device != self._device:
            return
        if entry.deleted:
            if self._desired.pop(deployment, None) is None and deployment not in self._reconcilers:
                return
            self._persist()
            self._reconciler(deployment).tell(Remove(revision=entry.revision))
            return
        stored = StoredEntry(revision=entry.revision, value=entry.value)
        current = self._desired.get(deployment)
        if current is not None and current.revision == entry.revision:
            return
        self._desired[deployment] = stored
        self._persist()
        self._dispatch(deployment, stored)

    def _dispatch(self, deployment: str, stored: StoredEntry) -> None:
        try:
            name = DeploymentName.try_new(deployment)
        except ContractError as exc:
            logger.warning("ignoring deployment %r: %s", deployment, exc)
            return
        try:
            score = decode_score(stored.value)
            message = Apply(revision=stored.revision, score=score)
        except ContractError as exc:
            message = Apply(
                revision=stored.revision,
                score=None,
                error=f"the desired state of {name!r} is malformed: {exc}",
            )
        self._reconciler(name).tell(message)

    def _reconciler(self, deployment: str) -> pykka.ActorRef[Any]:
        ref = self._reconcilers.get(deployment)
        if ref is None:
            ref = DeploymentReconciler.start(
                device_id=self._device,
                deployment=DeploymentName.try_new(deployment),
                runtime=self._runtime,
                report=self._report_state,
                timers=self._timers,
                parent=self.actor_ref,
                stop_timeout=self._config.stop_timeout_s,
                max_backoff=self._max_backoff,
            )
            self._reconcilers[deployment] = ref
        return ref

    def _tell(self, deployment: str, message: object) -> None:
        ref = self._reconcilers.get(deployment)
        if ref is not None:
            try:
                ref.tell(message)
            except pykka.ActorDeadError:
                self._reconcilers.pop(deployment, None)

    def _persist(self) -> None:
        try:
            self._store.save(self._desired)
        except OSError as exc:
            logger.error(  # noqa: TRY400 - the reason is the message; no traceback needed
                "cannot persist desired state to %s: %s", self._store.path, exc
            )

    # -- reporting --------------------------------------------------------------------------

    def _report_state(self, state: DeploymentState) -> None:
        """Called on reconciler threads: the publisher is thread-safe and never blocks."""
        key = device_state_key(state.device_id, state.deployment)
        self._publisher.publish(BUCKET_DEVICE_STATE, key, encode_state(state))

    def _publish_info(self) -> None:
        try:
            name, version = self._runtime.version()
            self._info_published = True
        except FleetError as exc:
            logger.warning("podman version unknown (%s); will publish it when podman answers", exc)
            name, version = "podman", "unknown"
        info = DeviceInfo(
            device_id=self._device,
            labels=dict(self._labels),
            inventory=read_inventory(runtime_name=name, runtime_version=version),
            agent_version=__version__,
            updated_at=dt.datetime.now(dt.UTC),
        )
        self._publisher.publish(
            BUCKET_DEVICE_INFO, device_info_key(self._device), encode_info(info)
        )

    def _heartbeat(self) -> None:
        beat = HeartbeatPayload(device_id=self._device, at=dt.datetime.now(dt.UTC), seq=self._seq)
        self._seq += 1
        self._publisher.publish(
            BUCKET_DEVICE_HEARTBEAT,
            device_heartbeat_key(self._device),
            encode_heartbeat(beat),
            replay=False,
        )
        self._timers.tell_later(
            self.actor_ref, HeartbeatTick(), delay=self._config.heartbeat_interval_s
        )

    def _open_events(self) -> None:
        ref = self.actor_ref

        def broken(exc: BaseException) -> None:
            with contextlib.suppress(pykka.ActorDeadError):
                ref.tell(EventsBroken(reason=repr(exc)))

        def changed(event: Any) -> None:
            with contextlib.suppress(pykka.ActorDeadError):
                ref.tell(ContainerChanged(event=event))

        try:
            self._events = self._runtime.events(
                labels=owner_labels(self._device), on_event=changed, on_error=broken
            )
        except FleetError as exc:
            broken(exc)
