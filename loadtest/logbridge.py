"""Logging from the asyncio thread of a gevent-patched process, without gevent's locks.

Why it exists: locust patches ``threading`` before our loop thread starts, so every
``logging.Handler`` lock is a gevent lock. The loop thread is a real OS thread; taking a
gevent lock from it, while greenlets take the same lock on the hub's thread, was seen to
stall the hub (a 10,000-device run stopped answering its own ``--run-time`` timer while
the loop logged 100,000 feed retries). So loggers used on the loop are given a
:class:`LoopLogHandler`: a bounded deque (``append`` is atomic, no lock) with a real
``_thread`` lock for ``Handler.handle``; a greenlet drains it into the root logger's
handlers on the hub's thread.

What it must never do: block the loop thread on anything gevent owns, or grow without
bound (records past ``maxlen`` are counted and dropped, and the count is logged).
"""

from __future__ import annotations

import collections
import logging

import gevent
from gevent import monkey

_real_rlock = monkey.get_original("threading", "RLock")

LOOP_LOGGERS = (
    "fleet",
    "nats",
    "asyncio",
    "loadtest.device",
    "loadtest.connections",
    "loadtest.swarm",
)


class LoopLogHandler(logging.Handler):
    """Collects records from any thread; :meth:`drain` hands them on, on the hub."""

    def __init__(self, *, maxlen: int = 20000) -> None:
        super().__init__()
        self.records: collections.deque[logging.LogRecord] = collections.deque(maxlen=maxlen)
        self.dropped = 0

    def createLock(self) -> None:  # logging.Handler names it so
        self.lock = _real_rlock()

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.records) == self.records.maxlen:
            self.dropped += 1
        self.records.append(record)

    def drain(self) -> None:
        root = logging.getLogger()
        while self.records:
            record = self.records.popleft()
            for handler in root.handlers:
                if record.levelno >= handler.level:
                    handler.handle(record)
        if self.dropped:
            dropped, self.dropped = self.dropped, 0
            logging.getLogger(__name__).warning("%d log records from the loop dropped", dropped)


def install(*, period: float = 0.5) -> LoopLogHandler:
    """Route :data:`LOOP_LOGGERS` through a drained deque; call once, on the hub's thread."""
    handler = LoopLogHandler()
    for name in LOOP_LOGGERS:
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.propagate = False

    def drain_forever() -> None:
        while True:
            gevent.sleep(period)
            handler.drain()

    gevent.spawn(drain_forever)
    return handler
