"""A small in-memory JetStream behind the transport port, for fast tests of the KV rules.

It answers what fleet sends (KV writes with their acknowledgements and compare-and-swap
headers, direct gets of a key and of the last among a filter's keys, consumer create and
delete, stream info) and pushes consumer deliveries with their ``$JS.ACK`` reply
subjects, one per loop turn.
Tests then break the server on purpose: lose a delivery (``lose``: the n-th consumer's
delivery with that consumer sequence), send a status or a
heartbeat (``inject``), go silent, answer garbage (``answers``).
It is a fake behind the same port as nats-py and the lean client, not a second server:
only the behaviour fleet relies on is here.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from fleet.errors import BusUnavailable
from fleet.runtime.nats.transport import Message, MessageHandler, Subscription, Transport


def matches(pattern: str, subject: str) -> bool:
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)


@dataclass
class StoredMessage:
    seq: int
    subject: str
    data: bytes
    headers: dict[str, str]


@dataclass
class Consumer:
    name: str
    stream: str
    config: dict[str, object]
    deliver: str
    consumer_seq: int = 0
    next_seq: int = 0  # the next stream sequence to look at
    deleted: bool = False


@dataclass
class _Sub(Subscription):
    server: FakeJetStream
    subject: str
    handler: MessageHandler
    active: bool = True

    async def unsubscribe(self) -> None:
        self.active = False
        if self in self.server.subs:
            self.server.subs.remove(self)


@dataclass
class FakeJetStream(Transport):
    """One stream per bucket (``KV_<bucket>``, history 1), and the port onto it."""

    streams: dict[str, list[StoredMessage]] = field(default_factory=dict)
    seqs: dict[str, int] = field(default_factory=dict)
    consumers: dict[str, Consumer] = field(default_factory=dict)
    created: list[Consumer] = field(default_factory=list)  # every consumer ever made
    deleted: list[str] = field(default_factory=list)
    published: list[tuple[str, bytes, str, dict[str, str]]] = field(default_factory=list)
    subs: list[_Sub] = field(default_factory=list)
    lose: set[tuple[int, int]] = field(default_factory=set)  # (n-th consumer made, its seq)
    answers: dict[str, Callable[[str, bytes], Message]] = field(default_factory=dict)
    is_up: bool = True
    hang: bool = False  # requests are never answered (each times out)
    _inbox: int = 0
    _listeners: list[Callable[[], None]] = field(default_factory=list)

    # -- the port ---------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.is_up

    async def wait_connected(self, *, timeout: float | None) -> None:
        if self.is_up:
            return
        try:  # a fake that went away never comes back
            await asyncio.wait_for(asyncio.Event().wait(), timeout)
        except TimeoutError as exc:
            raise BusUnavailable("fake server away") from exc

    def add_reconnect_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def reconnect(self) -> None:
        for listener in list(self._listeners):
            listener()

    def new_inbox(self) -> str:
        self._inbox += 1
        return f"_INBOX.fake{self._inbox}"

    async def publish(
        self,
        subject: str,
        payload: bytes = b"",
        *,
        reply: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._check_up()
        self.published.append((subject, payload, reply, dict(headers or {})))
        answer = self._answer(subject, payload, dict(headers or {}))
        if answer is not None and reply:
            ack = Message(subject=reply, data=answer.data, headers=answer.headers)
            asyncio.get_running_loop().call_soon(self.send, ack)

    async def subscribe(self, subject: str, handler: MessageHandler) -> Subscription:
        self._check_up()
        sub = _Sub(self, subject, handler)
        self.subs.append(sub)
        return sub

    async def request(
        self,
        subject: str,
        payload: bytes = b"",
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float,
    ) -> Message:
        self._check_up()
        self.published.append((subject, payload, "request", dict(headers or {})))
        if self.hang:
            await asyncio.sleep(timeout)
            raise BusUnavailable(f"no reply from {subject} within {timeout}s")
        await asyncio.sleep(0)
        answer = self._answer(subject, payload, dict(headers or {}))
        if answer is None:
            raise BusUnavailable(f"no responders on {subject}")
        return answer

    async def flush(self, *, timeout: float) -> None:
        self._check_up()

    def _check_up(self) -> None:
        if not self.is_up:
            raise BusUnavailable("fake server away")

    # -- delivering ---------------------------------------------------------------------

    def send(self, msg: Message, *, to: str | None = None) -> None:
        """Hand ``msg`` to every subscription ``to`` (default: its subject) matches: one
        message on the wire (a delivery keeps its own subject, sent to the inbox)."""
        for sub in list(self.subs):
            if sub.active and matches(sub.subject, to or msg.subject):
                sub.handler(msg)

    def inject(
        self,
        consumer: Consumer,
        *,
        status: str,
        description: str = "",
        reply: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """A status message on ``consumer``'s deliver subject (a heartbeat, flow control...)."""
        all_headers = {"Status": status, "Description": description, **(headers or {})}
        if not status:
            all_headers = {}
        self.send(Message(subject=consumer.deliver, reply=reply, headers=all_headers or None))

    def _push(self, consumer: Consumer) -> None:
        """Deliver what ``consumer`` has not delivered yet, one message per loop turn."""
        if consumer.deleted or consumer.name not in self.consumers:
            return
        stream = self.streams.get(consumer.stream, [])
        pending = [m for m in stream if m.seq >= consumer.next_seq and self._wanted(consumer, m)]
        if not pending:
            return
        msg = pending[0]
        consumer.next_seq = msg.seq + 1
        consumer.consumer_seq += 1
        if (self.created.index(consumer), consumer.consumer_seq) not in self.lose:
            left = len(pending) - 1
            reply = (
                f"$JS.ACK.{consumer.stream}.{consumer.name}.1.{msg.seq}."
                f"{consumer.consumer_seq}.1700000000000000000.{left}"
            )
            headers = msg.headers or None
            delivery = Message(subject=msg.subject, reply=reply, data=msg.data, headers=headers)
            self.send(delivery, to=consumer.deliver)
        asyncio.get_running_loop().call_soon(self._push, consumer)

    def _wanted(self, consumer: Consumer, msg: StoredMessage) -> bool:
        return matches(str(consumer.config["filter_subject"]), msg.subject)

    # -- the server's side ----------------------------------------------------------------

    def _answer(self, subject: str, payload: bytes, headers: dict[str, str]) -> Message | None:
        for prefix, answer in self.answers.items():
            if subject.startswith(prefix):
                return answer(subject, payload)
        if subject.startswith("$KV."):
            return self._write(subject, payload, headers)
        handlers: dict[str, Callable[[str, bytes], Message]] = {
            "$JS.API.DIRECT.GET.": self._direct_get,
            "$JS.API.CONSUMER.CREATE.": self._create_consumer,
            "$JS.API.CONSUMER.DELETE.": self._delete_consumer,
            "$JS.API.STREAM.INFO.": self._stream_info,
            "$JS.API.STREAM.CREATE.": self._create_stream,
        }
        for prefix, handler in handlers.items():
            if subject.startswith(prefix):
                return handler(subject, payload)
        return None

    def _delete_consumer(self, subject: str, payload: bytes) -> Message:
        consumer = self.consumers.pop(subject.split(".")[5], None)
        if consumer is None:
            return _error(404, 10014, "consumer not found")
        consumer.deleted = True
        self.deleted.append(consumer.name)
        return _json({"success": True})

    def _stream_info(self, subject: str, payload: bytes) -> Message:
        name = subject.split(".")[4]
        if name not in self.streams:
            return _error(404, 10059, "stream not found")
        return _json({"config": {"name": name, "max_msg_size": -1}, "state": {}})

    def _create_stream(self, subject: str, payload: bytes) -> Message:
        self.streams.setdefault(subject.split(".")[4], [])
        return _json({"config": json.loads(payload)})

    def _stream_of(self, subject: str) -> str:
        return f"KV_{subject.split('.')[1]}"

    def _write(self, subject: str, payload: bytes, headers: dict[str, str]) -> Message | None:
        stream = self._stream_of(subject)
        if stream not in self.streams:
            return None  # no responders
        messages = self.streams[stream]
        current = next((m for m in messages if m.subject == subject), None)
        expected = headers.get("Nats-Expected-Last-Subject-Sequence")
        last = current.seq if current else 0
        if expected is not None and int(expected) != last:
            return _error(400, 10071, f"wrong last sequence: {last}")
        seq = self.seqs.get(stream, 0) + 1
        self.seqs[stream] = seq
        if current is not None:
            messages.remove(current)
        kept = {k: v for k, v in headers.items() if k == "KV-Operation"}
        messages.append(StoredMessage(seq, subject, payload, kept))
        for consumer in list(self.consumers.values()):
            if consumer.stream == stream and self._wanted(consumer, messages[-1]):
                asyncio.get_running_loop().call_soon(self._push, consumer)
        return _json({"stream": stream, "seq": seq})

    def _direct_get(self, subject: str, payload: bytes) -> Message:
        tokens = subject.split(".")
        stream = tokens[4]
        messages = self.streams.get(stream, [])
        if len(tokens) > 5 and not payload:  # the last message among the subjects matching
            wanted = ".".join(tokens[5:])
            found = [m for m in messages if matches(wanted, m.subject)]
        else:  # a payload on the subject form is refused; the payload form is unused
            return Message(subject="", headers={"Status": "408", "Description": "Bad Request"})
        if not found:
            return Message(subject="", headers={"Status": "404", "Description": "Not Found"})
        last = max(found, key=lambda m: m.seq)
        headers = {"Nats-Sequence": str(last.seq), **last.headers}
        return Message(subject="", data=last.data, headers=headers)

    def _create_consumer(self, subject: str, payload: bytes) -> Message:
        body = json.loads(payload)
        config = body["config"]
        stream = body["stream_name"]
        consumer = Consumer(config["name"], stream, config, config["deliver_subject"])
        if config["deliver_policy"] == "by_start_sequence":
            consumer.next_seq = int(config["opt_start_seq"])
        else:  # last per subject: with history 1, everything there is
            consumer.next_seq = 0
        self.consumers[consumer.name] = consumer
        self.created.append(consumer)
        asyncio.get_running_loop().call_soon(self._push, consumer)
        return _json({"name": consumer.name, "config": config})

    def put_now(self, bucket: str, key: str, value: bytes, *, delete: bool = False) -> int:
        """Write directly into the store (as another client would)."""
        headers = {"KV-Operation": "DEL"} if delete else {}
        self.streams.setdefault(f"KV_{bucket}", [])
        ack = self._write(f"$KV.{bucket}.{key}", value, headers)
        assert ack is not None
        return int(json.loads(ack.data)["seq"])


def _json(answer: object) -> Message:
    return Message(subject="", data=json.dumps(answer).encode())


def _error(code: int, err_code: int, description: str) -> Message:
    return _json({"error": {"code": code, "err_code": err_code, "description": description}})
