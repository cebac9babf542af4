"""A tiny workload controller for the API emulator: apps/v1 workloads become ready (or fail).

Why it exists: the emulator stores objects but runs no controllers, so a Deployment
applied to it would never say it is ready, and the agent's ``kubernetes`` runtime (which
reports ``Running`` only when every workload it applied is ready) could not be tried.
Opt in per test: ``WorkloadController(kube).start()`` over a started
:class:`~fleet.devtools.kube_emulator.KubeEmulator`.

What it does, on the emulator's own loop: every ``apps/v1`` Deployment, StatefulSet and
DaemonSet, whenever it is added or changed, gets the status its controller would write
once its pods run: ``observedGeneration`` = ``metadata.generation`` and every replica
ready, updated and available (a Deployment also ``Available``/``Progressing`` conditions,
``NewReplicaSetAvailable``). :meth:`WorkloadController.fail` marks one workload (by
namespace and name) as stuck instead: no replica ready and, for a Deployment,
``Progressing=False`` with reason ``ProgressDeadlineExceeded``.

It writes through the status rule (only ``status`` and a new ``resourceVersion``; a
``MODIFIED`` event), and never writes a status equal to the one stored, so its own
events end there. It must never be imported by shipped code (it is a stand-in).
"""

from __future__ import annotations

import asyncio
import copy
import threading
from typing import Any, Final

from kmock._internal import references

from ._kube_builtin import WORKLOAD_PLURALS
from .kube_emulator import KubeEmulator

TIMEOUT: Final = 10.0


def ready_status(plural: str, obj: dict[str, Any], *, stuck: bool) -> dict[str, Any]:
    """The status the workload's controller would write (``stuck``: it never becomes ready)."""
    spec = obj.get("spec") or {}
    generation = (obj.get("metadata") or {}).get("generation", 1)
    wanted = spec.get("replicas", 1) if plural != "daemonsets" else 1
    wanted = wanted if isinstance(wanted, int) and wanted >= 0 else 1
    ready = 0 if stuck else wanted
    if plural == "daemonsets":
        return {
            "observedGeneration": generation,
            "desiredNumberScheduled": wanted,
            "currentNumberScheduled": wanted,
            "updatedNumberScheduled": wanted,
            "numberReady": ready,
            "numberAvailable": ready,
        }
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "replicas": wanted,
        "updatedReplicas": wanted,
        "readyReplicas": ready,
        "availableReplicas": ready,
    }
    if plural == "statefulsets":
        status["currentReplicas"] = wanted
        return status
    name = (obj.get("metadata") or {}).get("name", "")
    status["conditions"] = [
        {
            "type": "Available",
            "status": "False" if stuck else "True",
            "reason": "MinimumReplicasUnavailable" if stuck else "MinimumReplicasAvailable",
        },
        {
            "type": "Progressing",
            "status": "False" if stuck else "True",
            "reason": "ProgressDeadlineExceeded" if stuck else "NewReplicaSetAvailable",
            "message": f'ReplicaSet "{name}" has timed out progressing.'
            if stuck
            else f'ReplicaSet "{name}" has successfully progressed.',
        },
    ]
    return status


class WorkloadController:
    """Marks apps/v1 workloads of one emulator ready; :meth:`fail` makes one stuck."""

    def __init__(self, kube: KubeEmulator) -> None:
        self._kube = kube
        self._stuck: set[tuple[str, str]] = set()
        self._guard = threading.Lock()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> WorkloadController:
        self._call(self._start())
        return self

    def stop(self) -> None:
        self._call(self._stop())

    def fail(self, namespace: str, name: str) -> None:
        """Make the workload ``namespace/name`` stuck (now and whenever it changes)."""
        with self._guard:
            self._stuck.add((namespace, name))
        self._call(self._sweep())

    def _call(self, coro: Any) -> None:
        loop = self._kube._loop
        if loop is None:
            coro.close()
            raise RuntimeError("the emulator is not running")
        asyncio.run_coroutine_threadsafe(coro, loop).result(TIMEOUT)

    @property
    def _emulator(self) -> Any:
        assert self._kube.emulator is not None
        return self._kube.emulator

    async def _start(self) -> None:
        for plural in WORKLOAD_PLURALS:
            resource = references.resource("apps", "v1", plural)
            bus = self._emulator._buses[resource]
            mark = await bus.mark()  # before the sweep: nothing written meanwhile is missed
            self._tasks.append(asyncio.create_task(self._follow(resource, bus, mark)))
        await self._sweep()

    async def _stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _sweep(self) -> None:
        for plural in WORKLOAD_PLURALS:
            resource = references.resource("apps", "v1", plural)
            keys = [k for k in list(self._emulator.objects) if k[0] == resource]
            for key in keys:
                await self._settle(key)

    async def _follow(self, resource: Any, bus: Any, mark: Any) -> None:
        try:
            async for change in bus.stream(since=mark):
                if not isinstance(change, dict) or change.get("type") not in ("ADDED", "MODIFIED"):
                    continue
                meta = (change.get("object") or {}).get("metadata") or {}
                await self._settle((resource, meta.get("namespace"), meta.get("name")))
        finally:
            await bus.unmark(mark)

    async def _settle(self, key: tuple[Any, str | None, str | None]) -> None:
        emulator = self._emulator
        resource, namespace, name = key
        with self._guard:
            stuck = (namespace or "", name or "") in self._stuck
        async with emulator._updating, emulator._lock:
            found = emulator.objects[key] if key in emulator.objects else None  # noqa: SIM401
            if found is None or found.deleted:
                return
            raw = found.raw
            status = ready_status(str(resource.plural), raw, stuck=stuck)
            if raw.get("status") == status:
                return
            found.patch({"status": status, "metadata": {"resourceVersion": emulator._next_rv()}})
            event = {"type": "MODIFIED", "object": copy.deepcopy(found.raw)}
            await emulator._buses[resource].put(event)
