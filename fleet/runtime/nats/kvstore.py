"""KV operations on the buckets, written against the transport port.

Why it exists: a put is a request to ``$KV.<bucket>.<key>`` answered by an
acknowledgement; a compare-and-swap adds ``Nats-Expected-Last-Subject-Sequence``; a
delete is a put of a marker (``KV-Operation: DEL``); a get is a direct get; the mark a
complete read must reach is the direct get of the last message among a filter's keys.
That is all nats-py's KV object did for fleet, and here it is on any
:class:`~fleet.runtime.nats.transport.Transport`,
with fleet's errors naming the operation: ``RevisionMismatch`` for a lost
compare-and-swap (``update``/``delete`` with ``last``), ``KeyExists`` for a ``create``
on a live key, ``BusUnavailable`` and ``BusError`` as the port raises them.

A store made with ``create_buckets`` (the agents' and the operator's) opens a bucket
before its first operation on it and creates it if missing, as nats-py's ``key_value``
did: an agent that comes up before anyone made the buckets still works.

What it must never do: spell a subject (:mod:`fleet.runtime.nats.subjects`), or read a
reply without checking its form.
"""

from __future__ import annotations

from fleet.errors import BusError, BusUnavailable, FleetError, KeyExists, RevisionMismatch
from fleet.runtime.nats import buckets, jsapi, subjects
from fleet.runtime.nats.kv import KvEntry, operation_of, revision_of
from fleet.runtime.nats.transport import Message, Transport

_NO_HEADERS: dict[str, str] = {}
_DELETE = {subjects.KV_OPERATION: subjects.KV_DELETE}


def in_context(exc: FleetError, what: str) -> FleetError:
    """``exc`` re-raised naming ``what`` (an error of the port says where, not why)."""
    if str(exc).startswith(what):
        return exc
    if isinstance(exc, BusUnavailable):
        return BusUnavailable(f"{what}: {exc}")
    if isinstance(exc, BusError):
        return BusError(f"{what}: {exc}")
    return exc


class KvStore:
    """The KV operations fleet uses, on ``transport`` (call on its loop)."""

    def __init__(
        self, transport: Transport, *, timeout: float = 5.0, create_buckets: bool = True
    ) -> None:
        self.transport = transport
        self.timeout = timeout
        self._create = create_buckets
        self._opened: set[str] = set()

    def using(self, transport: Transport) -> KvStore:
        """The same store (timeout, bucket policy) on another transport: a wrapper of
        this one's, such as the load swarm's request limiter."""
        other = KvStore(transport, timeout=self.timeout, create_buckets=self._create)
        other._opened = self._opened  # one connection's buckets: opened once for both
        return other

    # -- buckets --------------------------------------------------------------------

    async def ensure_buckets(
        self,
        *,
        enforce_limits: bool = False,
        settings: buckets.BucketSettings | None = None,
        update: bool = False,
    ) -> dict[str, list[str]]:
        """Create the four buckets if missing (idempotent, safe to race); with
        ``enforce_limits`` (the operator, which owns them) also give buckets an older
        release made their maximum value size. With ``settings`` (the operator's), a
        missing bucket is created so, and an existing one is checked: returns each
        bucket's differences (:func:`~fleet.runtime.nats.buckets.check_settings`;
        changed to match with ``update``)."""
        differences: dict[str, list[str]] = {}
        for bucket in buckets.BUCKETS:
            if bucket not in self._opened:
                await buckets.open_bucket(
                    self.transport, bucket, timeout=self.timeout, create=True,
                    settings=settings or buckets.DEFAULT_SETTINGS,
                )  # fmt: skip
                self._opened.add(bucket)
            if enforce_limits:
                await buckets.enforce_limit(self.transport, bucket, timeout=self.timeout)
            if settings is not None:
                found = await buckets.check_settings(
                    self.transport, bucket, settings, timeout=self.timeout, update=update
                )
                if found:
                    differences[bucket] = found
        return differences

    async def check_buckets(self) -> None:
        """Check the four buckets exist (create nothing): a ``BusError`` naming the first
        one missing."""
        for bucket in buckets.BUCKETS:
            await self._open(bucket, create=False)

    async def counts(self, bucket: str) -> tuple[int, int]:
        """``(messages, last revision)`` of the bucket's stream (delete markers counted):
        cheap whatever its size, for tools that wait for a bucket to fill."""
        info = await buckets.stream_info(self.transport, bucket, timeout=self.timeout)
        what = f"counts of {bucket}"
        messages = jsapi.field(info, "state", "messages", what=what)
        last = jsapi.field(info, "state", "last_seq", what=what)
        if not isinstance(messages, int) or not isinstance(last, int):
            raise BusError(f"{what}: the server's stream state is not two counts")
        return messages, last

    async def _open(self, bucket: str, *, create: bool) -> None:
        if bucket in self._opened:
            return
        await buckets.open_bucket(self.transport, bucket, timeout=self.timeout, create=create)
        self._opened.add(bucket)

    # -- writes ---------------------------------------------------------------------

    async def put(self, bucket: str, key: str, value: bytes) -> int:
        """Write ``value``; return the new revision."""
        return await self._write(bucket, key, value, _NO_HEADERS, what=f"put {bucket}/{key}")

    async def update(self, bucket: str, key: str, value: bytes, *, last: int) -> int:
        """Compare-and-swap: write only if the key's revision is still ``last``."""
        headers = {subjects.EXPECTED_LAST_SUBJECT_SEQUENCE: str(last)}
        what = f"update {bucket}/{key} at revision {last}"
        return await self._write(bucket, key, value, headers, what=what)

    async def create(self, bucket: str, key: str, value: bytes) -> int:
        """Write ``value`` only if ``key`` holds none (absent, or deleted); else ``KeyExists``."""
        try:
            return await self.update(bucket, key, value, last=0)
        except RevisionMismatch:
            pass
        # A deleted key still has its marker: write over the marker (nats-py's way).
        entry = await self.last_entry(bucket, key)
        if entry is not None and entry.deleted:
            try:
                return await self.update(bucket, key, value, last=entry.revision)
            except RevisionMismatch:
                pass
        raise KeyExists(f"{bucket}/{key} already exists")

    async def delete(self, bucket: str, key: str, *, last: int | None = None) -> int:
        """Delete ``key`` (a delete marker; watchers see it); return the marker's revision.
        ``last`` makes it a compare-and-swap (``RevisionMismatch`` when it lost)."""
        headers = _DELETE
        if last:
            headers = {**_DELETE, subjects.EXPECTED_LAST_SUBJECT_SEQUENCE: str(last)}
        return await self._write(bucket, key, b"", headers, what=f"delete {bucket}/{key}")

    async def _write(
        self, bucket: str, key: str, value: bytes, headers: dict[str, str], *, what: str
    ) -> int:
        try:
            if self._create:
                await self._open(bucket, create=True)
            reply = await self.transport.request(
                subjects.kv_subject(bucket, key),
                value,
                headers=headers or None,
                timeout=self.timeout,
            )
            return jsapi.acknowledged(what, reply)
        except FleetError as exc:
            named = in_context(exc, what)
            if named is exc:
                raise
            raise named from exc

    # -- reads ----------------------------------------------------------------------

    async def get(self, bucket: str, key: str) -> KvEntry | None:
        """The key's live entry, or None when it is absent or deleted."""
        entry = await self.last_entry(bucket, key)
        return None if entry is None or entry.deleted else entry

    async def last_entry(self, bucket: str, key: str) -> KvEntry | None:
        """The key's last message (a delete marker included; a direct get), or None when
        the stream holds nothing for it."""
        what = f"get {bucket}/{key}"
        try:
            if self._create:
                await self._open(bucket, create=True)
            reply = await self.transport.request(
                subjects.direct_get(bucket, key), b"", timeout=self.timeout
            )
            return _entry(bucket, key, reply, what=what)
        except FleetError as exc:
            named = in_context(exc, what)
            if named is exc:
                raise
            raise named from exc

    async def last_revision(self, bucket: str, key_filter: str = ">") -> int:
        """The highest revision among keys matching ``key_filter`` (0 when none).

        The direct get by subject accepts wildcards (the filter in the subject, so that
        credentials can allow one device's keys); this is the mark an initial read must
        reach before it may call itself complete.
        """
        what = f"last revision of {bucket}/{key_filter}"
        try:
            if self._create:
                await self._open(bucket, create=True)
            reply = await self.transport.request(
                subjects.last_by_subject(bucket, key_filter), b"", timeout=self.timeout
            )
            status = (reply.headers or {}).get(subjects.STATUS)
            if status == subjects.STATUS_NOT_FOUND:
                return 0
            if status is not None:
                raise jsapi.status_error(what, reply) or BusError(f"{what}: status {status}")
            return revision_of(reply.headers, what=what)
        except FleetError as exc:
            named = in_context(exc, what)
            if named is exc:
                raise
            raise named from exc


def _entry(bucket: str, key: str, reply: Message, *, what: str) -> KvEntry | None:
    headers = reply.headers
    status = headers.get(subjects.STATUS) if headers else None
    if status == subjects.STATUS_NOT_FOUND:
        return None
    if status is not None:
        raise jsapi.status_error(what, reply) or BusError(f"{what}: status {status}")
    return KvEntry(
        bucket=bucket,
        key=key,
        value=reply.data,
        revision=revision_of(headers, what=what),
        operation=operation_of(headers),
    )
