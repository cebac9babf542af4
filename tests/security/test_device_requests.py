"""Logs and describe on demand under per-device credentials: only a device hears the
requests made of it, only ``fleetctl`` may ask, and a device answers only into the
inboxes of asks of itself (``_INBOX_fleetctl.ask.<device>.``): not into fleetctl's other
inboxes, not posing as another device, and not into the operator's acknowledgement inbox
of a write it hears (no response permission).

Device B's credentials attack device A's request subjects (subscribe, publish a
request, wildcards); each must be refused by nats-server itself."""

from __future__ import annotations

from nats.aio.msg import Msg

from fleet.contracts import BUCKET_DESIRED_STATE, DeploymentName, desired_state_key
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats import subjects
from fleet.runtime.nats.permissions import (
    device_permissions,
    fleetctl_permissions,
    operator_permissions,
)
from tests.budgets import budget
from tests.security.conftest import DEVICE_A, DEVICE_B, Intruder, SecureFleet, wait_until

A_LOGS = subjects.device_request(DEVICE_A, "logs")
A_DESCRIBE = subjects.device_request(DEVICE_A, "describe")


def ask_of(device: str) -> str:
    """The reply base of one of fleetctl's asks of ``device``, as device_ask makes it."""
    inbox = f"{fleetctl_permissions().inbox_prefix}.tok"
    return subjects.ask_inbox(inbox, device)  # type: ignore[arg-type]


async def round_trip(*clients: Intruder) -> None:
    """Every client's messages so far processed by the server (a PING answered each)."""
    for client in clients:
        await client.client.flush(timeout=10)


async def connect(fleet: SecureFleet, who: str) -> Intruder:
    prefix = (fleetctl_permissions().inbox_prefix if who == "fleetctl"
              else device_permissions(who).inbox_prefix)  # type: ignore[arg-type]  # fmt: skip
    return await Intruder.connect(fleet, fleet.creds[who], inbox_prefix=prefix)


def test_another_device_cannot_hear_or_ask_a_devices_requests(
    secure_fleet: SecureFleet, event_loop_thread: EventLoopThread
) -> None:
    async def scenario() -> None:
        a = await connect(secure_fleet, DEVICE_A)
        b = await connect(secure_fleet, DEVICE_B)
        try:
            heard_by_a: list[Msg] = []

            async def answer(msg: Msg) -> None:
                heard_by_a.append(msg)
                await a.client.publish(msg.reply, b"answered")

            for subject in (A_LOGS, A_DESCRIBE):
                await a.client.subscribe(subject, cb=answer)
            hostile = (A_LOGS, A_DESCRIBE, "fleet.device.*.logs", "fleet.device.>", "fleet.>")
            spied = {s: await b.collect(s) for s in hostile}
            for subject in spied:
                await b.refused("subscription", subject)
            # B asks A: refused by the server, A never hears it.
            for subject in (A_LOGS, A_DESCRIBE):
                assert await b.request(subject, b"{}") is None
                await b.refused("publish", subject)
            # fleetctl asks A, with a reply subject naming A: A hears it, its answer comes back.
            ctl = await connect(secure_fleet, "fleetctl")
            try:
                answers = await ctl.collect(f"{ask_of(DEVICE_A)}.*")
                await ctl.client.flush()
                await ctl.client.publish(A_DESCRIBE, b"{}", reply=f"{ask_of(DEVICE_A)}.1")
                await wait_until(lambda: bool(answers), timeout=budget(10), what="A's answer")
                assert answers[0].data == b"answered"
            finally:
                await ctl.close()
            assert [m.subject for m in heard_by_a] == [A_DESCRIBE]
            assert {s: len(got) for s, got in spied.items() if got} == {}
        finally:
            await a.close()
            await b.close()

    event_loop_thread.run(scenario(), timeout=budget(60))


def test_a_device_answers_only_into_asks_of_itself(
    secure_fleet: SecureFleet, event_loop_thread: EventLoopThread
) -> None:
    async def scenario() -> None:
        a = await connect(secure_fleet, DEVICE_A)
        ctl = await connect(secure_fleet, "fleetctl")
        try:
            prefix = fleetctl_permissions().inbox_prefix
            got = await ctl.collect(f"{prefix}.>")
            await ctl.client.flush()
            # Into fleetctl's other inboxes, or posing as device B: refused (forged answers).
            for forged in (f"{prefix}.attack.1", f"{ask_of(DEVICE_B)}.1", f"{prefix}.ask.1"):
                await a.client.publish(forged, b"forged")
                await a.refused("publish", forged)
            # Into an ask of itself: delivered.
            mine = f"{ask_of(DEVICE_A)}.1"
            await a.client.publish(mine, b"answer")
            await wait_until(lambda: bool(got), timeout=budget(10), what="A's answer")
            await round_trip(a, ctl)  # anything forged would have come before this
            assert [(m.subject, m.data) for m in got] == [(mine, b"answer")]
        finally:
            await a.close()
            await ctl.close()

    event_loop_thread.run(scenario(), timeout=budget(60))


def test_a_device_cannot_answer_the_operators_write_of_its_own_key(
    secure_fleet: SecureFleet, event_loop_thread: EventLoopThread
) -> None:
    """The operator's desired-state writes carry its acknowledgement inbox as their reply
    subject, and the device hears them: with a response permission nats-server would let
    the device answer there (a forged acknowledgement). It has none."""

    async def scenario() -> None:
        a = await connect(secure_fleet, DEVICE_A)
        operator = await Intruder.connect(
            secure_fleet, secure_fleet.creds["operator"],
            inbox_prefix=operator_permissions().inbox_prefix,
        )  # fmt: skip
        try:
            key = desired_state_key(DEVICE_A, DeploymentName("web"))
            heard: list[Msg] = []

            async def keep(msg: Msg) -> None:
                heard.append(msg)

            await a.client.subscribe(subjects.kv_subject(BUCKET_DESIRED_STATE, key), cb=keep)
            await a.client.flush()
            ack_inbox = f"{operator_permissions().inbox_prefix}.acks.1"
            acks = await operator.collect(ack_inbox)
            await operator.client.publish(
                subjects.kv_subject(BUCKET_DESIRED_STATE, key), b"{}", reply=ack_inbox
            )
            await wait_until(lambda: bool(heard), timeout=budget(10), what="A hears the write")
            assert heard[0].reply == ack_inbox
            await a.client.publish(ack_inbox, b'{"stream":"forged","seq":1}')
            await a.refused("publish", ack_inbox)
            await wait_until(lambda: bool(acks), timeout=budget(10), what="JetStream's ack")
            await round_trip(a, operator)
            assert all(b"forged" not in m.data for m in acks), [m.data for m in acks]
        finally:
            await a.close()
            await operator.close()

    event_loop_thread.run(scenario(), timeout=budget(60))


def test_fleetctl_may_ask_but_not_listen_as_a_device(
    secure_fleet: SecureFleet, event_loop_thread: EventLoopThread
) -> None:
    async def scenario() -> None:
        ctl = await connect(secure_fleet, "fleetctl")
        try:
            await ctl.collect(A_LOGS)
            await ctl.refused("subscription", A_LOGS)
        finally:
            await ctl.close()

    event_loop_thread.run(scenario(), timeout=budget(30))
