"""A whole fleet of real processes to break: nats-server, the operator, agents on podman.

Every part is the real thing on 127.0.0.1: a nats-server with JetStream (restartable on
its store), the Kubernetes API emulator, the real ``fleet-operator`` and real
``fleet-agent`` processes on a private podman world with a local registry. A scenario
kills one of them with SIGKILL at a chosen moment (a condition, never a fixed time),
starts it again, and ends with two checks:

* the load checker's verdict (:func:`loadtest.check.check_until`): every Deployment's
  aggregate matches what the buckets say, and every targeted device has its entry;
* no orphan: every container carrying the agents' labels belongs to a (device,
  deployment) that has a desired entry, under its canonical name, and every desired
  container runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import kubernetes
import msgspec
import uvloop

from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_STATE,
    DeploymentName,
    DeploymentState,
    DeviceId,
    decode_state,
    device_state_key,
    parse_desired_state_key,
)
from fleet.devtools.kube_emulator import CRD_DIR, KubeEmulator
from fleet.devtools.podman_sandbox import PodmanEnv
from fleet.devtools.processes import Child
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.server import LocalNatsServer
from fleet.runtime.podman.port import DEPLOYMENT_LABEL, DEVICE_LABEL, MANAGED_BY_LABEL
from loadtest.check import Verdict, check_until
from tests.scores import podman

GROUP, VERSION = "fleet.nationtech.io", "v1alpha1"
NAMESPACE = "chaos"
LIVENESS = 6.0


def wait(check: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            last = check()
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")


class ChaosWorld:
    """Start with :meth:`start`, tear down with :meth:`stop` (everything, always)."""

    def __init__(self, *, root: Path, podman: PodmanEnv, devices: int = 3) -> None:
        self.root = root
        self.podman = podman
        self.devices = [f"chaos-{i}" for i in range(devices)]
        self.nats = LocalNatsServer(store_dir=root / "jetstream")
        self.kube = KubeEmulator(crd_dir=CRD_DIR)
        self.loop = EventLoopThread(name="chaos-loop", loop_factory=uvloop.new_event_loop)
        self.bus: Bus | None = None
        self.operator: Child | None = None
        self.agents: dict[str, Child] = {}
        self._api: kubernetes.client.ApiClient | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self.nats.start()
        self.kube.start()
        config = kubernetes.client.Configuration()
        config.host = self.kube.url
        self._api = kubernetes.client.ApiClient(config)
        self.loop.start()
        bus = self.bus = Bus(urls=[self.nats.url], name="chaos-test")

        async def up() -> None:
            await bus.start()
            await bus.wait_connected(timeout=10)
            await bus.ensure_buckets()

        self.loop.run(up(), timeout=20)
        self.start_operator()
        for device in self.devices:
            self.start_agent(device)

    def stop(self) -> None:
        for child in [*self.agents.values(), self.operator]:
            if child is not None:
                child.stop(timeout=10)
        if self.bus is not None:
            with contextlib.suppress(Exception):
                self.loop.run(self.bus.close(), timeout=10)
        self.loop.stop()
        if self._api is not None:
            self._api.close()  # type: ignore[no-untyped-call]  # kubernetes leaves it bare
        self.kube.stop()
        self.nats.stop()

    def start_operator(self) -> None:
        self.operator = Child(
            name="fleet-operator",
            argv=[
                sys.executable, "-m", "fleet.cli.operator",
                "--nats-url", self.nats.url, "--kube-url", self.kube.url,
                "--liveness-timeout", str(LIVENESS), "--namespace", NAMESPACE,
            ],
            log_path=self.root / "logs" / "operator.log",
        )  # fmt: skip
        self.operator.start()

    def labels_of(self, device: str) -> dict[str, str]:
        """The labels ``device``'s agent announces."""
        return {"role": "chaos"}

    def start_agent(self, device: str) -> None:
        home = self.root / "agents" / device
        home.mkdir(parents=True, exist_ok=True)
        config = home / "agent.toml"
        labels = "".join(f'{key} = "{value}"\n' for key, value in self.labels_of(device).items())
        config.write_text(
            f'device_id = "{device}"\n[labels]\n{labels}'
            f'[nats]\nurls = ["{self.nats.url}"]\n[podman]\nsocket = "{self.podman.socket_url}"\n'
            f'[agent]\nheartbeat_interval_s = 1\nstate_dir = "{home / "state"}"\n'
            "resync_interval_s = 2\nstop_timeout_s = 2\n"
        )
        agent = Child(
            name=f"fleet-agent {device}",
            argv=[sys.executable, "-m", "fleet.cli.agent", "--config", str(config)],
            log_path=self.root / "logs" / f"agent-{device}.log",
        )
        agent.start()
        self.agents[device] = agent

    @staticmethod
    def kill(child: Child) -> None:
        """SIGKILL, no grace: what a power cut or the OOM killer does."""
        assert child.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.proc.pid, signal.SIGKILL)
        child.proc.wait(10)

    @staticmethod
    def pause(child: Child) -> None:
        """SIGSTOP: the process holds every connection and does nothing."""
        assert child.proc is not None
        os.killpg(child.proc.pid, signal.SIGSTOP)

    @staticmethod
    def resume(child: Child) -> None:
        assert child.proc is not None
        os.killpg(child.proc.pid, signal.SIGCONT)

    def kill_nats(self) -> None:
        proc = self.nats._proc
        assert proc is not None
        proc.kill()
        proc.wait(10)
        self.nats._proc = None

    # -- Kubernetes -----------------------------------------------------------------------

    @property
    def custom(self) -> kubernetes.client.CustomObjectsApi:
        return kubernetes.client.CustomObjectsApi(self._api)

    def apply(self, name: str, score: dict[str, Any]) -> None:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"selector": {"matchLabels": {"role": "chaos"}}, "score": score},
        }
        try:
            self.custom.create_namespaced_custom_object(
                GROUP, VERSION, NAMESPACE, "deployments", body
            )
        except kubernetes.client.ApiException as exc:
            if exc.status != 409:
                raise
            self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, NAMESPACE, "deployments", name, {"spec": body["spec"]}
            )

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "deployments", name)

    def deployment(self, name: str) -> dict[str, Any] | None:
        try:
            # the client types a custom object as ``object``: it is the JSON dict
            obj = cast(
                "dict[str, Any]",
                self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, NAMESPACE, "deployments", name
                ),
            )
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return obj

    # -- the buckets ------------------------------------------------------------------------

    def _snapshot(self, bucket: str) -> dict[str, Any]:
        assert self.bus is not None
        result: dict[str, Any] = self.loop.run(self.bus.snapshot(bucket), timeout=30)
        return result

    def desired(self) -> dict[tuple[str, str], Any]:
        out = {}
        for entry in self._snapshot(BUCKET_DESIRED_STATE).values():
            device, deployment = parse_desired_state_key(entry.key)
            out[str(device), str(deployment)] = entry
        return out

    def reports(self) -> dict[tuple[str, str], DeploymentState]:
        out = {}
        for entry in self._snapshot(BUCKET_DEVICE_STATE).values():
            state = decode_state(entry.value)
            out[str(state.device_id), str(state.deployment)] = state
        return out

    def on_report(
        self, device: str, name: str, *, phase: str, after: int = 0
    ) -> tuple[threading.Event, Callable[[], None]]:
        """An event set as soon as ``device`` reports ``phase`` for ``name`` past revision
        ``after``, seen live (a core subscription on the key), so a phase that lasts a few
        milliseconds is not missed; and a function that ends the subscription."""
        assert self.bus is not None
        bus = self.bus
        seen = threading.Event()
        subject = (
            f"$KV.{BUCKET_DEVICE_STATE}.{device_state_key(DeviceId(device), DeploymentName(name))}"
        )

        async def on_msg(msg: Any) -> None:
            with contextlib.suppress(Exception):
                state = decode_state(msg.data)
                if state.phase.value == phase and state.desired_revision > after:
                    seen.set()

        async def subscribe() -> Any:
            sub = await bus.nc.subscribe(subject, cb=on_msg)
            await bus.nc.flush()
            return sub

        sub = self.loop.run(subscribe(), timeout=10)

        def cancel() -> None:
            with contextlib.suppress(Exception):
                self.loop.run(sub.unsubscribe(), timeout=5)

        return seen, cancel

    def all_running(self, name: str) -> bool:
        return not self.running_gaps(name)

    def running_gaps(self, name: str) -> list[str]:
        """Why ``name`` is not running everywhere yet: one line per device that lags."""
        desired = self.desired()
        reports = self.reports()
        gaps = []
        for device in self.devices:
            entry = desired.get((device, name))
            report = reports.get((device, name))
            if entry is None or report is None:
                gaps.append(f"{device}: entry {entry and entry.revision}, report {report}")
            elif report.phase.value != "Running" or report.desired_revision != entry.revision:
                gaps.append(f"{device}: entry {entry.revision}, report {report}")
        return gaps

    def wait_running(self, name: str, *, timeout: float) -> None:
        """Wait until every device runs ``name``'s latest entry; fail saying who lags."""
        try:
            wait(lambda: self.all_running(name), timeout=timeout, what=f"{name} running")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; lagging: {self.running_gaps(name)}") from None

    # -- the verdicts ---------------------------------------------------------------------------

    def verdict(self, *, settle: float = 60.0) -> Verdict:
        assert self.bus is not None
        return check_until(
            loop=self.loop,
            bus=self.bus,
            kube_url=self.kube.url,
            namespace=NAMESPACE,
            liveness_timeout=LIVENESS,
            settle=settle,
        )

    def orphans(self) -> list[str]:
        """Containers of the agents that no desired entry accounts for, and desired
        containers that do not run; empty when the devices match the bucket exactly."""
        desired = self.desired()
        wanted: dict[str, tuple[str, str]] = {}
        for (device, deployment), entry in desired.items():
            for spec in podman(entry.value).containers:
                wanted[f"fleet-{device}-{deployment}-{spec.name}"] = (device, deployment)
        problems = []
        seen: set[str] = set()
        for container in self.podman.containers():
            labels: dict[str, str] = dict(container.get("Labels") or {})  # type: ignore[call-overload]
            if labels.get(MANAGED_BY_LABEL) != "fleet-agent":
                continue
            names: list[str] = list(container.get("Names") or [])  # type: ignore[call-overload]
            name = names[0] if names else "?"
            owner = (labels.get(DEVICE_LABEL, "?"), labels.get(DEPLOYMENT_LABEL, "?"))
            if wanted.get(name) != owner:
                problems.append(f"orphan {name} {owner} ({container.get('State')})")
            elif container.get("State") != "running":
                problems.append(f"{name} is {container.get('State')}, not running")
            else:
                seen.add(name)
        problems += [f"missing {name}" for name in sorted(set(wanted) - seen)]
        return problems

    def logs(self) -> str:
        parts = []
        for child in [self.operator, *self.agents.values()]:
            if child is not None:
                parts.append(f"--- {child.name}\n{child.log_tail(25)}")
        return "\n".join(parts)


def web_score(image: str, *, containers: int = 1, marker: str = "v1") -> dict[str, Any]:
    """``containers`` long-running busybox containers (no host ports: several devices
    share this machine); ``marker`` changes the spec without changing the image."""
    return {
        "type": "podman",
        "containers": [
            {
                "name": f"c{i}",
                "image": image,
                "command": ["sh", "-c", f"trap 'exit 0' TERM; echo {marker}; sleep 3600 & wait"],
            }
            for i in range(containers)
        ],
    }


@contextlib.contextmanager
def chaos_world(*, root: Path, podman: PodmanEnv, devices: int = 3) -> Iterator[ChaosWorld]:
    world = ChaosWorld(root=root, podman=podman, devices=devices)
    try:
        world.start()
        yield world
    except BaseException:
        sys.stderr.write(world.logs() + "\n")
        raise
    finally:
        world.stop()


def stored(path: Path) -> dict[str, Any]:
    """An agent's persisted desired state, decoded loosely (for messages only)."""
    try:
        return dict(msgspec.json.decode(path.read_bytes()))
    except (OSError, msgspec.DecodeError):
        return {}
