"""The four buckets: their streams' configuration, and making sure they exist.

Why it exists: every bucket keeps ``history`` values per key (1 by default), no TTL,
direct get allowed, ``replicas`` copies on a JetStream cluster (1 by default), at most
``max_bytes`` in all (no bound by default) (:class:`BucketSettings`, the operator's
``--bucket-*`` flags), and a server-side maximum value size (its values' wire bound plus room for
headers), so nats-server itself refuses an oversized put (docs/runtime.md). The stream
configuration is the one nats-py's ``create_key_value`` makes, sent over a transport,
but for one field: rollups are refused. A message with ``Nats-Rollup: all`` purges the
*whole* stream, and headers are not subject to permissions: a device allowed to put
its own heartbeat wiped every device's heartbeat with one (tests/security). fleet
never purges a key, so nothing is lost.

Buckets are created with the operator's settings on its first start; on later starts
:func:`check_settings` reports every setting a bucket has that differs (an agent that came
first made it with the defaults; a flag changed since), and only with ``update`` (the
operator's ``--bucket-update``) changes it: nats-server moves a stream from 1 to 3
replicas, or back, without losing a message.

What it must never do: purge or recreate an existing bucket; change anything of one
but its maximum value size and its rollups (when asked to enforce limits) and, when
asked to update, its replicas, history and maximum bytes.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Final

from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_HEARTBEAT,
    BUCKET_DEVICE_INFO,
    BUCKET_DEVICE_STATE,
)
from fleet.contracts.limits import BUCKET_VALUE_LIMITS
from fleet.errors import BusError, ConfigError
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
MAX_REPLICAS: Final = 5  # nats-server's own bound
MAX_HISTORY: Final = 64  # nats-server's own bound for a KV bucket


@dataclasses.dataclass(frozen=True)
class BucketSettings:
    """How every bucket is kept: copies, values per key, total size (-1: unbounded)."""

    replicas: int = 1
    history: int = 1
    max_bytes: int = -1

    def __post_init__(self) -> None:
        if not 1 <= self.replicas <= MAX_REPLICAS:
            raise ConfigError(f"bucket replicas must be 1..{MAX_REPLICAS}, got {self.replicas}")
        if not 1 <= self.history <= MAX_HISTORY:
            raise ConfigError(f"bucket history must be 1..{MAX_HISTORY}, got {self.history}")
        if self.max_bytes != -1 and self.max_bytes < 1024 * 1024:
            raise ConfigError(
                f"bucket max bytes must be -1 (no bound) or at least 1 MiB, got {self.max_bytes}"
            )

    def stream_fields(self) -> dict[str, int]:
        """The stream configuration fields these settings are."""
        return {
            "num_replicas": self.replicas,
            "max_msgs_per_subject": self.history,
            "max_bytes": self.max_bytes,
        }


DEFAULT_SETTINGS: Final = BucketSettings()
_SETTING_NAMES: Final = {
    "num_replicas": "replicas",
    "max_msgs_per_subject": "history",
    "max_bytes": "max bytes",
}


def max_value_size(bucket: str) -> int:
    """The bucket's server-side maximum message size: the wire bound of its values
    (:data:`fleet.contracts.limits.BUCKET_VALUE_LIMITS`) plus room for headers."""
    return BUCKET_VALUE_LIMITS[bucket] + HEADER_ROOM


def stream_config(bucket: str, settings: BucketSettings = DEFAULT_SETTINGS) -> dict[str, Any]:
    """What nats-py's ``create_key_value(bucket=, history=, replicas=, max_bytes=,
    direct=True, max_value_size=)`` asks for, field for field, but rollups refused (module
    docstring)."""
    config = {
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
    return {**config, **settings.stream_fields()}


async def stream_info(transport: Transport, bucket: str, *, timeout: float) -> dict[str, Any]:
    """The bucket's stream info (config and state); ``ApiRefused`` with
    ``err_code`` :data:`~fleet.runtime.nats.jsapi.STREAM_NOT_FOUND` when it does not exist."""
    what = f"bucket {bucket!r} (stream {subjects.stream(bucket)})"
    return await jsapi.call(
        transport, subjects.stream_info(bucket), b"", what=what, timeout=timeout
    )


async def open_bucket(
    transport: Transport,
    bucket: str,
    *,
    timeout: float,
    create: bool,
    settings: BucketSettings = DEFAULT_SETTINGS,
) -> None:
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
    body = jsapi.encode(stream_config(bucket, settings))
    try:
        await jsapi.call(
            transport, subjects.stream_create(bucket), body, what=what, timeout=timeout
        )
    except jsapi.ApiRefused as refused:  # created meanwhile by a racing process?
        try:
            await stream_info(transport, bucket, timeout=timeout)
        except jsapi.ApiRefused:
            raise refused from None  # no: truly refused (e.g. 3 replicas on one server)


async def enforce_limit(transport: Transport, bucket: str, *, timeout: float) -> None:
    """Give a bucket made by an older release (no maximum value size, rollups allowed)
    its maximum, and refuse rollups."""
    what = f"checking the limits of bucket {bucket!r}"
    config = _config_of(await stream_info(transport, bucket, timeout=timeout), what)
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


def _config_of(info: dict[str, Any], what: str) -> dict[str, Any]:
    config = jsapi.field(info, "config", what=what)
    if not isinstance(config, dict):
        raise BusError(f"{what}: stream config is not an object")
    return config


async def check_settings(
    transport: Transport,
    bucket: str,
    settings: BucketSettings,
    *,
    timeout: float,
    update: bool = False,
) -> list[str]:
    """Every way the bucket differs from ``settings`` ("replicas 1, want 3"), each logged
    as a warning; with ``update``, the bucket is then changed to match (an error names
    what nats-server refused, e.g. 3 replicas on a single server)."""
    what = f"checking the settings of bucket {bucket!r}"
    config = _config_of(await stream_info(transport, bucket, timeout=timeout), what)
    wanted = settings.stream_fields()
    differences = [
        f"{_SETTING_NAMES[key]} {config.get(key)!r}, want {want}"
        for key, want in wanted.items()
        if config.get(key) != want
    ]
    if not differences:
        return []
    if not update:
        logger.warning(
            "bucket %s differs from the settings asked for: %s; used as it is "
            "(--bucket-update changes it)",
            bucket,
            "; ".join(differences),
        )
        return differences
    logger.warning("bucket %s: changing %s", bucket, "; ".join(differences))
    body = jsapi.encode({**config, **wanted})
    await jsapi.call(
        transport,
        subjects.stream_update(bucket),
        body,
        what=f"updating bucket {bucket!r} ({'; '.join(differences)})",
        timeout=timeout,
    )
    return differences
