"""A channel many actors put values into and one actor takes them from in batches.

Why it exists: during a rollout 100,000 device actors each tell a Deployment actor its
class. One pykka message each would wake the Deployment actor's thread (and hand the GIL
around) 100,000 times: that made a 10,000-device rollout a fifth more expensive than
when the Deployment actor kept a copy of every report. Through a :class:`Batched`
channel the values queue up, and the owner is told once (``notice``) for all that came
before it drains them (:meth:`take`).

Hazard: it is lock-free, on purpose (a contended lock costs a GIL handover). It relies on
``collections.deque``'s ``append`` and ``popleft`` being atomic, and on :meth:`take`
clearing the flag *before* it drains: a value put after the drain began either is
drained or arms a new notice. Only the owner calls :meth:`take`. Only immutable values
go in.

What it must never do: lose a value, or leave values with no notice on its way.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Batched(Generic[T]):
    def __init__(self, owner: Any, notice: object) -> None:
        self._owner = owner  # the actor that drains it (a pykka.ActorRef)
        self._notice = notice
        self._values: deque[T] = deque()
        self._noticed = False

    def put(self, value: T) -> None:
        """Queue ``value``; ``pykka.ActorDeadError`` if the owner is gone."""
        self._values.append(value)
        if not self._noticed:
            self._noticed = True
            self._owner.tell(self._notice)

    def take(self) -> list[T]:
        """Every value queued so far (the owner, on its notice)."""
        self._noticed = False
        values = self._values
        out: list[T] = []
        while values:
            out.append(values.popleft())
        return out
