"""One push consumer on a bucket's stream, followed in order: what reads and watches are made of.

Why it exists: nats-py's ordered consumer was measured to mark the end of the initial
values early, dies silently with the server, leaves its old consumer behind on every
reset until the inactivity threshold, and (nats.py#510) does not reset when heartbeats
stop. A :class:`PushConsumer` is one *incarnation* instead: a fresh inbox subscription
and a named consumer delivering to it (``deliver_subject`` = the inbox; subscribed
first, so nothing is sent before anyone listens), each message checked:

* a delivery's consumer sequence (in its ``$JS.ACK`` reply subject) must follow the last
  one: anything else means a message was lost (a slow consumer on either side);
* an idle heartbeat names the last consumer sequence the server sent: it must be ours;
  if it says the consumer is stalled on flow control, that is answered;
* a flow control request is answered at once: the handler runs after every earlier
  delivery was handed over, which is what flow control waits for;
* two heartbeat intervals without any message (the consumer is gone: a server restart
  before the client noticed, the inactivity threshold), any other status (409 Consumer
  Deleted...), or a message that cannot be read: broken as well.

Broken, it hands over nothing more (nothing after a gap is delivered) and tells its
owner once; the owner closes it and opens another right after the last revision it
was given (:mod:`fleet.runtime.nats.read`, :mod:`fleet.runtime.nats.watch`). Closing
unsubscribes and deletes the consumer at once, each step bounded.

What it must never do: deliver out of order or twice, block in its handler, or keep
its consumer after :meth:`PushConsumer.close`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import msgspec

from fleet.errors import FleetError
from fleet.runtime.aiokit.tasks import create_guarded_task
from fleet.runtime.nats import jsapi, subjects
from fleet.runtime.nats.kv import KvEntry, operation_of
from fleet.runtime.nats.kvstore import KvStore
from fleet.runtime.nats.raw import message_of, raw_subscriber
from fleet.runtime.nats.transport import MalformedReply, Message, Subscription

logger = logging.getLogger(__name__)

CLEANUP_TIMEOUT = 1.0  # seconds a consumer delete may hold up a stop
_NS = 1_000_000_000


class ConsumerSpec(msgspec.Struct, frozen=True, kw_only=True):
    """How the consumers of one kind of reader are made."""

    prefix: str  # consumer names: <prefix>_<8 hex digits>
    heartbeat: float | None  # idle heartbeats and flow control; None: neither
    inactive_threshold: float  # the server's backstop if a delete is lost


def consumer_config(
    spec: ConsumerSpec, *, name: str, inbox: str, filter_subject: str, after: int
) -> dict[str, Any]:
    """The consumer's configuration: the last value per key (``after`` 0), or every
    message after revision ``after``; no acks, memory storage, one replica. With a
    heartbeat, as nats-py's ordered consumer asks (flow control, one delivery, 22 h ack
    wait); without, as the desired feed's initial read always asked."""
    config: dict[str, Any] = {"name": name}
    if after == 0:
        config["deliver_policy"] = "last_per_subject"
    else:
        config |= {"deliver_policy": "by_start_sequence", "opt_start_seq": after + 1}
    config["ack_policy"] = "none"
    if spec.heartbeat is not None:
        config |= {"ack_wait": 22 * 3600 * _NS, "max_deliver": 1}
    config |= {"filter_subject": filter_subject, "replay_policy": "instant"}
    if spec.heartbeat is not None:
        config |= {"flow_control": True, "idle_heartbeat": int(spec.heartbeat * _NS)}
    config |= {
        "deliver_subject": inbox,
        "inactive_threshold": int(spec.inactive_threshold * _NS),
        "num_replicas": 1,
        "mem_storage": True,
    }
    if spec.heartbeat is None:
        config |= {"ack_wait": 0, "idle_heartbeat": 0}
    return config


class PushConsumer:
    """One consumer of ``bucket``'s keys matching ``key_filter``, from after revision ``after``.

    ``on_entry`` gets each entry in stream order; ``on_broken`` (once) a reason to start
    over. Both run on the loop and must not block. :meth:`open`, then :meth:`close`.
    """

    def __init__(
        self,
        kv: KvStore,
        *,
        bucket: str,
        key_filter: str,
        spec: ConsumerSpec,
        after: int,
        on_entry: Callable[[KvEntry], None],
        on_broken: Callable[[str], None],
        raw: bool = False,
    ) -> None:
        """``raw``: take the deliveries as bytes straight from the client's parser, when the
        transport can (:mod:`fleet.runtime.nats.raw`; the heartbeat watch's 10,000 a second)."""
        self._raw = raw
        self._kv = kv
        self._bucket = bucket
        self._filter = subjects.kv_filter(bucket, key_filter)
        self._prefix = subjects.kv_prefix(bucket)
        self._spec = spec
        self._after = after
        self._on_entry = on_entry
        self._on_broken = on_broken
        self.name = subjects.consumer_name(spec.prefix)
        self._sub: Subscription | None = None
        self._created = False  # the create was sent: delete it on close, whatever came back
        self._closed = False
        self._broken = False
        self._consumer_seq = 0  # the last consumer sequence accepted
        self._active = False  # any message since the last activity check
        self._timer: asyncio.TimerHandle | None = None

    @property
    def broken(self) -> bool:
        return self._broken

    async def open(self) -> None:
        """Subscribe the inbox, then create the consumer; on failure nothing is left."""
        transport = self._kv.transport
        inbox = transport.new_inbox()
        try:
            fast = raw_subscriber(transport) if self._raw else None
            if fast is not None:
                self._sub = await fast.subscribe_raw(inbox, self._on_raw)
            else:
                self._sub = await transport.subscribe(inbox, self._on_message)
            config = consumer_config(
                self._spec, name=self.name, inbox=inbox, filter_subject=self._filter,
                after=self._after,
            )  # fmt: skip
            body = jsapi.encode({"stream_name": subjects.stream(self._bucket), "config": config})
            self._created = True  # unless refused: without an answer it may exist
            await jsapi.call(
                transport,
                subjects.consumer_create(self._bucket, self.name, self._filter),
                body,
                what=f"create consumer {self.name} on {subjects.stream(self._bucket)}",
                timeout=self._kv.timeout,
            )
        except jsapi.ApiRefused:  # e.g. the stream's consumer limit: nothing to delete
            self._created = False
            await self.close()
            raise
        except BaseException:
            await self.close()
            raise
        if self._spec.heartbeat is not None and not self._closed:
            self._arm()

    async def close(self) -> None:
        """Unsubscribe and delete the consumer now (bounded; errors are not raised).

        Unsubscribing alone would leave the consumer on the server until its inactive
        threshold; a fleet reconnecting at once would pile them up against the stream's
        cap (1,000 by default). When NATS is away the delete fails fast or times out,
        and the threshold removes the consumer.
        """
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._sub is not None:
            await self._sub.unsubscribe()
        if self._created:
            try:
                await jsapi.call(
                    self._kv.transport,
                    subjects.consumer_delete(self._bucket, self.name),
                    b"",
                    what=f"delete consumer {self.name}",
                    timeout=CLEANUP_TIMEOUT,
                )
            except FleetError as exc:  # gone already, or NATS away: the threshold removes it
                logger.debug("consumer %s not deleted: %s", self.name, exc)

    # -- on the loop, per message ---------------------------------------------------

    def _on_message(self, msg: Message) -> None:  # per message: kept lean
        if self._closed or self._broken:
            return
        self._active = True
        reply = msg.reply
        if not reply.startswith(subjects.ACK_PREFIX):
            self._on_status(msg)
            return
        try:
            stream_seq, consumer_seq = subjects.parse_delivery(reply)
        except MalformedReply as exc:
            self._break(str(exc))
            return
        subject = msg.subject
        if not subject.startswith(self._prefix) or len(subject) == len(self._prefix):
            self._break(f"delivery subject {subject[:200]!r} is not under {self._prefix!r}")
            return
        if consumer_seq != self._consumer_seq + 1:
            self._break(f"consumer sequence {consumer_seq} after {self._consumer_seq}")
            return
        self._consumer_seq = consumer_seq
        self._on_entry(
            KvEntry(
                bucket=self._bucket,
                key=subject[len(self._prefix) :],
                value=msg.data,
                revision=stream_seq,
                operation=operation_of(msg.headers) if msg.headers else "PUT",
            )
        )

    def _on_raw(self, subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
        try:
            msg = message_of(subject, reply, data, headers)
        except MalformedReply as exc:
            try:  # a stored entry whose header block is junk (whoever wrote the key chose
                # it): delivered without it, so the consumer goes past it; the entry's
                # value then meets its reader's decoder like any other
                if not reply.startswith(b"$JS.ACK."):
                    raise
                msg = message_of(subject, reply, data, None)
            except MalformedReply:
                if not (self._closed or self._broken):
                    self._break(str(exc))
                return
        self._on_message(msg)

    def _on_status(self, msg: Message) -> None:
        headers = msg.headers or {}
        status = headers.get(subjects.STATUS)
        if status != subjects.STATUS_CONTROL or msg.data:
            description = headers.get(subjects.DESCRIPTION, "")
            self._break(f"status {status} {description}".strip() if status else "not a delivery")
            return
        if msg.reply:  # a flow control request
            self._answer(msg.reply)
            return
        stalled = headers.get(subjects.CONSUMER_STALLED)
        if stalled:
            self._answer(stalled)
        last = headers.get(subjects.LAST_CONSUMER)
        if last is not None and last != str(self._consumer_seq):
            self._break(f"heartbeat says consumer sequence {last}, seen {self._consumer_seq}")

    def _answer(self, subject: str) -> None:
        create_guarded_task(
            self._publish(subject), name=f"flow-control-{self.name}", finishable=True
        )

    async def _publish(self, subject: str) -> None:
        try:
            await self._kv.transport.publish(subject)
        except FleetError as exc:  # the consumer stalls, the heartbeat check breaks it
            logger.debug("consumer %s: flow control answer lost: %s", self.name, exc)

    def _break(self, reason: str) -> None:
        if self._broken:
            return
        self._broken = True
        try:
            self._on_broken(reason)
        except Exception:
            logger.exception("consumer %s: on_broken failed", self.name)

    # -- activity -----------------------------------------------------------------

    def _arm(self) -> None:
        assert self._spec.heartbeat is not None
        self._timer = asyncio.get_running_loop().call_later(
            2 * self._spec.heartbeat, self._check_activity
        )

    def _check_activity(self) -> None:
        self._timer = None
        if self._closed or self._broken:
            return
        if not self._active:
            self._break("no message or heartbeat for two heartbeat intervals")
            return
        self._active = False
        self._arm()
