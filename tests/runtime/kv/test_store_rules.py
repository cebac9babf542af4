"""KV operations and batched writes against a fake JetStream: compare-and-swap outcomes,
and whatever garbage the server side sends ending as fleet's errors, never as others."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest

from fleet.errors import BusError, BusUnavailable, FleetError, KeyExists, RevisionMismatch
from fleet.runtime.nats.kv_publish import KvPublisher
from fleet.runtime.nats.kvstore import KvStore
from fleet.runtime.nats.transport import Message
from tests.runtime.kv.fake_jetstream import FakeJetStream

B = "desired-state"


def run(scenario: Callable[[FakeJetStream, KvStore], Awaitable[None]]) -> None:
    async def main() -> None:
        server = FakeJetStream()
        server.streams[f"KV_{B}"] = []
        await asyncio.wait_for(scenario(server, KvStore(server, create_buckets=False)), 10)

    asyncio.run(main())


def answering(data: bytes = b"", headers: dict[str, str] | None = None) -> Callable[..., Message]:
    return lambda _subject, _payload: Message(subject="", data=data, headers=headers)


def test_compare_and_swap_outcomes() -> None:
    async def scenario(server: FakeJetStream, kv: KvStore) -> None:
        rev = await kv.create(B, "d1.web", b"v1")
        with pytest.raises(KeyExists, match=r"d1\.web already exists"):
            await kv.create(B, "d1.web", b"again")
        with pytest.raises(RevisionMismatch, match="no longer at that revision"):
            await kv.update(B, "d1.web", b"v2", last=rev + 5)
        rev2 = await kv.update(B, "d1.web", b"v2", last=rev)
        with pytest.raises(RevisionMismatch):
            await kv.delete(B, "d1.web", last=rev)  # a lost CAS delete is a mismatch too
        marker = await kv.delete(B, "d1.web", last=rev2)
        assert await kv.get(B, "d1.web") is None
        entry = await kv.last_entry(B, "d1.web")
        assert entry is not None
        assert (entry.revision, entry.operation) == (marker, "DEL")
        assert await kv.create(B, "d1.web", b"v3") > marker  # over the marker
        assert await kv.last_revision(B, "d1.*") == marker + 1
        assert await kv.last_revision(B, "nobody.*") == 0

    run(scenario)


def test_batched_deletes_are_compare_and_swaps_per_key() -> None:
    async def scenario(server: FakeJetStream, kv: KvStore) -> None:
        revs = [server.put_now(B, f"d{i}.web", b"v") for i in range(4)]
        server.put_now(B, "d2.web", b"changed meanwhile")
        publisher = KvPublisher(kv, in_flight=2)
        keys = [f"d{i}.web" for i in range(4)]
        results = await publisher.write_many(B, [(k, None) for k in keys], last=revs)
        await publisher.close()
        assert isinstance(results[2], RevisionMismatch)
        assert all(isinstance(r, int) for i, r in enumerate(results) if i != 2)
        assert (await kv.get(B, "d2.web")) is not None  # changed, so kept
        assert [await kv.get(B, k) for k in keys if k != "d2.web"] == [None, None, None]

    run(scenario)


ACK = "$KV."  # what a put's acknowledgement answers


@pytest.mark.parametrize(
    ("data", "headers", "kind"),
    [
        (b"not json", None, BusError),
        (b'{"stream": "KV_x"}', None, BusError),  # no sequence
        (b'{"seq": "seven"}', None, BusError),
        (b"[1, 2]", None, BusError),
        (b'{"error": {"code": 503, "description": "down"}}', None, BusUnavailable),
        (b'{"error": {"code": 400, "err_code": 10054, "description": "too big"}}', None, BusError),
        (b'{"error": "a string"}', None, BusError),
        (b"", {"Status": "503"}, BusUnavailable),
        (b"", {"Status": "418", "Description": "teapot"}, BusError),
    ],
)
def test_an_unreadable_or_refusing_acknowledgement_is_a_fleet_error(
    data: bytes, headers: dict[str, str] | None, kind: type[FleetError]
) -> None:
    async def scenario(server: FakeJetStream, kv: KvStore) -> None:
        server.answers[ACK] = answering(data, headers)
        with pytest.raises(kind, match=r"put desired-state/d1\.web"):
            await kv.put(B, "d1.web", b"v")
        publisher = KvPublisher(kv)
        [result] = await publisher.write_many(B, [("d1.web", b"v")])
        await publisher.close()
        assert isinstance(result, kind), result

    run(scenario)


@pytest.mark.parametrize(
    "headers",
    [
        {"Nats-Sequence": "x"},
        {},
        {"Nats-Sequence": "²"},
        {"Status": "400", "Description": "bad request"},
    ],
)
def test_an_unreadable_direct_get_is_a_fleet_error(headers: dict[str, str]) -> None:
    async def scenario(server: FakeJetStream, kv: KvStore) -> None:
        server.answers["$JS.API.DIRECT.GET."] = answering(b"", headers)
        with pytest.raises(BusError, match=r"get desired-state/d1\.web"):
            await kv.get(B, "d1.web")
        with pytest.raises(BusError, match="last revision of desired-state"):
            await kv.last_revision(B, "d1.*")

    run(scenario)


def test_an_unreadable_consumer_answer_fails_the_read_as_a_fleet_error() -> None:
    async def scenario(server: FakeJetStream, kv: KvStore) -> None:
        from fleet.runtime.nats.read import read_bucket

        server.put_now(B, "d1.web", b"v")
        server.answers["$JS.API.CONSUMER.CREATE."] = answering(b"<html>")
        with pytest.raises(BusError, match="create consumer"):
            await read_bucket(kv, B)
        server.answers["$JS.API.CONSUMER.CREATE."] = answering(
            json.dumps({"error": {"code": 400, "err_code": 10026, "description": "max"}}).encode()
        )
        with pytest.raises(BusError, match=r"max \(code 400, err_code 10026\)"):
            await read_bucket(kv, B)
        assert server.consumers == {}

    run(scenario)


@pytest.mark.parametrize("key", ["bad key", "a..b", ".a", "a.", "a.*", "a.>", ""])
def test_a_key_that_is_not_subject_tokens_is_refused_by_name(key: str) -> None:
    async def scenario(server: FakeJetStream, kv: KvStore) -> None:
        with pytest.raises(BusError, match="put desired-state/"):
            await kv.put(B, key, b"v")
        publisher = KvPublisher(kv)
        [result] = await publisher.write_many(B, [(key, b"v")])
        await publisher.close()
        assert isinstance(result, BusError)
        assert server.published == []  # nothing reached the wire

    run(scenario)
