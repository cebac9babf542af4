"""The agent process assembled: loop, bus, publisher, device actor, desired feed.

Why it exists: the console script and the integration tests start the very same
agent, so the wiring lives here once. Start order (each ready before the next): the
event loop, the NATS bus (connecting in the background: an agent boots without
network), the state publisher, the device actor (which reconciles from the persisted
desired state at once), the desired feed, then the watch for a second agent under the
same device id. Stop is the reverse, through the runtime's
:class:`~fleet.runtime.actorkit.supervisor.Supervisor`; containers keep running.

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

from fleet.contracts import DeploymentName, desired_state_key
from fleet.runtime.actorkit.supervisor import Supervisor
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.aiokit.timers import LoopTimers
from fleet.runtime.host.desired_store import DesiredStore
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.desired_feed import DesiredFeed
from fleet.runtime.nats.heartbeat_watch import DuplicateWatch
from fleet.runtime.nats.publisher import LatestValuePublisher
from fleet.runtime.podman.port import ContainerRuntime

from .config import AgentConfig
from .crash_loops import DEFAULT_RESTARTS, DEFAULT_WINDOW
from .device import DeviceActor
from .messages import DesiredChanged, DesiredSynced, LabelsChanged

logger = logging.getLogger(__name__)


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
    ) -> None:
        self.config = config
        self.runtime = runtime
        self.instance_id = secrets.token_hex(8)
        self._loop_factory = loop_factory
        self._max_backoff = max_backoff
        self._event_debounce = event_debounce
        self._feed_resync = feed_resync_interval
        self._crash = (crash_window, crash_restarts)
        self._duplicate_interval = duplicate_log_interval
        self.supervisor = Supervisor(name=f"fleet-agent-{config.device_id}")
        self.loop: EventLoopThread | None = None
        self.bus: Bus | None = None
        self.feed: DesiredFeed | None = None
        self.duplicates: DuplicateWatch | None = None
        self.device: pykka.ActorRef[Any] | None = None

    def start(self) -> None:
        config, sup = self.config, self.supervisor
        loop = EventLoopThread(name="fleet-agent-loop", loop_factory=self._loop_factory)
        loop.start()
        sup.add_cleanup("event loop", loop.stop)
        self.loop = loop
        bus = Bus(urls=config.nats_urls, name=f"fleet-agent-{config.device_id}")
        loop.run(bus.start(), timeout=5)
        sup.add_cleanup("nats", lambda: loop.run(bus.close(), timeout=5))
        self.bus = bus
        loop.spawn(self._ensure_buckets(bus), name="ensure-buckets")
        publisher = LatestValuePublisher(kv=bus.kv, loop_thread=loop)
        loop.run(_call(publisher.start), timeout=5)
        sup.add_cleanup("publisher", lambda: loop.run(publisher.stop(), timeout=5))
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
                publisher=publisher,
                store=store,
                stored=stored,
                timers=LoopTimers(loop),
                instance_id=self.instance_id,
                max_backoff=self._max_backoff,
                event_debounce=self._event_debounce,
                crash_window=self._crash[0],
                crash_restarts=self._crash[1],
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
        logger.info(
            "fleet-agent %s started as instance %s (NATS %s, podman %s)",
            config.device_id,
            self.instance_id,
            config.nats_urls,
            config.podman_socket,
        )

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
        if self.device is not None:
            self.device.tell(LabelsChanged(labels=dict(labels)))

    def stop(self, *, timeout: float = 10.0) -> list[str]:
        return self.supervisor.stop(timeout=timeout)


async def _call(fn: Callable[[], None]) -> None:
    """Run ``fn`` on the loop (for ``start()`` methods that need the running loop)."""
    fn()
