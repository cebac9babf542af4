"""The enrollment subjects' boundary: a bootstrap credential can only ask; a device can
only renew itself; only the operator hears the requests and answers them once.

On the real server (``secure_fleet``): a bootstrap connection tries every other
operation (every bucket's writes and reads, the JetStream API, subscribing to the
requests or to anything but its inbox prefix, renewal subjects, the system subjects)
and each is refused. All bootstrap connections share the inbox prefix ``_INBOX_bootstrap``:
one may hear another's answers, which is harmless because an answer's JWT is for the
asker's *public* key and useless without the seed that never left the asker
(docs/security.md).
"""

from __future__ import annotations

import asyncio

import pytest
from nats.aio.msg import Msg

from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats import subjects
from fleet.runtime.nats.permissions import (
    bootstrap_permissions,
    enrollment_permissions,
    operator_permissions,
)
from tests.security.conftest import (
    DEVICE_A,
    DEVICE_B,
    Intruder,
    SecureFleet,
    wait_until,
)
from tests.security.test_permissions import matches

pytestmark = pytest.mark.timeout(60)

FORBIDDEN_PUBLISH = [
    "$KV.desired-state.dev-a.web",
    "$KV.device-info.info.dev-a",
    "$KV.device-state.state.dev-a.web",
    "$KV.device-heartbeat.heartbeat.dev-a",
    "$JS.API.STREAM.INFO.KV_desired-state",
    "$JS.API.DIRECT.GET.KV_desired-state.$KV.desired-state.dev-a.web",
    "$JS.API.CONSUMER.CREATE.KV_desired-state.x.$KV.desired-state.>",
    "$JS.API.STREAM.PURGE.KV_device-info",
    "fleet.renew.dev-a",
    "$SYS.REQ.CLAIMS.UPDATE",
    "_INBOX_operator.x",
]
FORBIDDEN_SUBSCRIBE = [">", "fleet.enroll", "fleet.renew.*", "$KV.>", "_INBOX_operator.>",
                       "_INBOX_device_dev-a.>", "_INBOX.>"]  # fmt: skip


def test_the_bootstrap_lists_allow_asking_only() -> None:
    allowed = bootstrap_permissions()
    assert allowed.pub.allow == (subjects.ENROLL,)
    assert allowed.sub.allow == ("_INBOX_bootstrap.>",)
    assert allowed.inbox_prefix == subjects.BOOTSTRAP_INBOX_PREFIX
    assert allowed.responses == 0
    for subject in FORBIDDEN_PUBLISH:
        assert not any(matches(p, subject) for p in allowed.pub.allow), subject


def test_the_enrollment_desk_hears_requests_and_may_answer_each_once() -> None:
    allowed = enrollment_permissions()
    assert subjects.ENROLL in allowed.sub.allow
    assert subjects.renew_all() in allowed.sub.allow
    assert allowed.responses == 1
    assert allowed.pub.allow == ()  # nothing but the answers
    # the operator's main connection hears none and has no response permission
    main = operator_permissions()
    assert main.responses == 0
    assert not any(matches(p, subjects.ENROLL) for p in main.sub.allow)
    for who in (allowed, main):
        assert not any(matches(p, "_INBOX_bootstrap.x.y") for p in who.pub.allow)


def test_a_bootstrap_credential_can_only_ask(
    secure_fleet: SecureFleet, event_loop_thread: EventLoopThread
) -> None:
    creds = secure_fleet.issue(bootstrap_permissions())

    async def attack() -> None:
        intruder = await Intruder.connect(
            secure_fleet, creds, inbox_prefix=subjects.BOOTSTRAP_INBOX_PREFIX
        )
        try:
            for subject in FORBIDDEN_PUBLISH:
                await intruder.client.publish(subject, b"{}")
                await intruder.refused("publish", subject)
            for subject in FORBIDDEN_SUBSCRIBE:
                await intruder.client.subscribe(subject)
                await intruder.refused("subscription", subject)
            await intruder.client.publish(subjects.ENROLL, b"{}")  # allowed: asking
            await intruder.client.subscribe("_INBOX_bootstrap.mine.>")  # its inboxes
            await intruder.client.flush(timeout=5)
            assert not any(f'publish to "{subjects.ENROLL}"' in r for r in intruder.refusals)
            assert not any("_inbox_bootstrap.mine" in r for r in intruder.refusals)
        finally:
            await intruder.close()

    event_loop_thread.run(attack(), timeout=45)


def test_a_device_can_renew_itself_only(
    secure_fleet: SecureFleet, intruder_a: Intruder, event_loop_thread: EventLoopThread
) -> None:
    async def attack() -> None:
        await intruder_a.client.publish(subjects.renew(DEVICE_B), b"{}")
        await intruder_a.refused("publish", subjects.renew(DEVICE_B))
        await intruder_a.client.publish(subjects.ENROLL, b"{}")
        await intruder_a.refused("publish", subjects.ENROLL)
        await intruder_a.client.publish(subjects.renew(DEVICE_A), b"{}")
        await intruder_a.client.flush(timeout=5)
        assert not any(f'"{subjects.renew(DEVICE_A)}"' in r for r in intruder_a.refusals)

    event_loop_thread.run(attack(), timeout=30)


def _no_responders(msg: Msg) -> bool:
    return (msg.headers or {}).get("Status") == "503"


def test_the_enrollment_desk_answers_a_request_once_and_nowhere_else(
    secure_fleet: SecureFleet, event_loop_thread: EventLoopThread
) -> None:
    """The response permission: one answer to the asker's inbox, not a second one."""
    asker_creds = secure_fleet.issue(bootstrap_permissions())

    async def run() -> None:
        operator = await Intruder.connect(
            secure_fleet, secure_fleet.issue(enrollment_permissions()),
            inbox_prefix=enrollment_permissions().inbox_prefix,
        )  # fmt: skip
        asker = await Intruder.connect(
            secure_fleet, asker_creds, inbox_prefix=subjects.BOOTSTRAP_INBOX_PREFIX
        )
        try:
            got = await asker.collect("_INBOX_bootstrap.me.>")

            async def answer(msg: object) -> None:
                reply = msg.reply  # type: ignore[attr-defined]
                await operator.client.publish(reply, b"first")
                await operator.client.publish(reply, b"second")
                # both written and processed (a PING answered after them), so the
                # server's -ERR for the second is on its way before the test looks
                await operator.client.flush(timeout=10)

            await operator.client.subscribe(subjects.ENROLL, cb=answer)
            await operator.client.flush(timeout=5)
            # Under load the server has answered a request sent right after the SUB with
            # "no responders" (an empty 503 status message): the subscription not yet
            # reachable through the bootstrap account's import. Asked again, on a new
            # inbox each time, until the operator's answer comes (as agents retry).
            for attempt in range(1, 21):
                inbox = f"_INBOX_bootstrap.me.{attempt}"
                await asker.client.publish(subjects.ENROLL, b"{}", reply=inbox)
                await wait_until(lambda: len(got) >= 1, timeout=5, what="an answer")
                if got[0].data or not _no_responders(got[0]):
                    break
                got.clear()
                await asyncio.sleep(0.2)
            await operator.refused("publish", inbox)
            assert [m.data for m in got] == [b"first"]
            await operator.client.publish("_INBOX_bootstrap.other.1", b"unasked")
            await operator.refused("publish", "_INBOX_bootstrap.other.1")
        finally:
            await asker.close()
            await operator.close()

    event_loop_thread.run(run(), timeout=45)
