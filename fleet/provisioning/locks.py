"""One flock on a file, held for a ``with`` block: how builders of the cache take turns.

Why it exists: the guest image (:mod:`.image`) and the agent's wheelhouse
(:mod:`.wheels`) are each built once under ``$HARMONY_DATA_DIR/fleet/`` by whichever
process comes first; the others wait. The kernel drops the lock with a crashed holder.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def held(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on ``path`` (made, with its folder, if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
