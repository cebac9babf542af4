"""The agent process assembled: loop, bus, publisher, device actor, desired feed.

Why it exists: the console script and the integration tests start the very same
agent, so the wiring lives here once. Start order (each ready before the next): the
event loop, the NATS bus (connecting in the background: an agent boots without
network), the state publisher, the device actor (which reconciles from the persisted
desired state at once), the desired feed, then the watch for a second agent under the
same device id, and the answers to requests made of the device (logs, describe:
:mod:`.ondemand`). Stop is the reverse, through the runtime's
:class:`~fleet.runtime.actorkit.supervisor.Supervisor`; containers keep running.

With ``[enrollment]`` configured, the bus connects with ``state_dir/device.creds`` and a
:class:`~fleet.runtime.nats.credential_keeper.CredentialKeeper` (started right after the
bus, stopped right before it) enrolls the device's own key if needed, then starts the
bus, and renews; everything after it starts at once, as without network. With
credentials (enrolled or given by hand) the bus uses the device's inbox prefix and
never creates or inspects buckets (docs/security.md).

Each start is one *instance* of the agent: a random ``instance_id`` (16 hex digits) put
in every heartbeat.

What it must never do: wait for NATS before reconciling, or stop a container on exit.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from typing import Any

import pykka

from fleet import __version__
from fleet.contracts import DeploymentName, Inventory, desired_state_key
from fleet.errors import FleetError
from fleet.runtime.actorkit.supervisor import Supervisor
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.aiokit.timers import LoopTimers
from fleet.runtime.host.desired_store import DesiredStore
from fleet.runtime.host.inventory import read_inventory
from fleet.runtime.nats import subjects
from fleet.runtime.nats.bus import Bus, Connection
from fleet.runtime.nats.credential_keeper import CredentialKeeper
from fleet.runtime.nats.desired_feed import DesiredFeed
from fleet.runtime.nats.device_key import DeviceKeyStore, KeyLost
from fleet.runtime.nats.device_requests import DeviceRequests
from fleet.runtime.nats.enroll_client import EnrollmentClient
from fleet.runtime.nats.enrollment_timing import SLOW_RETRY
from fleet.runtime.nats.heartbeat_watch import DuplicateWatch
from fleet.runtime.nats.natspy import NatsPyTransport
from fleet.runtime.nats.publisher import LatestValuePublisher
from fleet.runtime.podman.port import ContainerRuntime

from .config import AgentConfig, EnrollmentConfig
from .crash_loops import DEFAULT_RESTARTS, DEFAULT_WINDOW
from .device import DeviceActor
from .messages import DesiredChanged, DesiredSynced, LabelsChanged
from .ondemand.book import SelfReports
from .ondemand.service import start_ondemand
from .runtimes.registry import RuntimeRegistry
from .tally import AgentTally

logger = logging.getLogger(__name__)

DEFAULT_INBOX_PREFIX = "_INBOX"  # nats-py's, as an agent without credentials always used


class AgentApp:
    """One device agent. ``start()``, then ``stop()`` (or ``run_until_signal()``)."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        runtime: ContainerRuntime,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
        max_backoff: float = 30.0,
        event_debounce: float = 0.3,
        feed_resync_interval: float = 300.0,
        crash_window: float = DEFAULT_WINDOW,
        crash_restarts: int = DEFAULT_RESTARTS,
        duplicate_log_interval: float = 60.0,
        enrollment_slow_retry: float = SLOW_RETRY,
        runtimes: RuntimeRegistry | None = None,
    ) -> None:
        """``runtime``: podman (logs, describe, the inventory); ``runtimes``: one per score
        type the device runs (default: podman's, over ``runtime``; docs/runtimes.md)."""
        self.config = config
        self.runtime = runtime
        self.runtimes = runtimes
        self.instance_id = secrets.token_hex(8)
        self.tally = AgentTally()  # what this run did: in every heartbeat, and /metrics
        self._loop_factory = loop_factory
        self._max_backoff = max_backoff
        self._event_debounce = event_debounce
        self._feed_resync = feed_resync_interval
        self._crash = (crash_window, crash_restarts)
        self._duplicate_interval = duplicate_log_interval
        self._slow_retry = enrollment_slow_retry
        self._labels = dict(config.labels)
        self.keeper: CredentialKeeper | None = None
        self.supervisor = Supervisor(name=f"fleet-agent-{config.device_id}")
        self.loop: EventLoopThread | None = None
        self.bus: Bus | None = None
        self.feed: DesiredFeed | None = None
        self.duplicates: DuplicateWatch | None = None
        self.device: pykka.ActorRef[Any] | None = None
        self.requests: DeviceRequests | None = None  # logs and describe on demand

    def start(self) -> None:
        config, sup = self.config, self.supervisor
        loop = EventLoopThread(name="fleet-agent-loop", loop_factory=self._loop_factory)
        loop.start()
        sup.add_cleanup("event loop", loop.stop)
        self.loop = loop
        credentials = config.nats_credentials
        if not config.secured:
            logger.warning(
                "connecting to NATS WITHOUT credentials (no [enrollment], no nats.credentials "
                "in %s): only a server that lets anyone in accepts this, and there anyone may "
                "rewrite what this device runs. For development only (docs/security.md).",
                config.source or "the config",
            )
        if config.enrollment is not None:
            credentials = DeviceKeyStore(config.state_dir).credentials_path
        bus = Bus(
            urls=config.nats_urls, name=f"fleet-agent-{config.device_id}",
            credentials=credentials, tls_ca=config.nats_ca, create_buckets=credentials is None,
            inbox_prefix=(
                DEFAULT_INBOX_PREFIX if credentials is None
                else subjects.inbox_prefix(config.device_id, device=True)
            ),
        )  # fmt: skip
        sup.add_cleanup("nats", lambda: loop.run(bus.close(), timeout=5))
        self.bus = bus
        if config.enrollment is None:
            loop.run(bus.start(), timeout=5)
        else:
            self._start_keeper(loop, bus, config.enrollment)  # it starts the bus
        if credentials is None:  # a device with credentials may not create buckets
            loop.spawn(self._ensure_buckets(bus), name="ensure-buckets")
        publisher = LatestValuePublisher(kv=bus.kv, loop_thread=loop)
        loop.run(_call(publisher.start), timeout=5)
        sup.add_cleanup("publisher", lambda: loop.run(publisher.stop(), timeout=5))
        reports = SelfReports(publisher)  # what it says of itself, for describe
        store = DesiredStore(config.state_dir)
        stored = store.load()  # once: it may set a damaged file aside
        known = {
            desired_state_key(config.device_id, DeploymentName(name)): e.revision
            for name, e in stored.entries.items()
        }
        device = sup.start(
            "device",
            lambda: DeviceActor.start(
                config=config,
                runtime=self.runtime,
                publisher=reports,
                store=store,
                stored=stored,
                timers=LoopTimers(loop),
                instance_id=self.instance_id,
                max_backoff=self._max_backoff,
                event_debounce=self._event_debounce,
                crash_window=self._crash[0],
                crash_restarts=self._crash[1],
                tally=self.tally,
                runtimes=self.runtimes,
            ),
        )
        self.device = device

        def tell(message: object, what: str) -> None:
            try:
                device.tell(message)
            except pykka.ActorDeadError:
                logger.debug("%s dropped: agent stopping", what)

        feed = DesiredFeed(
            kv=bus.kv,
            device_id=config.device_id,
            on_entry=lambda entry: tell(DesiredChanged(entry=entry), entry.key),
            on_synced=lambda: tell(DesiredSynced(), "desired state synced"),
            known=known,
            resync_interval=self._feed_resync,
            on_reread=self.tally.feed_reread,
        )
        loop.run(_call(feed.start), timeout=5)
        sup.add_cleanup("desired feed", lambda: loop.run(feed.stop(), timeout=5))
        self.feed = feed
        watch = DuplicateWatch(
            transport=bus.transport,
            device_id=config.device_id,
            instance_id=self.instance_id,
            interval=self._duplicate_interval,
        )
        loop.run(_call(watch.start), timeout=5)
        sup.add_cleanup("duplicate watch", lambda: loop.run(watch.stop(), timeout=5))
        self.duplicates = watch
        self.requests = start_ondemand(
            device_id=config.device_id, instance_id=self.instance_id, runtime=self.runtime,
            reports=reports, transport=bus.transport, loop=loop, supervisor=sup,
        )  # fmt: skip
        logger.info(
            "fleet-agent %s started as instance %s (NATS %s, podman %s)",
            config.device_id,
            self.instance_id,
            config.nats_urls,
            config.podman_socket,
        )

    def _start_keeper(self, loop: EventLoopThread, bus: Bus, enrollment: EnrollmentConfig) -> None:
        """The device's key, and the task that enrolls it and keeps its credentials."""
        config = self.config
        store = DeviceKeyStore(config.state_dir)
        try:
            key = store.load_or_create()
        except KeyLost as exc:
            logger.error(  # noqa: TRY400 - the reason is the message
                "%s. The agent runs offline, on its persisted desired state", exc
            )
            return
        client = EnrollmentClient(
            device_id=config.device_id, key=key, agent_version=__version__,
            token=enrollment.token, timeout=bus.request_timeout,
        )  # fmt: skip

        def bootstrap() -> Connection:
            return NatsPyTransport(
                urls=config.nats_urls, name=f"fleet-agent-{config.device_id}-bootstrap",
                credentials=enrollment.bootstrap_credentials, tls_ca=config.nats_ca,
                inbox_prefix=subjects.BOOTSTRAP_INBOX_PREFIX,
            )  # fmt: skip

        keeper = CredentialKeeper(
            device_id=config.device_id, bus=bus, store=store, key=key, client=client,
            bootstrap=bootstrap, labels=lambda: self._labels, inventory=self._inventory,
            renew_after=enrollment.renew_after, slow_retry=self._slow_retry,
        )  # fmt: skip
        loop.run(_call(keeper.start), timeout=5)
        self.supervisor.add_cleanup("credentials", lambda: loop.run(keeper.stop(), timeout=5))
        self.keeper = keeper

    def _inventory(self) -> Inventory:
        """What the device is, for its enrollment request (on a worker thread: podman)."""
        try:
            name, version = self.runtime.version()
        except FleetError as exc:
            logger.warning("podman version unknown for the enrollment request (%s)", exc)
            name, version = "podman", "unknown"
        return read_inventory(runtime_name=name, runtime_version=version)

    async def _ensure_buckets(self, bus: Bus) -> None:
        """Create the buckets if this agent is the first writer (best effort)."""
        while True:
            await bus.wait_connected(timeout=None)
            try:
                await bus.ensure_buckets()
                return
            except Exception as exc:  # e.g. not authorized: the operator creates them
                logger.info("could not ensure buckets (%r); retrying", exc)
                await asyncio.sleep(2.0)

    def reload_labels(self, labels: dict[str, str]) -> None:
        self._labels = dict(labels)
        if self.device is not None:
            self.device.tell(LabelsChanged(labels=dict(labels)))

    def stop(self, *, timeout: float = 10.0) -> list[str]:
        return self.supervisor.stop(timeout=timeout)


async def _call(fn: Callable[[], None]) -> None:
    """Run ``fn`` on the loop (for ``start()`` methods that need the running loop)."""
    fn()
