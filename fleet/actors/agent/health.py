"""The last step of a reconcile pass: are the score's containers healthy, in words.

Why it exists: a container that podman keeps restarting, or that exited with an error
and will not be restarted by its policy, must be reported ``Failed`` with what a person
needs (the exit code, the last lines of its output), not ``Running``. The counting rule
is :mod:`.crash_loops`; this class looks at each container through the runtime port and
keeps, per container, the report it built, so its output is read once per episode.

What it must never do: change a container (it only inspects and reads logs), or keep
state for containers the score no longer has.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Final

from fleet.contracts import ContainerSpec
from fleet.runtime.podman.port import Container, ContainerRuntime

from .crash_loops import LOG_LINES, CrashLoops, crash_loop_message, exited_message

RESTART_GRACE: Final = 2.0
"""Seconds a container that stopped is left to podman before the agent replaces it.

podman restarts a container by its restart policy the moment it exits; the agent only
steps in when podman did not (stopped by hand, or after a reboot). And the agent never
``start``s a container that has run: a start that raced ``podman rm -f`` of the same
container (podman 4.3 unlocks it while stopping it) succeeded, the removal went on, and
a leaked ``conmon`` kept the host port for good, so the container made next could never
start ("address already in use"; seen as a flaky drift test under CPU load). A fresh
container races nothing.
"""


def should_run(spec: ContainerSpec, container: Container) -> bool:
    """Whether a stopped container must run again (its restart policy)."""
    if spec.restart_policy == "always":
        return True
    if spec.restart_policy == "on-failure":
        return container.exit_code not in (0, None) or container.state == "stopped"
    return False


class Health:
    """Crash loops and failed exits of one deployment's containers."""

    def __init__(
        self,
        *,
        runtime: ContainerRuntime,
        window: float,
        restarts: int,
        clock: Callable[[], float],
    ) -> None:
        self._runtime = runtime
        self._crash = CrashLoops(window=window, restarts=restarts)
        self._clock = clock
        self._exits: dict[str, int] = {}  # container name -> last non-zero exit code
        self._unhealthy: dict[str, str] = {}  # container id -> its report, until healthy
        self.ended: dict[str, int] = {}  # name -> exit code, of those that stay ended
        self.running: set[str] = set()  # ids of the containers running (last check)

    def exited(self, exits: Iterable[tuple[str, int]]) -> None:
        """Exit codes that podman events reported (``died`` carries one)."""
        self._exits.update(exits)

    def check(self, containers: Mapping[str, tuple[ContainerSpec, str]]) -> str | None:
        """What is unhealthy among ``containers`` (name -> (spec, id)), or None."""
        problems = []
        now = self._clock()
        self.ended, self.running = {}, set()
        for spec, cid in containers.values():
            found = self._runtime.inspect(cid)
            if found is None:
                continue  # gone meanwhile: its event brings the next pass
            if found.running:
                self.running.add(cid)
            elif found.state in ("exited", "stopped") and not should_run(spec, found):
                self.ended[spec.name] = found.exit_code or 0
            looping = self._crash.observe(
                spec.name, container_id=cid, restart_count=found.restart_count, now=now
            )
            if not found.running and found.exit_code not in (0, None):
                self._exits[spec.name] = found.exit_code
            failed_exit = (
                found.state in ("exited", "stopped")
                and found.exit_code not in (0, None)
                and not should_run(spec, found)
            )
            if not looping and not failed_exit:
                self._unhealthy.pop(cid, None)
                continue
            message = self._unhealthy.get(cid)
            if message is None:  # built once per episode: its output is read once
                lines = self._runtime.logs(cid, tail=LOG_LINES)
                message = (
                    crash_loop_message(
                        spec.name,
                        window=self._crash.window,
                        restarts=self._crash.restarts,
                        exit_code=self._exits.get(spec.name),
                        lines=lines,
                    )
                    if looping
                    else exited_message(spec.name, exit_code=found.exit_code or 0, lines=lines)
                )
                self._unhealthy[cid] = message
            problems.append(message)
        self._crash.forget(spec.name for spec, _ in containers.values())
        live = {cid for _, cid in containers.values()}
        self._unhealthy = {k: v for k, v in self._unhealthy.items() if k in live}
        return "; ".join(problems) or None
