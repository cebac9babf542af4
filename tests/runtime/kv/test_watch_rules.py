"""The rules of watches and reads, checked in milliseconds against a fake JetStream.

Each test breaks the server in one way a real one can (a lost delivery, a heartbeat that
disagrees, silence, a 409, garbage, a reconnect, a wiped store) and checks what a user of
the watch sees: every revision once and in order, ``on_synced`` only once the initial
values are all out, no consumer left behind. The same guarantees against a real
nats-server, restarted mid-watch, are in ``test_watch.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, NotRequired, TypedDict

import pytest

from fleet.errors import BusUnavailable
from fleet.runtime.nats import consumer as consumer_module
from fleet.runtime.nats import watch as watch_module
from fleet.runtime.nats.consumer import ConsumerSpec
from fleet.runtime.nats.kv import KvEntry
from fleet.runtime.nats.kvstore import KvStore
from fleet.runtime.nats.read import READ, read_bucket
from fleet.runtime.nats.watch import Watch
from tests.runtime.kv.fake_jetstream import Consumer, FakeJetStream

B = "desired-state"


def run(scenario: Callable[[FakeJetStream], Awaitable[None]]) -> None:
    async def main() -> None:
        server = FakeJetStream()
        server.streams[f"KV_{B}"] = []
        await asyncio.wait_for(scenario(server), 10)

    asyncio.run(main())


async def until(check: Callable[[], bool], *, timeout: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "never happened"
        await asyncio.sleep(0.001)


class Seen:
    def __init__(self) -> None:
        self.entries: list[KvEntry] = []
        self.batches: list[tuple[KvEntry, ...]] = []
        self.at_sync: int | None = None

    def on_entry(self, entry: KvEntry) -> None:
        self.entries.append(entry)

    def on_batch(self, batch: tuple[KvEntry, ...]) -> None:
        self.batches.append(batch)
        self.entries.extend(batch)

    def on_synced(self) -> None:
        assert self.at_sync is None, "synced twice"
        self.at_sync = len(self.entries)

    def revisions(self) -> list[int]:
        return [e.revision for e in self.entries]


def start(server: FakeJetStream, seen: Seen, **kwargs: Any) -> Watch:
    watch = Watch(
        KvStore(server, create_buckets=False), B, ">", name="w", on_synced=seen.on_synced,
        **({"on_entry": seen.on_entry} | kwargs),
    )  # fmt: skip
    watch.start()
    return watch


def live(server: FakeJetStream) -> list[Consumer]:
    return list(server.consumers.values())


def test_synced_only_after_the_initial_values_with_deletes_left_out_of_the_live_set() -> None:
    async def scenario(server: FakeJetStream) -> None:
        for i in range(20):
            server.put_now(B, f"d{i}.web", b"v")
        server.put_now(B, "d3.web", b"", delete=True)
        seen = Seen()
        watch = start(server, seen)
        await until(lambda: seen.at_sync is not None)
        assert seen.at_sync == 20  # 19 values and the marker of the deleted one
        assert seen.revisions() == sorted(set(seen.revisions()))
        assert [e.key for e in seen.entries if e.deleted] == ["d3.web"]
        await watch.stop()
        assert live(server) == []  # deleted on stop

    run(scenario)


def test_a_lost_delivery_resumes_after_the_last_revision_without_loss_or_repeat() -> None:
    async def scenario(server: FakeJetStream) -> None:
        for i in range(10):
            server.put_now(B, f"d{i}.web", b"v")
        server.lose.add((0, 4))  # the first consumer's 4th delivery never arrives
        seen = Seen()
        watch = start(server, seen)
        await until(lambda: len(seen.entries) == 10)
        assert seen.revisions() == list(range(1, 11))  # nothing after the gap came early
        first, second = server.created[:2]
        assert second.config["deliver_policy"] == "by_start_sequence"
        assert second.config["opt_start_seq"] == 4  # right after revision 3
        assert first.name in server.deleted  # the broken one went at once
        assert seen.at_sync == 10
        await watch.stop()
        assert live(server) == []

    run(scenario)


def test_a_heartbeat_naming_another_sequence_resumes() -> None:
    async def scenario(server: FakeJetStream) -> None:
        server.put_now(B, "d1.web", b"v")
        seen = Seen()
        watch = start(server, seen)
        await until(lambda: len(seen.entries) == 1)
        first = server.created[0]
        server.inject(first, status="100", description="Idle Heartbeat",
                      headers={"Nats-Last-Consumer": "1", "Nats-Last-Stream": "1"})  # fmt: skip
        assert len(server.created) == 1  # agrees: nothing to do
        server.inject(first, status="100", description="Idle Heartbeat",
                      headers={"Nats-Last-Consumer": "2", "Nats-Last-Stream": "2"})  # fmt: skip
        await until(lambda: len(server.created) == 2)
        assert server.created[1].config["opt_start_seq"] == 2
        assert first.name in server.deleted
        await watch.stop()

    run(scenario)


def test_flow_control_and_stalls_are_answered() -> None:
    async def scenario(server: FakeJetStream) -> None:
        seen = Seen()
        watch = start(server, seen)
        await until(lambda: len(server.created) == 1)
        first = server.created[0]
        server.inject(first, status="100", description="FlowControl Request", reply="$JS.FC.a.1")
        stalled = {"Nats-Last-Consumer": "0", "Nats-Consumer-Stalled": "$JS.FC.a.2"}
        server.inject(first, status="100", description="Idle Heartbeat", headers=stalled)
        await until(lambda: {p[0] for p in server.published} >= {"$JS.FC.a.1", "$JS.FC.a.2"})
        assert len(server.created) == 1  # answered, not broken
        await watch.stop()

    run(scenario)


class Breakage(TypedDict):
    """What :meth:`FakeJetStream.inject` sends in place of a delivery."""

    status: str
    description: NotRequired[str]
    reply: NotRequired[str]


@pytest.mark.parametrize(
    "breakage",
    [
        {"status": "409", "description": "Consumer Deleted"},
        {"status": "404"},
        {"status": "", "reply": "$JS.ACK.not.enough"},
        {"status": "", "reply": "$JS.ACK.KV_x.c.1.x.1.1.0"},
    ],
)
def test_a_status_or_an_unreadable_delivery_resumes_instead_of_raising(
    breakage: Breakage,
) -> None:
    async def scenario(server: FakeJetStream) -> None:
        server.put_now(B, "d1.web", b"v")
        seen = Seen()
        watch = start(server, seen)
        await until(lambda: len(seen.entries) == 1)
        server.inject(server.created[0], **breakage)
        await until(lambda: len(server.created) == 2)
        server.put_now(B, "d2.web", b"after")
        await until(lambda: len(seen.entries) == 2)
        assert seen.revisions() == [1, 2]
        await watch.stop()
        assert live(server) == []

    run(scenario)


def test_silence_for_two_heartbeats_resumes(monkeypatch: pytest.MonkeyPatch) -> None:
    quick = ConsumerSpec(prefix="watch", heartbeat=0.02, inactive_threshold=1.0)
    monkeypatch.setattr(watch_module, "WATCH", quick)

    async def scenario(server: FakeJetStream) -> None:
        server.put_now(B, "d1.web", b"v")
        seen = Seen()
        watch = start(server, seen)
        await until(lambda: len(seen.entries) == 1)
        await until(lambda: len(server.created) >= 2, timeout=1.0)  # nothing came: replaced
        assert server.created[0].name in server.deleted
        assert server.created[1].config["opt_start_seq"] == 2
        assert seen.revisions() == [1]
        await watch.stop()

    run(scenario)


def test_after_a_reconnect_it_resumes_and_a_wiped_store_is_read_again() -> None:
    async def scenario(server: FakeJetStream) -> None:
        server.put_now(B, "d1.web", b"v1")
        server.put_now(B, "d2.web", b"v1")
        seen = Seen()
        watch = start(server, seen)
        await until(lambda: len(seen.entries) == 2)
        server.put_now(B, "d1.web", b"v2")  # revision 3
        await until(lambda: len(seen.entries) == 3)
        server.reconnect()
        await until(lambda: len(server.created) == 2)
        assert server.created[1].config["opt_start_seq"] == 4
        # the store is wiped and written again: revisions restart below the last seen
        server.streams[f"KV_{B}"].clear()
        server.seqs.clear()
        server.put_now(B, "d9.web", b"new")
        server.reconnect()
        await until(lambda: any(e.key == "d9.web" for e in seen.entries))
        assert server.created[-1].config["deliver_policy"] == "last_per_subject"
        await watch.stop()

    run(scenario)


def test_batches_keep_order_and_synced_comes_after_its_entries() -> None:
    async def scenario(server: FakeJetStream) -> None:
        for i in range(30):
            server.put_now(B, f"d{i}.web", b"v")
        seen = Seen()
        watch = start(server, seen, on_batch=seen.on_batch, on_entry=None, batch_limit=7)
        await until(lambda: seen.at_sync is not None)
        assert seen.revisions() == list(range(1, 31))
        assert all(len(b) <= 7 for b in seen.batches)
        assert seen.at_sync == 30
        await watch.stop()

    run(scenario)


def test_a_watch_that_does_not_follow_delivers_the_live_set_once() -> None:
    async def scenario(server: FakeJetStream) -> None:
        for i in range(12):
            server.put_now(B, f"d{i}.web", b"v")
        server.put_now(B, "d0.web", b"", delete=True)
        seen = Seen()
        watch = start(server, seen, on_batch=seen.on_batch, on_entry=None, follow=False)
        await until(lambda: seen.at_sync is not None)
        assert sorted(e.key for e in seen.entries) == sorted(f"d{i}.web" for i in range(1, 12))
        assert seen.revisions() == sorted(seen.revisions())
        server.put_now(B, "d20.web", b"later")
        await asyncio.sleep(0.01)
        assert len(seen.entries) == 11  # read once: nothing follows
        assert live(server) == []
        await watch.stop()

    run(scenario)


def test_a_read_completes_at_its_mark_and_goes_on_after_a_gap() -> None:
    async def scenario(server: FakeJetStream) -> None:
        for i in range(8):
            server.put_now(B, f"d{i}.web", f"v{i}".encode())
        server.put_now(B, "d2.web", b"", delete=True)
        server.lose.add((0, 5))
        entries, mark = await read_bucket(KvStore(server, create_buckets=False), B, spec=READ)
        assert mark == 9
        assert sorted(entries) == sorted(f"d{i}.web" for i in range(8) if i != 2)
        assert entries["d7.web"].value == b"v7"
        assert len(server.created) == 2  # the gap made a second consumer
        assert live(server) == []

    run(scenario)


def test_an_empty_read_makes_no_consumer_and_an_unfinished_one_times_out() -> None:
    async def scenario(server: FakeJetStream) -> None:
        kv = KvStore(server, create_buckets=False)
        assert await read_bucket(kv, B, "nobody.*") == ({}, 0)
        assert server.created == []
        server.put_now(B, "d1.web", b"v")
        server.lose.add((0, 1))  # the one delivery is lost and nothing follows it
        with pytest.raises(BusUnavailable, match=r"incomplete after 0\.1s"):
            await read_bucket(kv, B, ">", timeout=0.1)
        assert live(server) == []

    run(scenario)


def test_cleanup_is_bounded_when_the_server_does_not_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(consumer_module, "CLEANUP_TIMEOUT", 0.05)

    async def scenario(server: FakeJetStream) -> None:
        seen = Seen()
        watch = start(server, seen)
        await until(lambda: seen.at_sync is not None)
        server.hang = True  # the delete is never answered: stop must still return
        await asyncio.wait_for(watch.stop(), 1.0)
        assert len(server.consumers) == 1  # left to its inactivity threshold

    run(scenario)
