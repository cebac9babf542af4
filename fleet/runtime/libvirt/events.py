"""libvirt's event loop, pumped by one thread for the whole life of the process.

Why it exists: libvirt delivers domain lifecycle events (the kvm runtime's drift stream)
and keeps connections alive only through an event loop implementation registered before
the connections are opened (``virEventRegisterDefaultImpl``) and pumped by
``virEventRunDefaultImpl``. That registration is process-wide and cannot be undone, and
once it is made a connection whose loop is not pumped hangs on its first call: so it is
made together with starting the pump thread (:func:`ensure_running`), before any
connection of :mod:`.adapter` is opened, and the thread runs until the process ends
(libvirt's own advice; a daemon thread named ``libvirt-events``).

What it must never do: register the implementation without a thread pumping it, or
spin on a loop that keeps failing (it backs off, up to :data:`MAX_BACKOFF_S`).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Final

import libvirt

logger = logging.getLogger(__name__)

TICK_MS: Final = 500  # a periodic wake-up: the pump never sleeps on an empty loop for good
MAX_BACKOFF_S: Final = 5.0  # the longest pause after failures in a row

_lock = threading.Lock()
_thread: threading.Thread | None = None


def ensure_running() -> None:
    """Register libvirt's default event loop and start its pump (once per process)."""
    global _thread  # noqa: PLW0603 - libvirt's registration is process-wide
    with _lock:
        if _thread is not None:
            return
        libvirt.virEventRegisterDefaultImpl()
        libvirt.virEventAddTimeout(TICK_MS, _tick, None)
        _thread = threading.Thread(target=_pump, name="libvirt-events", daemon=True)
        _thread.start()


def _tick(timer: int, opaque: Any) -> None:
    return None


def _pump() -> None:
    failures = 0
    while True:
        try:
            libvirt.virEventRunDefaultImpl()
        except libvirt.libvirtError:
            failures += 1
            if failures == 1 or failures % 100 == 0:
                logger.exception("libvirt's event loop failed (%d times); pumping on", failures)
            time.sleep(_backoff(failures))  # never a busy loop on a lasting failure
        else:
            failures = 0


def _backoff(failures: int) -> float:
    """Seconds to wait after ``failures`` failures in a row: 0.05 doubling, at most 5."""
    return float(min(MAX_BACKOFF_S, 0.05 * 2 ** min(failures - 1, 10)))
