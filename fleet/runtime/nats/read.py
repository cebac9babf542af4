"""Read a bucket once: every live entry among some keys, complete as of the call.

Why it exists: the desired feed reads its device's entries at start and after every
reconnect, ``fleetctl`` and the load checker read whole buckets, the operator reads the
desired state it wrote. This is the one way they all do it:

* **the mark**: the highest revision among the keys when the read starts (a
  last-by-subject lookup, :meth:`~fleet.runtime.nats.kvstore.KvStore.last_revision`).
  The read is complete once an entry at or past it was delivered: the consumer delivers
  the last value per key in stream order, so nothing before it is missing. Pending
  counts and nats-py's end-of-initial-values marker are not trusted (it was measured
  to come early);
* **a named consumer deleted at once** (:class:`~fleet.runtime.nats.consumer.PushConsumer`):
  with 100,000 devices reconnecting after a server restart, consumers left to an
  inactivity timeout would be 100,000, far past nats-server's default cap of 1,000 per
  stream; the threshold is only the backstop if the delete is lost. Named, the filter is
  in the create request's subject, so per-device credentials can allow exactly it;
* **no loss on a gap**: if the consumer reports one, the read goes on with a new
  consumer from right after the last revision it received (one value per key is kept,
  so that is exactly what it has not seen).

What it must never do: return before the mark is reached, or leave its consumer behind.
"""

from __future__ import annotations

import asyncio
import logging

from fleet.errors import BusUnavailable
from fleet.runtime.nats.consumer import ConsumerSpec, PushConsumer
from fleet.runtime.nats.kv import KvEntry
from fleet.runtime.nats.kvstore import KvStore

logger = logging.getLogger(__name__)

#: A read by anyone but a device: heartbeats and flow control as nats-py's ordered
#: consumer had them (a whole bucket of 100,000 entries comes through it).
READ = ConsumerSpec(prefix="read", heartbeat=5.0, inactive_threshold=5.0)


def device_read(owner: str) -> ConsumerSpec:
    """A device's read of its own keys: ``feed_<owner>_<hex>``, no heartbeats (it lives
    milliseconds), a 10 s inactivity threshold (docs/agent.md)."""
    return ConsumerSpec(prefix=f"feed_{owner}", heartbeat=None, inactive_threshold=10.0)


class _Collected:
    """What a read gathered so far; ``wake`` is set when it is done or its consumer broke."""

    def __init__(self, mark: int) -> None:
        self.mark = mark
        self.entries: dict[str, KvEntry] = {}
        self.last = 0
        self.done = False
        self.reason = ""
        self.wake = asyncio.Event()

    def on_entry(self, entry: KvEntry) -> None:
        if entry.revision <= self.last:
            return
        self.last = entry.revision
        if entry.deleted:
            self.entries.pop(entry.key, None)
        else:
            self.entries[entry.key] = entry
        if entry.revision >= self.mark:
            self.done = True
            self.wake.set()

    def on_broken(self, reason: str) -> None:
        self.reason = reason
        self.wake.set()


async def read_bucket(
    kv: KvStore,
    bucket: str,
    key_filter: str = ">",
    *,
    timeout: float = 60.0,
    mark: int | None = None,
    spec: ConsumerSpec = READ,
) -> tuple[dict[str, KvEntry], int]:
    """(live entries matching ``key_filter`` by key, the mark they are complete up to).

    ``mark``: the bucket's last revision among the keys, if the caller has just read it
    (the desired feed reads it after its live subscription is in place).
    ``BusUnavailable`` if the read is not complete within ``timeout``.
    """
    if mark is None:
        mark = await kv.last_revision(bucket, key_filter)
    if mark == 0:
        return {}, 0
    got = _Collected(mark)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pause = 0.0
    while True:
        consumer = PushConsumer(
            kv, bucket=bucket, key_filter=key_filter, spec=spec, after=got.last,
            on_entry=got.on_entry, on_broken=got.on_broken,
        )  # fmt: skip
        try:
            await asyncio.wait_for(_open_and_wait(consumer, got), deadline - loop.time())
        except TimeoutError as exc:
            raise BusUnavailable(
                f"read of {bucket}/{key_filter} incomplete after {timeout}s "
                f"({len(got.entries)} entries, waiting for revision {mark})"
            ) from exc
        finally:
            await consumer.close()
        if got.done:
            return got.entries, mark
        logger.info(
            "read of %s/%s: %s; going on after revision %d", bucket, key_filter, got.reason,
            got.last,
        )  # fmt: skip
        got.wake.clear()
        await asyncio.sleep(pause)  # a consumer that breaks at once must not spin
        pause = min(pause * 2 or 0.05, 1.0)


async def _open_and_wait(consumer: PushConsumer, got: _Collected) -> None:
    await consumer.open()
    await got.wake.wait()
