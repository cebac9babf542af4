"""A live message that arrives before the stream has stored its write is not lost.

nats-server hands a publish to core subscribers at once and stores it on the stream's
own goroutine, so the feed's direct get, sent when the core message arrives, can still
see the key as it was before the write (404 for a new key, the previous revision for an
update). Seen under load with agents started before the buckets existed: the entry was
never applied and nothing was logged. Here the real server is seen through a transport
whose next direct get of a key answers as of an earlier moment, which makes that
interleaving happen every time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest

from fleet.contracts import BUCKET_DESIRED_STATE, DeviceId
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats import subjects
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.desired_feed import DesiredFeed
from fleet.runtime.nats.transport import ForwardingTransport, Message, Transport
from tests.agent.desired_feed.test_desired_feed import Recorder, put
from tests.fixtures.nats import NatsServer


class StoreLagTransport(ForwardingTransport):
    """The real transport; a frozen key's next direct get gets the answer read at freeze time."""

    def __init__(self, transport: Transport) -> None:
        super().__init__(transport)
        self._frozen: dict[str, Message] = {}
        self.stale_answers = 0

    async def freeze(self, key: str) -> None:
        subject = subjects.direct_get(BUCKET_DESIRED_STATE, key)
        self._frozen[subject] = await self.inner.request(subject, b"", timeout=5)

    async def request(
        self,
        subject: str,
        payload: bytes = b"",
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float,
    ) -> Message:
        frozen = self._frozen.pop(subject, None)
        if frozen is not None:
            self.stale_answers += 1
            return frozen
        return await self.inner.request(subject, payload, headers=headers, timeout=timeout)


class StoreLagBus(Bus):
    """A real Bus whose feed's requests go through :class:`StoreLagTransport` (``lens``)."""

    lens: StoreLagTransport


@pytest.fixture
def lag_bus(
    bus: Bus, nats_server: NatsServer, event_loop_thread: EventLoopThread
) -> Iterator[StoreLagBus]:
    """Connected to the server ``bus`` set up (buckets exist)."""
    lagging = StoreLagBus(urls=[nats_server.url], name="store-lag")
    lagging.lens = StoreLagTransport(lagging.transport)

    async def up() -> None:
        await lagging.start()
        await lagging.wait_connected(timeout=10)

    event_loop_thread.run(up(), timeout=15)
    yield lagging
    event_loop_thread.run(lagging.close(), timeout=10)


@pytest.fixture
def feed(lag_bus: StoreLagBus, event_loop_thread: EventLoopThread) -> Iterator[Recorder]:
    rec = Recorder()
    feed = DesiredFeed(
        kv=lag_bus.kv.using(lag_bus.lens),
        device_id=DeviceId("dev1"),
        on_entry=rec.on_entry,
        on_synced=rec.synced.set,
    )

    async def start() -> None:
        feed.start()

    event_loop_thread.run(start(), timeout=5)
    assert rec.synced.wait(5)
    yield rec
    event_loop_thread.run(feed.stop(), timeout=5)


def test_a_new_key_read_before_it_was_stored_is_delivered(
    bus: Bus, lag_bus: StoreLagBus, event_loop_thread: EventLoopThread, feed: Recorder
) -> None:
    event_loop_thread.run(lag_bus.lens.freeze("dev1.web"), timeout=5)  # 404: not written
    rev = put(event_loop_thread, bus, "dev1.web", b"v1")
    feed.wait_for(lambda s: "dev1.web" in s and s["dev1.web"].revision == rev)
    assert feed.latest()["dev1.web"].value == b"v1"
    assert lag_bus.lens.stale_answers == 1  # the lag really happened


def test_an_update_read_before_it_was_stored_is_delivered(
    bus: Bus, lag_bus: StoreLagBus, event_loop_thread: EventLoopThread, feed: Recorder
) -> None:
    rev1 = put(event_loop_thread, bus, "dev1.web", b"v1")
    feed.wait_for(lambda s: "dev1.web" in s and s["dev1.web"].revision == rev1)
    event_loop_thread.run(lag_bus.lens.freeze("dev1.web"), timeout=5)  # still revision rev1
    rev2 = put(event_loop_thread, bus, "dev1.web", b"v2")
    feed.wait_for(lambda s: s["dev1.web"].revision == rev2)
    assert feed.latest()["dev1.web"].value == b"v2"
    assert lag_bus.lens.stale_answers == 1
    assert [e.revision for e in feed.entries] == [rev1, rev2]
