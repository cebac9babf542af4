"""Warnings about skipped input, rate-limited: the first per key, then a count per window.

Why it exists: anyone who can write to a bucket can write 100,000 malformed entries a
second. One warning each would flood the log (and the disk under it) and cost more than
the decoding. :class:`SkipLog` logs the first skip of a key with its reason, at most
``burst`` such lines per ``window`` seconds, and counts the rest; :meth:`flush` (called
by its owner when the window is over) logs one line with the count and an example.

What it must never do: grow with the number of distinct bad keys (it remembers at most
``remember`` of them), hide that entries were skipped (every skip is in a line or a
count), or do I/O other than logging. Plain and synchronous: its owner calls it.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable


class SkipLog:
    def __init__(
        self,
        logger: logging.Logger,
        *,
        what: str,
        prefix: str = "",
        window: float = 10.0,
        burst: int = 10,
        remember: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._what = what
        self._prefix = prefix
        self.window = window
        self._burst = burst
        self._remember = remember
        self._clock = clock
        self._logged: OrderedDict[str, None] = OrderedDict()
        self._window_start = clock()
        self._lines = 0
        self._suppressed = 0
        self._example = ""
        self.skipped = 0  # every skip since start (tests, metrics)

    @property
    def pending(self) -> bool:
        """Skips counted but not yet logged: the owner should :meth:`flush` after a window."""
        return self._suppressed > 0

    def skip(self, key: str, reason: str, *, exc: BaseException | None = None) -> None:
        """Record that the entry at ``key`` was skipped for ``reason``."""
        self.skipped += 1
        now = self._clock()
        if now - self._window_start >= self.window:
            self.flush()
        if key not in self._logged and self._lines < self._burst:
            self._logged[key] = None
            if len(self._logged) > self._remember:
                self._logged.popitem(last=False)
            self._lines += 1
            self._logger.warning("skipping malformed entry %s%s: %s", self._prefix, key, reason,
                                 exc_info=exc)  # fmt: skip
        else:
            self._suppressed += 1
            self._example = key

    def flush(self) -> None:
        """Log the count of skips not logged one by one, and start a new window."""
        now = self._clock()
        if self._suppressed:
            self._logger.warning(
                "skipped %d more malformed %s in the last %.0f s (e.g. %s); only the first "
                "skip of a key and at most %d lines per %.0f s are logged",
                self._suppressed,
                self._what,
                now - self._window_start,
                f"{self._prefix}{self._example}",
                self._burst,
                self.window,
            )
        self._window_start = now
        self._lines = 0
        self._suppressed = 0
        self._example = ""
