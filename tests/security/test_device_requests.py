"""Logs and describe on demand under per-device credentials: only a device hears the
requests made of it, only ``fleetctl`` may ask, and a device answers only who asked,
at most as many messages as its response permission allows.

Device B's credentials attack device A's request subjects (subscribe, publish a
request, wildcards); each must be refused by nats-server itself."""

from __future__ import annotations

import asyncio

from nats.aio.msg import Msg

from fleet.contracts.ondemand import MAX_REPLIES_PER_REQUEST
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats import subjects
from fleet.runtime.nats.permissions import device_permissions, fleetctl_permissions
from tests.budgets import budget
from tests.security.conftest import DEVICE_A, DEVICE_B, Intruder, SecureFleet, wait_until

A_LOGS = subjects.device_request(DEVICE_A, "logs")
A_DESCRIBE = subjects.device_request(DEVICE_A, "describe")


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
            # fleetctl asks A: A hears it, and its answer comes back (a response permission).
            ctl = await connect(secure_fleet, "fleetctl")
            try:
                reply = await ctl.request(A_DESCRIBE, b"{}")
                assert reply is not None
                assert reply.data == b"answered"
            finally:
                await ctl.close()
            assert [m.subject for m in heard_by_a] == [A_DESCRIBE]
            assert {s: len(got) for s, got in spied.items() if got} == {}
        finally:
            await a.close()
            await b.close()

    event_loop_thread.run(scenario(), timeout=budget(60))


def test_a_device_answers_only_who_asked_and_only_so_many_times(
    secure_fleet: SecureFleet, event_loop_thread: EventLoopThread
) -> None:
    async def scenario() -> None:
        a = await connect(secure_fleet, DEVICE_A)
        ctl = await connect(secure_fleet, "fleetctl")
        try:
            inbox = f"{fleetctl_permissions().inbox_prefix}.attack"
            got = await ctl.collect(f"{inbox}.*")
            # Unasked, A may not publish into fleetctl's inboxes (forged answers).
            await a.client.publish(f"{inbox}.1", b"forged")
            await a.refused("publish", f"{inbox}.1")
            requests: list[Msg] = []

            async def keep(msg: Msg) -> None:
                requests.append(msg)

            await a.client.subscribe(A_LOGS, cb=keep)
            await a.client.flush()
            await ctl.client.publish(A_LOGS, b"{}", reply=f"{inbox}.2")
            await wait_until(lambda: bool(requests), timeout=budget(10), what="A hears it")
            for i in range(MAX_REPLIES_PER_REQUEST + 5):
                await a.client.publish(requests[0].reply, str(i).encode())
            await a.refused("publish", f"{inbox}.2")
            await a.client.flush()
            await wait_until(lambda: len(got) >= MAX_REPLIES_PER_REQUEST, timeout=budget(10),
                             what="the allowed answers")  # fmt: skip
            await asyncio.sleep(0.5)  # anything past the bound would have come by now
            assert [m.data for m in got] == [
                str(i).encode() for i in range(MAX_REPLIES_PER_REQUEST)
            ]
        finally:
            await a.close()
            await ctl.close()

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
