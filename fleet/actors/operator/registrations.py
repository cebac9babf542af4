"""A Deployment's targets, and when each device actor is told what to expect.

Why it exists: each targeted device actor classifies the device for the Deployment, so it
must know the revision of the Deployment's entry it should report (``Expect``). That is
one message per device; the rule here keeps it to one in a rollout: a new target is
registered when its entry's write completes (with the revision), or fails (with none), at
once when it needs no write, and, should this Deployment's writes stall (none completing
for a whole ``late`` delay: the liveness timeout, the latency at which a device's silence
is recognised anyway), with no revision yet. Until registered, a target counts as
``pending``: no device can run an entry not yet written, and an unreachable one shows as
such once its entry is written, or writes stall. (A second, as first tried, was too
short: with several Deployments sharing the writer's window, a healthy rollout's first
completion often comes later, and every target then cost two messages.)

A first registration (at activation) may go unanswered when the class is ``pending``; a
target added later may have been registered before (removed, then added again), so its
device actor always answers (see ``Expect``).

Plain and synchronous: it says which ``(ref, answer)`` to tell, and tells the ``Expect``
(:meth:`Registrations.expect`). What it must never do: leave a target unregistered after its write
completed, or after the late delay.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import pykka

from fleet.contracts import DeploymentName, DeviceId
from fleet.runtime.aiokit.timers import TimerPort

from .messages import Classified, Expect, RegisterLate, Reported, Unexpect
from .status import SETTLED, Aggregate


class Registrations:
    """Targets, and who was told. Given a :class:`TimerPort` and its ``owner``'s ref, it
    also arms the ``late`` check (``RegisterLate`` to the owner) when targets are added."""

    def __init__(
        self, *, timers: TimerPort | None = None, owner: Any = None, late: float = 1.0
    ) -> None:
        self._targets: dict[DeviceId, Any] = {}  # -> the device actor's ref
        self._waiting: dict[DeviceId, bool] = {}  # not registered yet -> answer
        self._timers, self._owner, self._late = timers, owner, late
        self._late_armed = False
        self._progressed = False  # a write completed since the late check was armed

    def _arm_late(self) -> None:
        if not self._late_armed and self._timers is not None:
            self._late_armed, self._progressed = True, False
            self._timers.tell_later(self._owner, RegisterLate(), delay=self._late)

    def progressed(self) -> None:
        """A write completed (its targets register with their revision)."""
        self._progressed = True

    def late(self) -> list[DeviceId]:
        """The late check is due: the targets to register now, without a revision (none
        if writes progressed meanwhile: then the check is armed again)."""
        self._late_armed = False
        if not self._waiting:
            return []
        if self._progressed:
            self._arm_late()
            return []
        return list(self._waiting)

    def __contains__(self, device: object) -> bool:
        return device in self._targets

    def __iter__(self) -> Iterator[DeviceId]:
        return iter(self._targets)

    def __len__(self) -> int:
        return len(self._targets)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def targets(self) -> Mapping[DeviceId, Any]:
        """Every target and its device actor (read only; for fast membership tests)."""
        return self._targets

    def ref(self, device: DeviceId) -> Any:
        return self._targets.get(device)

    def add(self, targets: Iterable[tuple[DeviceId, Any]], *, first: bool) -> list[DeviceId]:
        """New targets (``first``: the actor's first ones, at activation); those added."""
        added: list[DeviceId] = []
        for device, ref in targets:
            if self._targets.get(device) is ref:
                continue
            self._targets[device] = ref
            self._waiting[device] = not first
            added.append(device)
        if added:
            self._arm_late()
        return added

    def remove(
        self, devices: Iterable[DeviceId], *, deployment: DeploymentName | None, reply: Any
    ) -> list[DeviceId]:
        """Targets no more (those that were); the device actors told are told so."""
        out: list[DeviceId] = []
        for device in devices:
            ref = self._targets.pop(device, None)
            if ref is None:
                continue
            out.append(device)
            if self._waiting.pop(device, None) is None and deployment is not None:
                with contextlib.suppress(pykka.ActorDeadError):
                    ref.tell(Unexpect(deployment=deployment, reply=reply))
        return out

    def due(self, devices: Iterable[DeviceId]) -> list[tuple[DeviceId, Any, bool]]:
        """Tell these (registered or not) what to expect now: ``(device, ref, answer)``."""
        out: list[tuple[DeviceId, Any, bool]] = []
        for device in devices:
            ref = self._targets.get(device)
            if ref is not None:
                out.append((device, ref, self._waiting.pop(device, True)))
        return out

    def expect(
        self,
        devices: Iterable[DeviceId],
        *,
        deployment: DeploymentName,
        reply: Any,
        revision: Callable[[DeviceId], int | None],
    ) -> None:
        """Tell these targets' device actors (registered or not) the ``revision`` of the
        entry of ``deployment`` each should report; classes come back to ``reply``."""
        for device, ref, answer in self.due(devices):
            expect = Expect(deployment=deployment, reply=reply, revision=revision(device),
                            answer=answer)  # fmt: skip
            try:  # noqa: SIM105 -- not contextlib.suppress: one per device, on the hot path
                ref.tell(expect)
            except pykka.ActorDeadError:
                pass  # forgotten: it is untargeted next

    def answers(
        self,
        values: Iterable[Classified | Reported],
        aggregate: Aggregate,
        expected: Callable[[DeviceId], int | None] | None = None,
    ) -> list[tuple[DeviceId, int]]:
        """What the device actors sent: classes go to ``aggregate`` (but an answer for a
        target since removed); the reported revisions to check are returned. Given the
        revision each target is ``expected`` to report now (a rollout's), a running or
        failed class decided against another one is stale: it counts as pending (the
        device actor's answer to the newer ``Expect`` is on its way)."""
        targets, reported = self._targets, []
        for value in values:
            if isinstance(value, Reported):
                reported.append((value.device, value.revision))
            elif value.device in targets:
                cls = value.cls
                if (
                    expected is not None
                    and cls in SETTLED
                    and value.revision != expected(value.device)
                ):
                    aggregate.set(value.device, "pending")
                else:
                    aggregate.set(value.device, cls, value.message, unhealthy=value.unhealthy)
        return reported

    def registered(self, devices: Iterable[DeviceId]) -> list[DeviceId]:
        """Those of ``devices`` whose device actor was told already."""
        return [d for d in devices if d in self._targets and d not in self._waiting]

    def unregistered(self) -> list[DeviceId]:
        """Targets whose device actor was not told anything yet."""
        return list(self._waiting)
