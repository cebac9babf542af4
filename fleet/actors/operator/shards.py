"""Which Deployments and devices this operator shard owns (``--shards N --shard-index I``).

Why it exists: one operator process has a ceiling (docs/benchmarks.md); N shards split
the work, each with its own leader Lease (docs/operator.md, "Shards"). Every shard reads
everything (the Deployment list, every device's info, heartbeat and reports: a
Deployment's aggregate needs its targets' liveness and reports), but each write has one
owner:

* a **Deployment** (its desired entries, status, finalizer, revisions, Events, and the
  orphans of its name) belongs to the shard its *name* hashes to. The name, not
  namespace/name: a desired-state key carries only the name, and two namespaces' Deployments
  of one name must meet in one shard for :mod:`.ownership` to pick the owner;
* a **device** (its Device resource, its Events, the deletion of its keys when the
  retention forgets it) belongs to the shard its id hashes to.

Enrollment answers come from shard 0 alone (docs/security.md).

The hash is BLAKE2b's first 8 bytes, little-endian, modulo N: stable across processes,
Python versions and machines (Python's ``hash`` of a str is salted per process).
What it must never do: give one name to two shards of one count.
"""

from __future__ import annotations

import hashlib

import msgspec

from fleet.errors import ConfigError

MAX_SHARDS = 64


def shard_of(key: str, count: int) -> int:
    """The shard (0..count-1) that owns ``key`` (a deployment name or a device id)."""
    if count == 1:
        return 0
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % count


class Shard(msgspec.Struct, frozen=True, kw_only=True):
    """Shard ``index`` of ``count`` (the default: the one shard that owns everything)."""

    count: int = 1
    index: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS:
            raise ConfigError(f"--shards must be 1..{MAX_SHARDS}, got {self.count}")
        if not 0 <= self.index < self.count:
            raise ConfigError(
                f"--shard-index must be 0..{self.count - 1} with --shards {self.count}, "
                f"got {self.index}"
            )

    @property
    def whole(self) -> bool:
        """One shard: it owns everything."""
        return self.count == 1

    @property
    def answers_enrollment(self) -> bool:
        return self.index == 0

    def owns_deployment(self, name: str) -> bool:
        return self.count == 1 or shard_of(name, self.count) == self.index

    def owns_device(self, device: str) -> bool:
        return self.count == 1 or shard_of(device, self.count) == self.index

    def __str__(self) -> str:
        return f"shard {self.index} of {self.count}"


WHOLE = Shard()
