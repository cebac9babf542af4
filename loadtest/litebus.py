"""``LiteBus``: the part of ``fleet.runtime.nats.bus.Bus`` simulated devices use (lean client).

Why it exists: a swarm process runs thousands of simulated devices on one loop, and
nats-py's per-request CPU cost bounded how fast they react (see
:mod:`loadtest.natsproto`). ``LiteBus`` offers exactly what :class:`loadtest.device.
SimulatedDevice`, :mod:`loadtest.feed`, :class:`fleet.runtime.nats.desired_feed.DesiredFeed`
and :func:`fleet.runtime.nats.desired_snapshot.read_desired_snapshot` call on a ``Bus``
(``start``, ``wait_connected``, ``close``, ``request_timeout``,
``add_reconnect_listener``, ``put``, ``last_revision``, ``ensure_buckets``, ``nc``, and
``js.add_consumer``/``js.delete_consumer``), sending the same requests nats-py sends and
raising fleet's errors the way ``Bus`` maps them: ``BusUnavailable`` for no responders,
timeouts, a lost connection or a JetStream 503; ``RevisionMismatch`` for a wrong last
sequence; ``BusError`` for any other error answer. A ``get`` (direct get) is there for
tests and benchmarks.

Differences from ``Bus``, on purpose: it never reconnects (the listener it accepts never
fires; once the connection is gone ``wait_connected`` raises ``BusUnavailable`` at once
and every call fails the same way), and ``ensure_buckets`` only checks the buckets exist
(the run's control plane creates them with a real ``Bus``).

What it must never do: create or change streams, or be used by anything but the swarm.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from nats.js import api

from fleet.errors import BusError, BusUnavailable, RevisionMismatch
from fleet.runtime.nats.bus import BUCKETS
from fleet.runtime.nats.kv import KvEntry, last_revision_of, last_revision_request, operation_of
from loadtest.natsmsg import Msg
from loadtest.natsproto import NatsClient, NatsError, NoResponders

_WRONG_LAST_SEQUENCE = 10071  # JetStream err_code of a lost compare-and-swap


class _ApiError(msgspec.Struct):
    code: int = 0
    err_code: int = 0
    description: str = ""


class _PubAck(msgspec.Struct):
    stream: str = ""
    seq: int = 0
    error: _ApiError | None = None


_decode_ack = msgspec.json.Decoder(_PubAck).decode


def _raise_api_error(what: str, error: _ApiError) -> None:
    text = f"{what}: {error.description} (code {error.code}, err_code {error.err_code})"
    if error.err_code == _WRONG_LAST_SEQUENCE:
        raise RevisionMismatch(f"{what}: the key is no longer at that revision")
    if error.code == 503:
        raise BusUnavailable(text)
    raise BusError(text)


class LiteBus:
    """One lean connection with the ``Bus`` surface a simulated device needs."""

    def __init__(
        self,
        *,
        urls: Sequence[str],
        name: str,
        request_timeout: float = 5.0,
        connect_timeout: float = 5.0,
    ) -> None:
        if not urls:
            raise ValueError("LiteBus needs a NATS url")
        self._url = urls[0]  # loopback, one server: no cluster, no failover
        self._name = name
        self._timeout = request_timeout
        self._nc = NatsClient(url=self._url, name=name, connect_timeout=connect_timeout)
        self._js = JetStreamApi(self)
        self._connector: asyncio.Task[None] | None = None

    # -- connection -------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._nc.is_connected

    @property
    def nc(self) -> NatsClient:
        return self._nc

    @property
    def js(self) -> JetStreamApi:
        return self._js

    @property
    def request_timeout(self) -> float:
        return self._timeout

    async def start(self) -> None:
        """Start connecting (one attempt, in the background); return at once."""
        if self._connector is None:
            self._connector = asyncio.get_running_loop().create_task(
                self._nc.connect(), name=f"litebus-connect-{self._name}"
            )

    async def wait_connected(self, *, timeout: float | None) -> None:
        """Wait for the connection; ``BusUnavailable`` if it failed, ended or took too long."""
        if self._connector is None:
            raise BusUnavailable(f"LiteBus {self._name}: start() was not called")
        try:
            await asyncio.wait_for(asyncio.shield(self._connector), timeout)
        except TimeoutError as exc:
            raise BusUnavailable(f"NATS at {self._url} not reachable within {timeout}s") from exc
        except NatsError as exc:
            raise BusUnavailable(str(exc)) from exc
        if self._nc.is_closed:
            raise BusUnavailable(
                f"connection to NATS at {self._url} is gone and LiteBus does not reconnect"
                f" ({self._nc.last_error!r})"
            )

    def add_reconnect_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Accepted for ``Bus`` compatibility; never called (LiteBus does not reconnect)."""
        del listener
        return lambda: None

    async def close(self) -> None:
        if self._connector is not None and not self._connector.done():
            self._connector.cancel()
            with contextlib.suppress(asyncio.CancelledError, NatsError):
                await self._connector
        await self._nc.close()

    # -- requests ---------------------------------------------------------------------

    async def request(
        self, subject: str, payload: bytes, *, what: str, timeout: float | None = None
    ) -> Msg:
        """``nc.request`` with the lean client's errors turned into fleet's, naming ``what``."""
        try:
            return await self._nc.request(subject, payload, timeout=timeout or self._timeout)
        except NoResponders as exc:
            raise BusUnavailable(f"{what}: no responders on {subject} (missing stream?)") from exc
        except (NatsError, ValueError) as exc:  # timeout, connection gone, payload too big
            raise BusUnavailable(f"{what}: {exc}") from exc

    async def api(
        self, subject: str, payload: bytes, *, what: str, timeout: float | None = None
    ) -> Any:
        """A JetStream API request: its JSON answer, or fleet's error for an error answer."""
        reply = await self.request(subject, payload, what=what, timeout=timeout)
        try:
            answer = json.loads(reply.data)
        except ValueError as exc:
            raise BusError(f"{what}: answer is not JSON: {reply.data[:200]!r}") from exc
        if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
            _raise_api_error(what, msgspec.convert(answer["error"], _ApiError))
        return answer

    # -- buckets and KV ---------------------------------------------------------------

    async def ensure_buckets(self) -> None:
        """Check the four buckets exist (LiteBus never creates them: ``Bus`` does)."""
        for bucket in BUCKETS:
            what = f"bucket {bucket!r} (stream KV_{bucket})"
            try:
                await self.api(f"$JS.API.STREAM.INFO.KV_{bucket}", b"", what=what)
            except BusError as exc:
                raise BusError(
                    f"{what} is not usable ({exc}); create the buckets with Bus.ensure_buckets"
                ) from exc

    async def put(self, bucket: str, key: str, value: bytes) -> int:
        """Write ``value``; return the new revision (the PubAck's ``seq``)."""
        what = f"put {bucket}/{key}"
        reply = await self.request(f"$KV.{bucket}.{key}", value, what=what)
        try:
            ack = _decode_ack(reply.data)
        except msgspec.DecodeError as exc:
            raise BusError(f"{what}: malformed acknowledgement {reply.data[:200]!r}") from exc
        if ack.error is not None:
            _raise_api_error(what, ack.error)
        if ack.seq <= 0:
            raise BusError(f"{what}: acknowledgement without a sequence {reply.data[:200]!r}")
        return ack.seq

    async def get(self, bucket: str, key: str) -> KvEntry | None:
        """The key's live entry (a direct get), or None when it is absent or deleted."""
        what = f"get {bucket}/{key}"
        reply = await self.request(
            f"$JS.API.DIRECT.GET.KV_{bucket}.$KV.{bucket}.{key}", b"", what=what
        )
        headers = reply.headers or {}
        status = headers.get("Status")
        if status == "404":
            return None
        if status is not None:
            raise BusError(f"{what}: {status} {headers.get('Description')}")
        if operation_of(headers) != "PUT":
            return None
        return KvEntry(
            bucket=bucket, key=key, value=reply.data, revision=int(headers["Nats-Sequence"])
        )

    async def last_revision(self, bucket: str, key_filter: str = ">") -> int:
        """The highest revision among keys matching ``key_filter`` (0 when none); as ``Bus``."""
        what = f"last revision of {bucket}/{key_filter}"
        subject, payload = last_revision_request(bucket, key_filter)
        reply = await self.request(subject, payload, what=what)
        return last_revision_of(reply.headers, what=what)


class JetStreamApi:
    """The two consumer calls of nats-py's ``JetStreamContext`` the initial read makes."""

    def __init__(self, bus: LiteBus) -> None:
        self._bus = bus

    async def add_consumer(
        self,
        stream: str,
        config: api.ConsumerConfig | None = None,
        timeout: float | None = None,
        **params: Any,
    ) -> api.ConsumerInfo:
        """Create a consumer with the request (subject and body) nats-py sends."""
        config = (config or api.ConsumerConfig()).evolve(**params)
        body = json.dumps({"stream_name": stream, "config": config.as_dict()}).encode()
        if config.name:
            subject = f"$JS.API.CONSUMER.CREATE.{stream}.{config.name}"
            if config.filter_subject and config.filter_subject != ">":
                subject += f".{config.filter_subject}"
        elif config.durable_name:
            subject = f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{config.durable_name}"
        else:
            subject = f"$JS.API.CONSUMER.CREATE.{stream}"
        what = f"create consumer {config.name or config.durable_name or '(ephemeral)'} on {stream}"
        answer = await self._bus.api(subject, body, what=what, timeout=timeout)
        info: api.ConsumerInfo = api.ConsumerInfo.from_response(answer)
        return info

    async def delete_consumer(self, stream: str, consumer: str) -> bool:
        answer = await self._bus.api(
            f"$JS.API.CONSUMER.DELETE.{stream}.{consumer}",
            b"",
            what=f"delete consumer {consumer} on {stream}",
        )
        return bool(answer.get("success"))

    async def stream_info(self, stream: str) -> api.StreamInfo:
        answer = await self._bus.api(
            f"$JS.API.STREAM.INFO.{stream}", b"", what=f"stream info of {stream}"
        )
        info: api.StreamInfo = api.StreamInfo.from_response(answer)
        return info
