"""Real agents for rollout tests: the chaos world (:mod:`tests.chaos.world`), labelled.

The chaos world is the whole fleet as real processes on 127.0.0.1 (nats-server with
JetStream, the Kubernetes API emulator, ``fleet-operator``, ``fleet-agent`` on the private
podman world with its local registry). A rollout needs devices told apart by labels (a
canary batch selects ``site=lab``), so :class:`RolloutWorld` gives each agent its own
labels; everything else is the chaos world's.

:class:`Timeline` is the desired-state tap (:class:`tests.operator.rollouts.tap.DesiredTap`)
with the devices' reports beside it, in the order this one connection received them: a
report an operator acted on is always before the write it caused, so "batch 2 was
written only after batch 1 ran the new score" is read off the list. (nats-py hands each
subscription's messages to its callback in a task of its own; the callbacks never suspend,
so they run in the order the messages arrived.)
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, cast

from fleet.contracts import (
    BUCKET_DEVICE_STATE,
    DeploymentState,
    Phase,
    decode_state,
)
from fleet.devtools.podman_sandbox import PodmanEnv
from fleet.errors import ContractError
from fleet.runtime.nats.transport import Message
from loadtest.tap import Write
from tests.chaos.world import GROUP, NAMESPACE, VERSION, ChaosWorld
from tests.operator.rollouts.tap import DesiredTap
from tests.scores import podman

SELECTOR = {"matchLabels": {"role": "chaos"}}  # the chaos world's agents all carry it


class RolloutWorld(ChaosWorld):
    """The chaos world with one set of labels per device (``role=chaos`` added to each)."""

    def __init__(
        self, *, root: Path, podman: PodmanEnv, labels: Mapping[str, Mapping[str, str]]
    ) -> None:
        super().__init__(root=root, podman=podman, devices=len(labels))
        self.devices = list(labels)
        self.labels = {device: {"role": "chaos", **extra} for device, extra in labels.items()}

    def labels_of(self, device: str) -> dict[str, str]:
        return dict(self.labels[device])

    # -- what a person reads --------------------------------------------------------------

    def create(self, name: str, spec: dict[str, Any]) -> None:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": spec,
        }
        self.custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "deployments", body)

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, "deployments", name, {"spec": spec}
        )

    def rollout(self, name: str) -> dict[str, Any]:
        status: dict[str, Any] = ((self.deployment(name) or {}).get("status") or {}).get(
            "rollout"
        ) or {}
        return status

    def revision_outcomes(self) -> dict[int, str | None]:
        """Every DeploymentRevision's number and ``status.outcome`` (None: not ended)."""
        listing = cast(
            "dict[str, Any]",
            self.custom.list_namespaced_custom_object(
                GROUP, VERSION, NAMESPACE, "deploymentrevisions"
            ),
        )
        return {
            item["spec"]["revision"]: (item.get("status") or {}).get("outcome")
            for item in listing["items"]
        }

    def container(self, device: str, deployment: str, name: str) -> dict[str, Any]:
        """``podman inspect`` of the container the agent names for it; {} if there is none."""
        done = self.podman.podman(
            "inspect", "--format", "json", f"fleet-{device}-{deployment}-{name}", check=False
        )
        if done.returncode != 0:
            return {}
        found: list[dict[str, Any]] = json.loads(done.stdout or "[]")
        return found[0] if found else {}


class Timeline(DesiredTap):
    """Every desired-state write and every report, in the order they arrived."""

    def __init__(self, world: ChaosWorld) -> None:
        assert world.bus is not None
        super().__init__(world.bus, world.loop)
        self._events_lock = threading.Lock()
        self.events: list[tuple[str, str, bytes | DeploymentState | None]] = []
        self._reports: Any = None

    def start(self) -> Timeline:
        async def subscribe() -> Any:
            sub = await self._bus.nc.subscribe(f"$KV.{BUCKET_DEVICE_STATE}.>", cb=self._reported)
            await self._bus.nc.flush()
            return sub

        # Reports first: a report is never missed while the writes it causes are seen.
        self._reports = self._loop.run(subscribe(), timeout=10)
        super().start()
        return self

    def stop(self) -> None:
        super().stop()
        if self._reports is not None:
            self._loop.run(self._reports.unsubscribe(), timeout=10)

    def _record(self, msg: Message) -> Write:
        # under the events lock: a write and the report after it keep their order
        with self._events_lock:
            write = super()._record(msg)
            self.events.append(("write", f"{write.device}.{write.deployment}", write.value))
        return write

    async def _reported(self, msg: Any) -> None:
        if (msg.headers or {}).get("KV-Operation"):
            return
        with contextlib.suppress(Exception):  # not a report: nothing to record
            state = decode_state(msg.data)
            with self._events_lock:
                self.events.append(("report", f"{state.device_id}.{state.deployment}", state))

    def index_of_write(self, device: str, deployment: str, value: bytes) -> int:
        """Where ``device`` was first written ``value``; -1 if never."""
        key = f"{device}.{deployment}"
        with self._events_lock:
            for i, (kind, at, payload) in enumerate(self.events):
                if kind == "write" and at == key and payload == value:
                    return i
        return -1

    def index_of_report(
        self, device: str, deployment: str, *, phase: Phase, revision: Callable[[int], bool]
    ) -> int:
        """Where ``device`` first reported ``phase`` for a desired revision that
        ``revision`` accepts; -1 if never."""
        key = f"{device}.{deployment}"
        with self._events_lock:
            for i, (kind, at, payload) in enumerate(self.events):
                if (
                    kind == "report"
                    and at == key
                    and isinstance(payload, DeploymentState)
                    and payload.phase is phase
                    and revision(payload.desired_revision)
                ):
                    return i
        return -1

    def render(self) -> str:
        """One line per event, for failure messages."""
        lines = []
        with self._events_lock:
            events = list(self.events)
        for kind, at, payload in events:
            if isinstance(payload, DeploymentState):
                lines.append(
                    f"report {at} {payload.phase.value} r{payload.desired_revision}"
                    f" {payload.message or ''}"
                )
            elif payload is None:
                lines.append(f"{kind} {at} (deleted)")
            else:
                try:
                    images = [c.image for c in podman(payload).containers]
                except ContractError:
                    images = ["?"]
                lines.append(f"{kind} {at} {' '.join(images)}")
        return "\n".join(["the timeline:", *lines])


@contextlib.contextmanager
def rollout_world(
    *, root: Path, podman: PodmanEnv, labels: Mapping[str, Mapping[str, str]]
) -> Iterator[RolloutWorld]:
    world = RolloutWorld(root=root, podman=podman, labels=labels)
    try:
        world.start()
        yield world
    except BaseException:
        sys.stderr.write(world.logs() + "\n")  # shown by pytest when the test failed
        raise
    finally:
        world.stop()
    for child in [world.operator, *world.agents.values()]:
        assert child is not None
        log = child.log_path.read_text(errors="replace")
        assert "Traceback" not in log, f"{child.name}:\n{log[-3000:]}"
