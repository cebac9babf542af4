"""With device A's credentials, every operation on device B is refused; A's own work goes on.

The operator writes B's entries (desired, info, state, heartbeat); A's connection then
tries everything a hostile device could send: B's keys, wildcards over every device,
the streams themselves. Each request must be refused by the server (a permission
violation, and no reply), each subscription too, and afterwards the operator reads B's
entries back unchanged. Meanwhile A's own desired-state feed, over A's own credentials,
keeps receiving A's entries, and A's reports are written.
"""

from __future__ import annotations

import asyncio
import json

from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_HEARTBEAT,
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
    DeploymentName,
    DeviceId,
    desired_state_key,
    device_heartbeat_key,
    device_info_key,
    device_state_key,
)
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.desired_feed import DesiredFeed
from fleet.runtime.nats.kv import KvEntry
from tests.security.conftest import DEVICE_A, DEVICE_B, Intruder, eventually, wait_until

WEB = DeploymentName("web")
A, B = DEVICE_A, DEVICE_B
BUCKETS = (BUCKET_DESIRED_STATE, BUCKET_DEVICE_INFO, BUCKET_DEVICE_STATE, BUCKET_DEVICE_HEARTBEAT)
DEL = {"KV-Operation": "DEL"}


def keys_of(device: DeviceId) -> dict[str, str]:
    """Each bucket's key of ``device`` for deployment ``web``."""
    return {
        BUCKET_DESIRED_STATE: desired_state_key(device, WEB),
        BUCKET_DEVICE_INFO: device_info_key(device),
        BUCKET_DEVICE_STATE: device_state_key(device, WEB),
        BUCKET_DEVICE_HEARTBEAT: device_heartbeat_key(device),
    }


async def write_entries(operator: Bus, device: DeviceId) -> dict[str, KvEntry]:
    """The operator writes one entry of ``device`` in each bucket; returns them."""
    written = {}
    for bucket, key in keys_of(device).items():
        await operator.put(bucket, key, f"{bucket} of {device}".encode())
        entry = await operator.get(bucket, key)
        assert entry is not None
        written[bucket] = entry
    return written


async def entries_now(operator: Bus, device: DeviceId) -> dict[str, KvEntry | None]:
    return {b: await operator.get(b, k) for b, k in keys_of(device).items()}


def refused_requests() -> list[tuple[str, str, bytes, dict[str, str] | None]]:
    """(what, subject, payload, headers): what a hostile A sends; all must be refused."""
    ds = BUCKET_DESIRED_STATE
    get = f"$JS.API.DIRECT.GET.KV_{ds}"
    b_desired = f"$KV.{ds}.{B}.web"
    attacks: list[tuple[str, str, bytes, dict[str, str] | None]] = [
        ("get B's desired entry", f"{get}.{b_desired}", b"", None),
        ("last among B's desired keys", f"{get}.$KV.{ds}.{B}.*", b"", None),
        ("last among every device's keys", f"{get}.$KV.{ds}.>", b"", None),
        ("last of web on every device", f"{get}.$KV.{ds}.*.web", b"", None),
        ("get by sequence", get, json.dumps({"seq": 1}).encode(), None),
        ("last_by_subj in a payload", get, json.dumps({"last_by_subj": b_desired}).encode(), None),
        ("put B's desired entry", b_desired, b'{"image": "evil"}', None),
        ("delete B's desired entry", b_desired, b"", DEL),
        ("write its own desired entry", f"$KV.{ds}.{A}.evil", b'{"image": "evil"}', None),
        ("put B's info", f"$KV.device-info.info.{B}", b"{}", None),
        ("put B's state", f"$KV.device-state.state.{B}.web", b'{"phase": "Failed"}', None),
        ("delete B's state", f"$KV.device-state.state.{B}.web", b"", DEL),
        ("put B's heartbeat", f"$KV.device-heartbeat.heartbeat.{B}", b"{}", None),
        ("a made-up device's report", "$KV.device-state.state.ghost.web", b"{}", None),
        ("consumer on B's keys", f"$JS.API.CONSUMER.CREATE.KV_{ds}.x.$KV.{ds}.{B}.*", b"{}", None),
        ("consumer on every key", f"$JS.API.CONSUMER.CREATE.KV_{ds}.x.$KV.{ds}.>", b"{}", None),
        ("named consumer, no filter", f"$JS.API.CONSUMER.CREATE.KV_{ds}.x", b"{}", None),
        ("ephemeral consumer", f"$JS.API.CONSUMER.CREATE.KV_{ds}", b"{}", None),
        ("durable consumer", f"$JS.API.CONSUMER.DURABLE.CREATE.KV_{ds}.x", b"{}", None),
        ("list consumers", f"$JS.API.CONSUMER.NAMES.KV_{ds}", b"", None),
        ("consumer info", f"$JS.API.CONSUMER.INFO.KV_{ds}.x", b"", None),
        ("list streams", "$JS.API.STREAM.NAMES", b"", None),
        ("account info", "$JS.API.INFO", b"", None),
        ("create a stream", "$JS.API.STREAM.CREATE.evil", b'{"subjects": [">"]}', None),
        ("publish into B's inbox", f"_INBOX_device_{B}.x", b"forged reply", None),
        ("push an account update", "$SYS.REQ.CLAIMS.UPDATE", b"", None),
    ]
    for bucket in BUCKETS:
        stream = f"KV_{bucket}"
        attacks += [
            (f"stream info of {bucket}", f"$JS.API.STREAM.INFO.{stream}", b"", None),
            (f"purge {bucket}", f"$JS.API.STREAM.PURGE.{stream}", b"", None),
            (f"delete {bucket}", f"$JS.API.STREAM.DELETE.{stream}", b"", None),
            (f"update {bucket}", f"$JS.API.STREAM.UPDATE.{stream}", b"{}", None),
            (f"message get in {bucket}", f"$JS.API.STREAM.MSG.GET.{stream}", b'{"seq":1}', None),
            (f"message delete in {bucket}", f"$JS.API.STREAM.MSG.DELETE.{stream}", b'{"seq":1}',
             None),
            (f"wildcard direct get in {bucket}", f"$JS.API.DIRECT.GET.{stream}.$KV.{bucket}.>",
             b"", None),
        ]  # fmt: skip
    return attacks


def test_every_request_on_another_device_is_refused_and_changes_nothing(
    operator_bus: Bus, intruder_a: Intruder, event_loop_thread: EventLoopThread
) -> None:
    attacks = refused_requests()

    async def scenario() -> None:
        before = await write_entries(operator_bus, B)
        await write_entries(operator_bus, A)
        replies = await asyncio.gather(
            *(intruder_a.request(subject, payload, headers=h) for _, subject, payload, h in attacks)
        )
        answered = [what for (what, *_), reply in zip(attacks, replies, strict=True) if reply]
        assert answered == [], f"the server answered: {answered}"
        for _, subject, _, _ in attacks:
            await intruder_a.refused("publish", subject)
        # A's own put, sent after every attack on the same connection, is stored: every
        # refused put before it would have landed by now.
        own = f"$KV.device-state.state.{A}.web"
        assert await intruder_a.request(own, b'{"phase": "Running"}') is not None
        assert await entries_now(operator_bus, B) == before
        for bucket in BUCKETS:
            assert (await operator_bus.kv.counts(bucket))[0] >= 2, f"{bucket} was emptied"

    event_loop_thread.run(scenario(), timeout=60)


def test_subscriptions_beyond_its_own_keys_are_refused_and_see_nothing(
    operator_bus: Bus, intruder_a: Intruder, event_loop_thread: EventLoopThread
) -> None:
    ds = BUCKET_DESIRED_STATE
    hostile = [
        f"$KV.{ds}.>",
        f"$KV.{ds}.*.*",
        f"$KV.{ds}.*.web",
        f"$KV.{ds}.{B}.*",
        f"$KV.{ds}.{B}.web",
        ">",
        "$KV.>",
        "*.>",
        "$KV.device-state.>",
        f"$KV.device-state.state.{B}.*",
        f"$KV.device-info.info.{B}",
        f"$KV.device-heartbeat.heartbeat.{B}",
        "_INBOX.>",
        f"_INBOX_device_{B}.>",
        "_INBOX_operator.>",
        "$JS.>",
        "$JS.API.>",
    ]

    async def scenario() -> None:
        spied = {subject: await intruder_a.collect(subject) for subject in hostile}
        own = await intruder_a.collect(f"$KV.{ds}.{A}.*")
        for subject in hostile:
            await intruder_a.refused("subscription", subject)
        await write_entries(operator_bus, B)
        await operator_bus.put(ds, desired_state_key(A, WEB), b"sentinel")
        # The sentinel was published after B's entries: once A has it, B's would have come.
        await wait_until(lambda: bool(own), timeout=5, what="A's own live message")
        assert {s: len(got) for s, got in spied.items() if got} == {}
        assert [m.subject for m in own] == [f"$KV.{ds}.{A}.web"]

    event_loop_thread.run(scenario(), timeout=60)


def test_its_own_feed_and_reports_work_meanwhile(
    operator_bus: Bus,
    device_a_bus: Bus,
    intruder_a: Intruder,
    event_loop_thread: EventLoopThread,
) -> None:
    """A's agent (its feed and its reports, over A's credentials) keeps working while
    A's credentials are used to attack B."""
    seen: list[KvEntry] = []

    async def scenario() -> None:
        await operator_bus.put(BUCKET_DESIRED_STATE, desired_state_key(A, WEB), b"first")
        await operator_bus.put(BUCKET_DESIRED_STATE, desired_state_key(B, WEB), b"not A's")
        feed = DesiredFeed(device_id=A, on_entry=seen.append, kv=device_a_bus.kv)
        feed.start()
        try:
            await wait_until(lambda: bool(seen), timeout=10, what="A's initial entries")
            attacks = refused_requests()
            await asyncio.gather(*(intruder_a.request(s, p, headers=h) for _, s, p, h in attacks))
            rev = await operator_bus.put(BUCKET_DESIRED_STATE, desired_state_key(A, WEB), b"second")
            await wait_until(lambda: seen[-1].revision == rev, timeout=10, what="A's live update")
        finally:
            await feed.stop()
        assert {e.key for e in seen} == {desired_state_key(A, WEB)}
        assert seen[-1].value == b"second"
        for bucket, key in keys_of(A).items():
            if bucket == BUCKET_DESIRED_STATE:
                continue
            rev = await device_a_bus.put(bucket, key, b"A's own report")
            entry = await operator_bus.get(bucket, key)
            assert entry is not None
            assert entry.revision == rev

        async def desired_unchanged() -> bool:
            entry = await operator_bus.get(BUCKET_DESIRED_STATE, desired_state_key(B, WEB))
            return entry is not None and entry.value == b"not A's"

        await eventually(desired_unchanged, timeout=5, what="B's desired entry, unchanged")

    event_loop_thread.run(scenario(), timeout=60)


def test_a_rollup_on_its_own_key_cannot_purge_the_bucket(
    operator_bus: Bus, intruder_a: Intruder, event_loop_thread: EventLoopThread
) -> None:
    """``Nats-Rollup: all`` on a put A may make would purge every device's entries of
    the bucket; the buckets refuse rollups."""

    async def scenario() -> None:
        before = await write_entries(operator_bus, B)
        for bucket, key in keys_of(A).items():
            if bucket == BUCKET_DESIRED_STATE:
                continue
            for rollup in ("all", "sub"):
                reply = await intruder_a.request(
                    f"$KV.{bucket}.{key}", b"x", headers={"Nats-Rollup": rollup}
                )
                assert reply is not None
                assert b"rollup" in reply.data.lower(), reply.data
        assert await entries_now(operator_bus, B) == before

    event_loop_thread.run(scenario(), timeout=60)
