"""The device: who it is, what it should run, and one reconciler per deployment.

Why it exists: one actor owns the device-wide facts (its labels and inventory, the
heartbeat, the persisted desired state) and routes everything per deployment (a
desired entry, a runtime's drift event, a resync tick) to that deployment's reconciler,
starting and stopping reconcilers as deployments come and go. The device's runtimes (one
per score ``type``, :mod:`.runtimes`) are built here once and shared by its reconcilers;
their drift streams are opened here, and its info lists their types.

Offline autonomy starts here: on start it reconciles from the desired state persisted
under ``state_dir`` before NATS answers, and it persists every entry it receives, once
it decoded as a score: a malformed value is reported ``Failed`` and never stored, so
the last valid one stays (and keeps running, and runs again after a reboot). A deletion
is stored too until every container of it is gone, so a crash in the middle of one is
finished on the next start. Containers labelled as this device's own whose deployment
has neither a desired entry nor a reconciler (orphans) are removed: the sweep runs once
the desired state was read from NATS (before that, the file may be behind), then on
every resync.

What it must never do: call a runtime or NATS itself for a deployment (reconcilers and
the sweeper do), block on another actor (it only tells), persist a value before it
decoded, or stop containers when the agent stops.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pykka

from fleet.contracts import DeploymentName, parse_desired_state_key
from fleet.contracts.limits import MAX_TEXT_LENGTH
from fleet.errors import ContractError, FleetError
from fleet.runtime.actorkit.failfast import SupervisedActor
from fleet.runtime.aiokit.timers import TimerPort
from fleet.runtime.host.container_files import device_files
from fleet.runtime.host.desired_store import DesiredStore, StoredDesired
from fleet.runtime.nats.publisher import PublisherPort
from fleet.runtime.podman.port import ContainerRuntime

from .admission import Admission
from .config import AgentConfig
from .crash_loops import DEFAULT_RESTARTS, DEFAULT_WINDOW
from .desired import DesiredBook
from .drift_streams import DriftStreams
from .messages import (
    Check,
    ContainerChanged,
    DebouncedCheck,
    DesiredChanged,
    DesiredSynced,
    EventsBroken,
    HeartbeatTick,
    LabelsChanged,
    OwnedDeployments,
    ReconcilerIdle,
    Remove,
    ReopenEvents,
    ResyncTick,
    Sweep,
)
from .reconciler import DeploymentReconciler
from .reporting import DeviceReporter
from .runtimes.podman import podman_only
from .runtimes.registry import RuntimeRegistry
from .sweeper import OrphanSweeper
from .tally import AgentTally

logger = logging.getLogger(__name__)


class DeviceActor(SupervisedActor):
    def __init__(
        self,
        *,
        config: AgentConfig,
        runtime: ContainerRuntime,
        publisher: PublisherPort,
        store: DesiredStore,
        timers: TimerPort,
        instance_id: str,
        stored: StoredDesired | None = None,
        max_backoff: float = 30.0,
        event_debounce: float = 0.3,
        crash_window: float = DEFAULT_WINDOW,
        crash_restarts: int = DEFAULT_RESTARTS,
        tally: AgentTally | None = None,
        runtimes: RuntimeRegistry | None = None,
    ) -> None:
        super().__init__()
        self._config = config
        self._tally = tally if tally is not None else AgentTally()
        self._device = config.device_id
        self._labels = dict(config.labels)
        if runtimes is None:  # podman only, over ``runtime``
            runtimes = podman_only(
                runtime, device_id=config.device_id, stop_timeout=config.stop_timeout_s,
                max_backoff=max_backoff, crash_window=crash_window,
                crash_restarts=crash_restarts, tally=self._tally,
                files=device_files(config.state_dir),
            )  # fmt: skip
        self._runtimes = runtimes
        self._reporter = DeviceReporter(
            device_id=config.device_id, instance_id=instance_id, publisher=publisher
        )
        self._store = store
        self._stored = stored
        self._timers = timers
        self._reconciler_options: dict[str, Any] = {
            "max_backoff": max_backoff,
            "tally": self._tally,
            "runtimes": runtimes,
        }
        self._debounce = event_debounce
        self._desired = DesiredBook(
            store, runs=runtimes.types, admission=Admission(allow=config.allow_privileges)
        )
        self._reconcilers: dict[str, pykka.ActorRef[Any]] = {}
        self._sweeper: pykka.ActorRef[Any] | None = None
        self._synced = False
        self._drift = DriftStreams(runtimes, self.actor_ref)
        self._info_published = False
        self._checks_pending: set[str] = set()
        self._exits: dict[str, dict[str, int]] = {}  # deployment -> container -> exit code

    # -- lifecycle -------------------------------------------------------------------------

    def on_start(self) -> None:
        stored = self._stored if self._stored is not None else self._store.load()
        self._stored = None
        for deployment, message in self._desired.load(stored):
            self._reconciler(deployment).tell(message)
        self._sweeper = OrphanSweeper.start(
            device_id=self._device, runtimes=self._runtimes, parent=self.actor_ref
        )
        self._publish_info()
        self._drift.open_all()
        self.actor_ref.tell(HeartbeatTick())
        self._timers.tell_later(self.actor_ref, ResyncTick(), delay=self._config.resync_interval_s)

    def on_stop(self) -> None:
        self._drift.close()
        children = [*self._reconcilers.values(), *([self._sweeper] if self._sweeper else [])]
        for ref in children:
            ref.stop(block=False)
        for ref in children:
            ref.actor_stopped.wait(self._config.stop_timeout_s + 5)
        self._reconcilers.clear()
        self._sweeper = None

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
            DesiredSynced: self._on_synced,
            ContainerChanged: self._on_container_changed,
            DebouncedCheck: self._on_debounced_check,
            ResyncTick: self._on_resync,
            HeartbeatTick: lambda _: self._heartbeat(),
            ReconcilerIdle: self._on_idle,
            OwnedDeployments: self._on_owned,
            LabelsChanged: self._on_labels,
            EventsBroken: self._on_events_broken,
            ReopenEvents: self._on_reopen_events,
        }

    def _on_container_changed(self, message: ContainerChanged) -> None:
        event = message.event
        deployment = event.deployment
        if deployment is None or deployment not in self._reconcilers:
            return
        if event.exit_code and event.unit:
            self._exits.setdefault(deployment, {})[event.unit] = event.exit_code
        if deployment not in self._checks_pending:
            self._checks_pending.add(deployment)
            self._timers.tell_later(
                self.actor_ref, DebouncedCheck(deployment=deployment), delay=self._debounce
            )

    def _on_debounced_check(self, message: DebouncedCheck) -> None:
        self._checks_pending.discard(message.deployment)
        exits = tuple(self._exits.pop(message.deployment, {}).items())
        self._tell(message.deployment, Check(reason="podman event", exits=exits))

    def _on_resync(self, _: ResyncTick) -> None:
        for deployment in list(self._reconcilers):
            self._tell(deployment, Check(reason="resync"))
        if not self._info_published:
            self._publish_info()
        self._sweep()
        self._timers.tell_later(self.actor_ref, ResyncTick(), delay=self._config.resync_interval_s)

    def _on_synced(self, _: DesiredSynced) -> None:
        self._synced = True
        self._sweep()

    def _sweep(self) -> None:
        if self._synced and self._sweeper is not None:
            self._sweeper.tell(Sweep())

    def _on_owned(self, message: OwnedDeployments) -> None:
        """Orphans: containers of a deployment with no entry, no deletion, no reconciler
        (checked now, not when they were listed: an entry may have come meanwhile)."""
        for deployment, revision in message.deployments:
            if deployment in self._desired or deployment in self._reconcilers:
                continue
            try:
                name = DeploymentName.try_new(deployment)
            except ContractError:
                logger.debug("not sweeping containers of invalid deployment %r", deployment)
                continue
            logger.info(
                "%s: removing the containers of %s, which has no desired state here",
                self._device,
                name,
            )
            self._reconciler(name).tell(Remove(revision=revision, sweep=True))

    def _on_idle(self, message: ReconcilerIdle) -> None:
        deployment = message.deployment
        if deployment in self._desired:
            return
        ref = self._reconcilers.pop(deployment, None)
        if ref is not None:
            ref.stop(block=False)
        self._desired.removed(deployment, revision=message.revision)

    def _on_labels(self, message: LabelsChanged) -> None:
        if message.labels != self._labels:
            self._labels = dict(message.labels)
            self._publish_info()

    def _on_events_broken(self, message: EventsBroken) -> None:
        self._drift.broken(message.score_type)
        self._timers.tell_later(
            self.actor_ref, ReopenEvents(score_type=message.score_type), delay=1.0
        )

    def _on_reopen_events(self, message: ReopenEvents) -> None:
        self._drift.open(message.score_type)
        for deployment in list(self._reconcilers):  # events may have been missed
            self._tell(deployment, Check(reason="events reopened"))

    def _on_desired(self, message: DesiredChanged) -> None:
        entry = message.entry
        try:
            device, deployment = parse_desired_state_key(entry.key)
        except ContractError as exc:
            logger.warning("ignoring desired-state key %r: %s", entry.key[:300], exc)
            return
        if device != self._device:
            return
        if entry.deleted:
            self._on_deleted(deployment, entry.revision)
            return
        apply = self._desired.put(deployment, revision=entry.revision, value=entry.value)
        if apply is not None:
            self._reconciler(deployment).tell(apply)

    def _on_deleted(self, deployment: DeploymentName, revision: int) -> None:
        remove = self._desired.delete(
            deployment, revision=revision, running=deployment in self._reconcilers
        )
        if remove is not None:
            self._reconciler(deployment).tell(remove)

    def _reconciler(self, deployment: DeploymentName) -> pykka.ActorRef[Any]:
        ref = self._reconcilers.get(deployment)
        if ref is None:
            ref = DeploymentReconciler.start(
                device_id=self._device,
                deployment=deployment,
                report=self._reporter.publish_state,
                timers=self._timers,
                parent=self.actor_ref,
                **self._reconciler_options,
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

    # -- reporting --------------------------------------------------------------------------

    def _publish_info(self) -> None:
        main = self._runtimes.main
        try:
            name, version = main.version()
            self._info_published = True
        except FleetError as exc:
            kind = main.score_type
            logger.warning(
                "%s version unknown (%s); will publish it when %s answers", kind, exc, kind
            )
            name, version = main.score_type, "unknown"
        self._reporter.publish_info(
            labels=self._labels,
            runtime_name=name,
            runtime_version=version,
            runtimes=self._runtimes.types,
            runtime_versions=self._runtime_versions(),
        )

    def _runtime_versions(self) -> dict[str, str]:
        """Each runtime's "name version" (the kvm one says emulation or KVM); one that
        does not answer now is left out, and said at the next publish."""
        versions: dict[str, str] = {}
        for runtime in self._runtimes:
            try:
                name, version = runtime.version()
            except FleetError:
                continue
            versions[runtime.score_type] = f"{name} {version}"[:MAX_TEXT_LENGTH]
        return versions

    def _heartbeat(self) -> None:
        self._reporter.heartbeat(health=self._tally.health())
        self._timers.tell_later(
            self.actor_ref, HeartbeatTick(), delay=self._config.heartbeat_interval_s
        )
