"""Crash loops: a container that keeps restarting is Failed, not Running.

Why it exists: podman restarts a container whose process ends (restart policy
``always``, or ``on-failure`` after a non-zero exit) at once and forever: podman 4.3
has no back-off, and a container that exits at once was restarted about 9 times a
second. The agent looked at it between two restarts, saw it running and reported
``Running`` forever.

The rule (:data:`DEFAULT_RESTARTS`, :data:`DEFAULT_WINDOW`): a container is
crash-looping when podman restarted it at least 3 times within 60 s, counted from its
``RestartCount`` at the agent's looks (every podman event about it, and every resync).
It is healthy again once it went a whole window without a restart. The report says
``Failed`` with the last exit code and the last few lines of its output.

What it must never do: call podman (the reconciler tells it what it saw), or keep more
than :data:`MAX_SAMPLES` samples per container.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import Final

from fleet.runtime.podman.logs import clean_line

DEFAULT_WINDOW: Final = 60.0
"""Seconds over which restarts are counted."""
DEFAULT_RESTARTS: Final = 3
"""Restarts within the window that make a crash loop."""
LOG_LINES: Final = 5
"""Lines of output quoted in the report."""
MAX_SAMPLES: Final = 64


class CrashLoops:
    """Restart counts seen per container, and whether each is crash-looping now."""

    def __init__(self, *, window: float = DEFAULT_WINDOW, restarts: int = DEFAULT_RESTARTS) -> None:
        self.window = window
        self.restarts = restarts
        # container name -> (container id, samples of (time, restart count), one per change)
        self._seen: dict[str, tuple[str, deque[tuple[float, int]]]] = {}
        self._looping: set[str] = set()

    def observe(self, name: str, *, container_id: str, restart_count: int, now: float) -> bool:
        """Record a look at container ``name``; return whether it is crash-looping now:
        from :attr:`restarts` restarts within the window until a window with none."""
        restarts = self._count(name, container_id=container_id, count=restart_count, now=now)
        if restarts >= self.restarts:
            self._looping.add(name)
        elif restarts == 0:
            self._looping.discard(name)
        return name in self._looping

    def _count(self, name: str, *, container_id: str, count: int, now: float) -> int:
        """Restarts within the window. Samples are kept only when the count changed, so
        the count at any earlier time is that of the last sample before it; the baseline
        is the count one window ago (or at the first look, if that came later). A new
        container id starts over."""
        seen = self._seen.get(name)
        if seen is None or seen[0] != container_id:
            seen = (container_id, deque(maxlen=max(MAX_SAMPLES, self.restarts + 1)))
            self._seen[name] = seen
            self._looping.discard(name)
        samples = seen[1]
        if not samples or samples[-1][1] != count:
            samples.append((now, count))
        cutoff = now - self.window
        while len(samples) > 1 and samples[1][0] <= cutoff:
            samples.popleft()  # the sample before the window is the baseline
        return max(0, count - samples[0][1])

    def forget(self, keep: Iterable[str]) -> None:
        """Drop what is known of containers not in ``keep`` (gone from the score)."""
        kept = set(keep)
        for name in [n for n in self._seen if n not in kept]:
            del self._seen[name]
            self._looping.discard(name)


def crash_loop_message(
    name: str, *, window: float, restarts: int, exit_code: int | None, lines: Sequence[str]
) -> str:
    """The report for a crash-looping container (stable while it loops: no live counts)."""
    code = f"exit code {exit_code}" if exit_code is not None else "exit code unknown"
    return (
        f"container {name!r} is crash-looping: podman restarted it at least {restarts} "
        f"times within {window:g} s ({code}){_output(lines)}"
    )


def exited_message(name: str, *, exit_code: int, lines: Sequence[str]) -> str:
    """The report for a container that exited with an error and is not restarted."""
    return (
        f"container {name!r} exited with code {exit_code} and its restart policy does not "
        f"restart it{_output(lines)}"
    )


def _output(lines: Sequence[str]) -> str:
    cleaned = [text for text in (clean_line(line) for line in lines[-LOG_LINES:]) if text]
    if not cleaned:
        return "; it wrote no output"
    return "; last output: " + " | ".join(cleaned)
