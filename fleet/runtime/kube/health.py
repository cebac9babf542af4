"""Whether the Kubernetes API answers: what the operator's calls and watches came to.

Why it exists: ``/readyz`` says whether the operator can do its job, and it cannot without
the API server; ``/metrics`` counts the API's errors. Every call of
:class:`~fleet.runtime.kube.client.KubeClient` and every watch opened by
:class:`~fleet.runtime.kube.watch.ResourceWatcher` reports here, from its own thread.
An answer, even a refusal (a 404, a 409, a 422), shows the server reachable; no answer
(no connection, a timeout) or a 5xx/429 shows it not.

What it must never do: block a caller (two attribute stores and a callback), or import the
client (errors arrive as fleet's, :mod:`.errors`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from fleet.runtime.kube.errors import KubeConflict, KubeError, KubeNotFound, KubeUnavailable

__all__ = ["ApiHealth", "error_kind"]

REASON_MAX = 200  # a probe's answer is a line, not a traceback


def error_kind(error: BaseException) -> str:
    """A short, bounded name for a failed call's error (a metric label)."""
    if isinstance(error, KubeUnavailable):
        return "unavailable"
    if isinstance(error, KubeConflict):
        return "conflict"
    if isinstance(error, KubeNotFound):
        return "not_found"
    if isinstance(error, KubeError):
        return "refused"
    return "other"


class ApiHealth:
    """The outcome of the latest calls; ``on_error(verb, kind)`` hears of every error."""

    def __init__(
        self,
        *,
        on_error: Callable[[str, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_error = on_error
        self._clock = clock
        self.last_answer: float | None = None  # when the API server last answered
        self.unreachable: str | None = None  # why the latest call got no answer (None: it did)

    def answered(self) -> None:
        self.last_answer = self._clock()
        self.unreachable = None

    def failed(self, verb: str, error: BaseException) -> None:
        kind = error_kind(error)
        if kind in ("unavailable", "other"):
            self.unreachable = str(error)
        else:
            self.answered()
        if self._on_error is not None:
            self._on_error(verb, kind)

    def problem(self, *, within: float) -> str | None:
        """None if the API server answered the latest call, within the last ``within``
        seconds; else why not."""
        unreachable, last = self.unreachable, self.last_answer
        if unreachable is not None:
            return f"Kubernetes API unreachable: {unreachable[:REASON_MAX]}"
        if last is None:
            return "no answer from the Kubernetes API yet"
        age = self._clock() - last
        if age > within:
            return f"no answer from the Kubernetes API for {age:.0f} s"
        return None
