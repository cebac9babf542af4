"""What A can do with the requests it *is* allowed: its consumers and its direct gets.

A device may create a named consumer whose filter, in the subject, is its own keys, and
direct-get its own keys. These tests try to stretch both: another filter in the
configuration, several filters, a deliver subject pointing at another device's keys or
at the JetStream API, a payload that turns a get by subject into a get by sequence.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from nats.aio.msg import Msg

from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_HEARTBEAT,
    BUCKET_DEVICE_STATE,
    DeploymentName,
    desired_state_key,
    device_heartbeat_key,
    device_state_key,
)
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.permissions import Permission, Permissions, device_permissions
from tests.security.conftest import (
    DEVICE_A,
    DEVICE_B,
    Intruder,
    SecureFleet,
    eventually,
    wait_until,
)

A, B = DEVICE_A, DEVICE_B
DS = BUCKET_DESIRED_STATE
WEB, DB = DeploymentName("web"), DeploymentName("db")
CREATE = f"$JS.API.CONSUMER.CREATE.KV_{DS}"
GET = f"$JS.API.DIRECT.GET.KV_{DS}"
OWN_FILTER = f"$KV.{DS}.{A}.*"
B_FILTER = f"$KV.{DS}.{B}.*"
NS = 1_000_000_000


def consumer_body(name: str, deliver: str, **config: Any) -> bytes:
    """A push consumer, the last value per key, no acks, memory storage."""
    base = {
        "name": name,
        "deliver_policy": "last_per_subject",
        "ack_policy": "none",
        "deliver_subject": deliver,
        "mem_storage": True,
        "inactive_threshold": 10 * NS,
    }
    return json.dumps({"stream_name": f"KV_{DS}", "config": base | config}).encode()


def holds_at_least(got: list[Msg], count: int) -> bool:
    return len(got) >= count


def error_code(data: bytes) -> int | None:
    error = json.loads(data).get("error")
    return None if error is None else int(error["err_code"])


async def seed(operator: Bus) -> dict[str, int]:
    """A and B each have two desired entries; returns their revisions."""
    revs = {}
    for device in (A, B):
        for deployment in (WEB, DB):
            key = desired_state_key(device, deployment)
            revs[key] = await operator.put(DS, key, f"{key} spec".encode())
    return revs


def test_a_consumer_named_with_its_filter_cannot_be_configured_for_other_keys(
    operator_bus: Bus, intruder_a: Intruder, event_loop_thread: EventLoopThread
) -> None:
    """The filter in the subject is the one the server holds the configuration to."""
    inbox = intruder_a.client.new_inbox()
    spliced: dict[str, dict[str, Any]] = {
        "B's filter in the config": {"filter_subject": B_FILTER},
        "every key in the config": {"filter_subject": f"$KV.{DS}.>"},
        "no filter in the config": {},
        "B's among several filters": {"filter_subjects": [OWN_FILTER, B_FILTER]},
        "only B's in several filters": {"filter_subjects": [B_FILTER]},
    }

    async def scenario() -> None:
        await seed(operator_bus)
        for i, (what, config) in enumerate(spliced.items()):
            name = f"feed_{A}_splice{i}"
            reply = await intruder_a.request(
                f"{CREATE}.{name}.{OWN_FILTER}", consumer_body(name, inbox, **config)
            )
            assert reply is not None, what
            assert error_code(reply.data) in (10131, 10137), (what, reply.data)

    event_loop_thread.run(scenario(), timeout=30)


def test_its_own_consumer_delivers_its_own_keys_only(
    operator_bus: Bus, intruder_a: Intruder, event_loop_thread: EventLoopThread
) -> None:
    """Also with ``>`` written where the permission says ``*`` (a literal token there)."""

    async def scenario() -> None:
        revs = await seed(operator_bus)
        own = {k: r for k, r in revs.items() if k.startswith(f"{A}.")}
        for i, filter_subject in enumerate((OWN_FILTER, f"$KV.{DS}.{A}.>")):
            name = f"feed_{A}_own{i}"
            inbox = intruder_a.client.new_inbox()
            got = await intruder_a.collect(inbox)
            reply = await intruder_a.request(
                f"{CREATE}.{name}.{filter_subject}",
                consumer_body(name, inbox, filter_subject=filter_subject),
            )
            assert reply is not None
            assert error_code(reply.data) is None, reply.data
            await wait_until(partial(holds_at_least, got, len(own)), timeout=5, what="A's entries")
            info = await operator_bus.nc.jetstream().consumer_info(f"KV_{DS}", name)
            assert info.num_pending == 0
            assert sorted(m.subject for m in got) == sorted(f"$KV.{DS}.{k}" for k in own)
            await intruder_a.request(f"$JS.API.CONSUMER.DELETE.KV_{DS}.{name}")

    event_loop_thread.run(scenario(), timeout=30)


def test_a_deliver_subject_aimed_at_another_devices_key_changes_no_entry(
    secure_fleet: SecureFleet,
    operator_bus: Bus,
    intruder_a: Intruder,
    event_loop_thread: EventLoopThread,
) -> None:
    """The server does not check a push consumer's deliver subject against the creator's
    permissions: A may aim its own entries at B's heartbeat subject, which B's agent
    subscribes to (its duplicate-agent watch). They reach B's subscription (and B's
    watch ignores them: they are not heartbeats), and the heartbeat stream stores them
    under *their own* subject, A's desired key: never as one of B's keys
    (docs/security.md). Aimed at the JetStream API, nothing is executed."""
    heartbeat = f"$KV.{BUCKET_DEVICE_HEARTBEAT}.{device_heartbeat_key(B)}"
    purge = f"$JS.API.STREAM.PURGE.KV_{BUCKET_DEVICE_STATE}"
    witness_creds = secure_fleet.issue(  # anyone listening there: here, a test's witness
        Permissions(
            name="witness", pub=Permission(), sub=Permission(allow=(">",)), inbox_prefix="_INBOX"
        )
    )

    async def scenario() -> None:
        await seed(operator_bus)
        b_beat = await operator_bus.put(BUCKET_DEVICE_HEARTBEAT, device_heartbeat_key(B), b"b")
        b_state = await operator_bus.put(BUCKET_DEVICE_STATE, device_state_key(B, WEB), b"b")
        device_b = await Intruder.connect(
            secure_fleet,
            secure_fleet.creds[B],
            inbox_prefix=device_permissions(B).inbox_prefix,
        )
        witness = await Intruder.connect(secure_fleet, witness_creds)
        try:
            at_b = await device_b.collect(heartbeat)  # as B's duplicate watch does
            at_api = await witness.collect(purge)  # interest, or nothing is sent there
            await witness.client.flush()
            await device_b.client.flush()
            for name, target in ((f"feed_{A}_beat", heartbeat), (f"feed_{A}_api", purge)):
                reply = await intruder_a.request(
                    f"{CREATE}.{name}.{OWN_FILTER}",
                    consumer_body(name, target, filter_subject=OWN_FILTER),
                )
                assert reply is not None
                assert error_code(reply.data) is None, reply.data
            await wait_until(lambda: len(at_b) >= 2 and len(at_api) >= 2, timeout=5,
                             what="the deliveries")  # fmt: skip
        finally:
            await device_b.close()
            await witness.close()
        entry = await operator_bus.get(BUCKET_DEVICE_HEARTBEAT, device_heartbeat_key(B))
        assert entry is not None
        assert (entry.revision, entry.value) == (b_beat, b"b")
        beats = await operator_bus.snapshot(BUCKET_DEVICE_HEARTBEAT)
        assert all(key.startswith("heartbeat.") for key in beats)

        async def state_kept() -> bool:
            state = await operator_bus.get(BUCKET_DEVICE_STATE, device_state_key(B, WEB))
            return state is not None and state.revision == b_state

        await eventually(state_kept, timeout=5, what="B's state still there")

    event_loop_thread.run(scenario(), timeout=30)


def test_a_get_by_subject_cannot_be_turned_into_another_get(
    operator_bus: Bus,
    device_a_bus: Bus,
    intruder_a: Intruder,
    event_loop_thread: EventLoopThread,
) -> None:
    """On the subject form nats-server refuses a payload (408): no get by sequence, no
    ``last_by_subj`` or batch of B's keys; ``>`` where ``*`` is allowed is still A's."""

    async def scenario() -> None:
        revs = await seed(operator_bus)
        b_key = desired_state_key(B, WEB)
        own = f"{GET}.$KV.{DS}.{A}.{WEB}"
        for payload in (
            {"seq": revs[b_key]},
            {"last_by_subj": f"$KV.{DS}.{b_key}"},
            {"multi_last": [f"$KV.{DS}.{b_key}"], "batch": 10},
            {"seq": revs[b_key], "next_by_subj": f"$KV.{DS}.>"},
        ):
            reply = await intruder_a.request(own, json.dumps(payload).encode())
            assert reply is not None
            assert (reply.headers or {}).get("Status") == "408", (payload, reply.headers)
            assert reply.data == b""
        for pattern in ("*", ">"):
            reply = await intruder_a.request(f"{GET}.$KV.{DS}.{A}.{pattern}")
            assert reply is not None
            assert (reply.headers or {}).get("Nats-Subject", "").startswith(f"$KV.{DS}.{A}.")
        highest = max(r for k, r in revs.items() if k.startswith(f"{A}."))
        assert await device_a_bus.last_revision(DS, f"{A}.*") == highest

    event_loop_thread.run(scenario(), timeout=30)
