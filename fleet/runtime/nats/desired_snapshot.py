"""One device's initial read of its desired state, with a consumer that lives milliseconds.

Why it exists: the feed (:mod:`fleet.runtime.nats.desired_feed`) needs, on start and after
every reconnect, the exact set of the device's live desired-state entries. nats-py's
ordered consumer (and :meth:`Bus.snapshot`, built on it) leaves its ephemeral consumer on
the server until an inactivity timeout; with 100,000 devices reconnecting after a
server restart that is 100,000 idle consumers, far past nats-server's default cap of
1,000 per stream. This read makes a *named* push consumer, reads it, and deletes it
at once:

* named, so nats-py sends ``$JS.API.CONSUMER.CREATE.KV_desired-state.<name>.<filter>``:
  the filter is in the subject, so per-device credentials can allow exactly it;
* last value per key (``DeliverPolicy.LAST_PER_SUBJECT``), no acks, memory storage;
* complete once an entry at or past the mark was delivered. The mark is the highest
  revision among the device's keys when the read starts (a last-by-subject lookup);
  the end-of-initial-values signal of nats-py's watch was measured to come early, so
  the read never trusts pending counts.

What it must never do: leave its consumer behind (deleted in ``finally``; a 10 s
inactivity threshold is the backstop if the delete itself is lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import TYPE_CHECKING

from nats.js import api

from fleet.contracts import BUCKET_DESIRED_STATE
from fleet.errors import BusUnavailable
from fleet.runtime.nats.kv import KvEntry, operation_of, stream_sequence

if TYPE_CHECKING:
    from nats.aio.msg import Msg

    from fleet.runtime.nats.bus import Bus

STREAM = f"KV_{BUCKET_DESIRED_STATE}"
PREFIX = f"$KV.{BUCKET_DESIRED_STATE}."
CLEANUP_TIMEOUT = 1.0  # seconds a consumer delete may hold up a stop


async def read_desired_snapshot(
    bus: Bus, *, key_filter: str, owner: str, timeout: float = 30.0, mark: int | None = None
) -> tuple[dict[str, KvEntry], int]:
    """(live entries matching ``key_filter``, the mark they are complete up to).

    ``mark``: the stream's last revision among the keys, if the caller has just read it
    (it must have been read after the caller's live subscription was in place).
    """
    if mark is None:
        mark = await bus.last_revision(BUCKET_DESIRED_STATE, key_filter)
    entries: dict[str, KvEntry] = {}
    if mark == 0:
        return entries, 0
    nc = bus.nc
    done = asyncio.Event()

    async def on_msg(msg: Msg) -> None:
        if not msg.reply:  # a status message (idle heartbeat, flow control): not an entry
            return
        entry = KvEntry(
            bucket=BUCKET_DESIRED_STATE,
            key=msg.subject[len(PREFIX) :],
            value=msg.data or b"",
            revision=stream_sequence(msg.reply),
            operation=operation_of(msg.headers),
        )
        if entry.deleted:
            entries.pop(entry.key, None)
        else:
            entries[entry.key] = entry
        if entry.revision >= mark:
            done.set()

    inbox = nc.new_inbox()
    name = f"feed_{owner}_{secrets.token_hex(4)}"
    sub = await nc.subscribe(inbox, cb=on_msg)
    created = False
    try:
        await bus.js.add_consumer(
            STREAM,
            api.ConsumerConfig(
                name=name,
                deliver_subject=inbox,
                deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT,
                ack_policy=api.AckPolicy.NONE,
                filter_subject=PREFIX + key_filter,
                mem_storage=True,
                inactive_threshold=10.0,
                num_replicas=1,
            ),
            timeout=bus.request_timeout,
        )
        created = True
        await asyncio.wait_for(done.wait(), timeout)
    except TimeoutError as exc:
        raise BusUnavailable(
            f"initial read of {BUCKET_DESIRED_STATE}/{key_filter} incomplete after {timeout}s "
            f"({len(entries)} entries, waiting for revision {mark})"
        ) from exc
    except BusUnavailable:
        raise
    except Exception as exc:
        raise BusUnavailable(f"initial read of {key_filter}: {exc!r}") from exc
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        if created:
            # Bounded: this also runs when the feed is being stopped (cancelled), possibly
            # with NATS away; the consumer's inactive threshold removes it in any case.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(bus.js.delete_consumer(STREAM, name), CLEANUP_TIMEOUT)
    return entries, mark
