"""The four buckets: their streams' configuration, and making sure they exist.

Why it exists: every bucket keeps one value per key (history 1), no TTL, direct get
allowed, and a server-side maximum value size (its values' wire bound plus room for
headers), so nats-server itself refuses an oversized put (docs/runtime.md). The stream
configuration is the one nats-py's ``create_key_value`` makes, sent over a transport,
but for one field: rollups are refused. A message with ``Nats-Rollup: all`` purges the
*whole* stream, and headers are not subject to permissions: a device allowed to put
its own heartbeat wiped every device's heartbeat with one (tests/security). fleet
never purges a key, so nothing is lost.

What it must never do: purge or recreate an existing bucket; change anything of one
but its maximum value size and its rollups (and that only when asked to enforce limits).
"""

from __future__ import annotations

import logging
from typing import Any

from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_HEARTBEAT,
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
)
from fleet.contracts.limits import BUCKET_VALUE_LIMITS
from fleet.errors import BusError
from fleet.runtime.nats import jsapi, subjects
from fleet.runtime.nats.transport import Transport

logger = logging.getLogger(__name__)

#: Every bucket keeps one value per key (history 1) and no TTL; see docs/runtime.md.
BUCKETS: tuple[str, ...] = (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
    BUCKET_DEVICE_HEARTBEAT,
)

#: Room for the headers a put may carry (nats-server counts them in a message's size).
HEADER_ROOM = 512

_DUPLICATE_WINDOW_NS = 120 * 1_000_000_000  # nats-py's: two minutes


def max_value_size(bucket: str) -> int:
    """The bucket's server-side maximum message size: the wire bound of its values
    (:data:`fleet.contracts.limits.BUCKET_VALUE_LIMITS`) plus room for headers."""
    return BUCKET_VALUE_LIMITS[bucket] + HEADER_ROOM


def stream_config(bucket: str) -> dict[str, Any]:
    """What nats-py's ``create_key_value(bucket=, history=1, direct=True,
    max_value_size=)`` asks for, field for field, but rollups refused (module docstring)."""
    return {
        "name": subjects.stream(bucket),
        "subjects": [subjects.kv_filter(bucket, ">")],
        "max_consumers": -1,
        "max_msgs": -1,
        "discard": "new",
        "discard_new_per_subject": False,
        "max_msgs_per_subject": 1,
        "max_msg_size": max_value_size(bucket),
        "num_replicas": 1,
        "no_ack": False,
        "duplicate_window": _DUPLICATE_WINDOW_NS,
        "sealed": False,
        "deny_delete": True,
        "deny_purge": False,
        "allow_rollup_hdrs": False,
        "allow_direct": True,
        "allow_msg_ttl": True,
        "max_age": 0,
    }


async def stream_info(transport: Transport, bucket: str, *, timeout: float) -> dict[str, Any]:
    """The bucket's stream info (config and state); ``ApiRefused`` with
    ``err_code`` :data:`~fleet.runtime.nats.jsapi.STREAM_NOT_FOUND` when it does not exist."""
    what = f"bucket {bucket!r} (stream {subjects.stream(bucket)})"
    return await jsapi.call(
        transport, subjects.stream_info(bucket), b"", what=what, timeout=timeout
    )


async def open_bucket(transport: Transport, bucket: str, *, timeout: float, create: bool) -> None:
    """Check the bucket exists; create it if missing and ``create`` (a fleet bucket only).

    Safe when several processes race to create it: a create that loses the race is
    followed by a second look.
    """
    try:
        await stream_info(transport, bucket, timeout=timeout)
        return
    except jsapi.ApiRefused as exc:
        if exc.err_code != jsapi.STREAM_NOT_FOUND or not create or bucket not in BUCKETS:
            raise
    what = f"creating bucket {bucket!r}"
    body = jsapi.encode(stream_config(bucket))
    try:
        await jsapi.call(
            transport, subjects.stream_create(bucket), body, what=what, timeout=timeout
        )
    except jsapi.ApiRefused:  # created meanwhile by a racing process (or truly refused)
        await stream_info(transport, bucket, timeout=timeout)


async def enforce_limit(transport: Transport, bucket: str, *, timeout: float) -> None:
    """Give a bucket made by an older release (no maximum value size, rollups allowed)
    its maximum, and refuse rollups."""
    info = await stream_info(transport, bucket, timeout=timeout)
    what = f"checking the limits of bucket {bucket!r}"
    config = jsapi.field(info, "config", what=what)
    if not isinstance(config, dict):
        raise BusError(f"{what}: stream config is not an object")
    have = config.get("max_msg_size")
    want = max_value_size(bucket)
    bounded = isinstance(have, int) and 0 < have <= want
    if bounded and not config.get("allow_rollup_hdrs"):
        return
    if not bounded:
        logger.warning(
            "bucket %s accepts values of %s; setting its maximum value size to %d bytes",
            bucket,
            "any size" if have in (None, -1) else f"up to {have} bytes",
            want,
        )
        config = {**config, "max_msg_size": want}
    if config.get("allow_rollup_hdrs"):
        logger.warning("bucket %s allows rollups (one put could purge it); refusing them", bucket)
        config = {**config, "allow_rollup_hdrs": False}
    body = jsapi.encode(config)
    await jsapi.call(transport, subjects.stream_update(bucket), body, what=what, timeout=timeout)
