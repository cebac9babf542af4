"""A deployment's health checks, run by the agent at each container's interval.

Why it exists: a score's ``healthcheck`` is written into podman's container config, but
podman only runs checks on a timer through systemd, which not every device has (nor
the test sandbox). So the agent runs them itself (podman's own timer is disabled: each
check runs once), through :class:`~fleet.runtime.podman.port.HealthProbe`, at most once
per ``interval_s`` per container, and asks its reconciler to look again when the next
one is due. podman keeps the verdict (its retries and start period apply as usual);
this class sums it up for the report: ``unhealthy`` if any container is, else
``starting`` if any is (start period, or never checked), else ``healthy``.

A check runs on the deployment's reconciler thread (as every runtime call does): a slow
one delays that deployment's next pass by up to its ``timeout_s`` (at most 300 s), never
another deployment's.

What it must never do: run a check more often than its interval, or report the health
of a container the score no longer has.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from fleet.contracts import ContainerSpec
from fleet.contracts.state import Health
from fleet.runtime.podman.port import ContainerRuntime, HealthProbe


class HealthChecks:
    """The health checks of one deployment's containers."""

    def __init__(self, runtime: ContainerRuntime, clock: Callable[[], float]) -> None:
        self._probe = runtime if isinstance(runtime, HealthProbe) else None
        self._clock = clock
        self._last: dict[str, tuple[float, str | None]] = {}  # id -> (when, verdict)

    def check(
        self, containers: Mapping[str, tuple[ContainerSpec, str, bool]]
    ) -> tuple[Health | None, float | None]:
        """Run the checks that are due among ``containers`` (name -> (spec, id, running));
        return the deployment's health (None: no check in the score) and the seconds
        until the next check is due (None: none)."""
        now = self._clock()
        verdicts: list[str | None] = []
        due: list[float] = []
        for spec, cid, running in containers.values():
            check = spec.healthcheck
            if check is None:
                continue
            last = self._last.get(cid)
            if (
                running
                and self._probe is not None
                and (last is None or now - last[0] >= check.interval_s)
            ):
                last = (now, self._probe.health(cid, timeout=check.timeout_s))
                self._last[cid] = last
            verdicts.append(last[1] if last is not None and running else None)
            if running:
                due.append(check.interval_s - (now - last[0]) if last else 0.0)
        live = {cid for _, cid, _ in containers.values()}
        self._last = {cid: v for cid, v in self._last.items() if cid in live}
        next_due = max(0.1, min(due)) if due else None
        if not verdicts:
            return None, next_due
        if "unhealthy" in verdicts:
            return "unhealthy", next_due
        if all(v == "healthy" for v in verdicts):
            return "healthy", next_due
        return "starting", next_due
