"""A runtime for any score type that runs nothing: each deployment's workload in a dict.

Why it exists: the local demo and the simulated agent run the real ``fleet-agent`` where
podman, libvirt or a cluster cannot be had. Podman's part is played by
:class:`~fleet.devtools.simulated_runtime.SimulatedRuntime` under the real podman runtime;
a ``kvm`` or ``kubernetes`` score has no container runtime underneath, so this plays the
whole :class:`~fleet.actors.agent.runtimes.port.WorkloadRuntime` of its type, behind the
same port the real ones implement (docs/runtimes.md): a deployment's units are the
score's virtual machine (``kvm``) or its objects (``kubernetes``), made at once, phases
reported as the real runtimes report them (``Pulling`` the disk, ``Starting``), adopted
when the score is unchanged, replaced when it changed, removed on delete.
:meth:`SimulatedWorkloads.destroy` is a person breaking it by hand (a drift event).

What it must never do: pretend to serve anything (no process runs, no port is opened),
or be wired into the shipped ``fleet-agent``: it is a development stand-in.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from fleet.actors.agent.runtimes.port import (
    DriftEvent,
    EventStream,
    Observed,
    Progress,
    Unit,
)
from fleet.contracts import DeploymentName, KubernetesScore, KvmScore, Phase, ReconcileScore
from fleet.errors import FleetError

from .simrollout import image_of


@dataclass(frozen=True, kw_only=True)
class Held:
    """One deployment's workload as it runs here."""

    score: ReconcileScore
    revision: int
    units: tuple[Unit, ...]


def units_of(score: ReconcileScore, *, revision: int, ids: Iterable[int]) -> tuple[Unit, ...]:
    """The virtual machine of a kvm score; each object of a kubernetes one."""
    if isinstance(score, KvmScore):
        names = [score.name]
    elif isinstance(score, KubernetesScore):
        names = [f"{m['kind']}/{m['metadata']['name']}" for m in score.manifests]
    else:
        names = [c.name for c in score.containers]
    return tuple(
        Unit(name=name, id=f"sim-{n}", running=True, revision=revision)
        for name, n in zip(names, ids, strict=False)
    )


class _Stream:
    def __init__(self, close: Callable[[], None]) -> None:
        self._close = close

    def close(self) -> None:
        self._close()


class SimulatedWorkloads:
    """The device-wide half for ``score_type``; every workload lives in :attr:`held`."""

    def __init__(self, *, score_type: str) -> None:
        self.score_type = score_type
        self.held: dict[str, Held] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._listeners: dict[int, Callable[[DriftEvent], None]] = {}
        self._streams = itertools.count(1)

    def version(self) -> tuple[str, str]:
        return (f"simulated-{self.score_type}", "0")

    def workload(self, deployment: DeploymentName) -> SimulatedWorkload:
        return SimulatedWorkload(self, str(deployment))

    def deployments(self) -> Mapping[str, int]:
        with self._lock:
            return {name: held.revision for name, held in self.held.items()}

    def drift_events(
        self, *, on_drift: Callable[[DriftEvent], None], on_error: Callable[[BaseException], None]
    ) -> EventStream:
        del on_error  # a dict does not break
        key = next(self._streams)
        with self._lock:
            self._listeners[key] = on_drift

        def close() -> None:
            with self._lock:
                self._listeners.pop(key, None)

        return _Stream(close)

    def destroy(self, deployment: str) -> bool:
        """A person removes the workload by hand: gone, and a drift event says so."""
        with self._lock:
            held = self.held.pop(deployment, None)
            listeners = list(self._listeners.values())
        if held is None:
            return False
        for on_drift in listeners:
            on_drift(DriftEvent(deployment=deployment, unit=held.units[0].name))
        return True

    # -- for the workloads -------------------------------------------------------------

    def _put(self, deployment: str, score: ReconcileScore, revision: int) -> None:
        with self._lock:
            units = units_of(score, revision=revision, ids=self._ids)
            self.held[deployment] = Held(score=score, revision=revision, units=units)

    def _get(self, deployment: str) -> Held | None:
        with self._lock:
            return self.held.get(deployment)

    def _pop(self, deployment: str) -> Held | None:
        with self._lock:
            return self.held.pop(deployment, None)


class SimulatedWorkload:
    """One deployment's workload (see the module doc)."""

    def __init__(self, runtime: SimulatedWorkloads, deployment: str) -> None:
        self._runtime = runtime
        self._deployment = deployment

    def observe(self) -> Observed:
        held = self._runtime._get(self._deployment)
        if held is None:
            return Observed(units=(), revision=None)
        return Observed(units=held.units, revision=held.revision, found=held)

    def ensure(
        self, score: ReconcileScore, *, revision: int, observed: Observed, progress: Progress
    ) -> str | None:
        kind = str(type(score).__struct_config__.tag)
        if kind != self._runtime.score_type:  # the registry routes by type: a wiring bug
            raise FleetError(f"a {kind!r} score given to the {self._runtime.score_type} runtime")
        held = observed.found if isinstance(observed.found, Held) else None
        if held is not None and held.score == score:
            return None  # the same spec runs: adopted as it is, never restarted
        if held is not None:
            progress.breaking()
        if not isinstance(score, KubernetesScore):  # a cluster pulls nothing of ours
            progress.report(Phase.PULLING, f"pulling {image_of(score)}")
        progress.report(Phase.STARTING)
        self._runtime._put(self._deployment, score, revision)
        progress.touched()
        return None

    def remove(self, progress: Progress) -> bool:
        if self._runtime._get(self._deployment) is None:
            return False
        progress.report(Phase.STOPPING)
        self._runtime._pop(self._deployment)
        progress.touched()
        return True

    def exited(self, exits: Iterable[tuple[str, int]]) -> None:
        return None  # nothing here exits by itself
