"""Agent test fixtures: an in-process agent on the real nats-server and real podman."""

from __future__ import annotations

import secrets
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import pytest
import uvloop

from fleet.actors.agent.app import AgentApp
from fleet.actors.agent.config import AgentConfig
from fleet.contracts import (
    BUCKET_DESIRED_STATE,
    BUCKET_DEVICE_STATE,
    DeploymentName,
    DeploymentState,
    DeviceId,
    decode_state,
    desired_state_key,
    device_state_key,
)
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats.bus import Bus
from fleet.runtime.podman.adapter import PodmanRuntime
from tests.agent.conformance.kit import Bench, RuntimeAdapter
from tests.fixtures.kvm import URI as LIBVIRT_URI
from tests.fixtures.kvm import Guest
from tests.fixtures.nats import NatsServer
from tests.fixtures.podman import PodmanEnv

if TYPE_CHECKING:  # the adapters use this module's helpers: imported where they are used
    from tests.agent.conformance.adapters import KubernetesAdapter, KvmAdapter


def httpd_score(
    *, image: str, port: int, env: dict[str, str] | None = None, name: str = "web"
) -> dict[str, Any]:
    """A busybox httpd serving /www on ``port``; exits promptly on SIGTERM."""
    container: dict[str, Any] = {
        "name": name,
        "image": image,
        "command": ["sh", "-c", "trap 'exit 0' TERM; httpd -f -p 80 -h /www & wait"],
        "ports": [{"host_port": port, "container_port": 80, "protocol": "tcp"}],
    }
    if env:
        container["env"] = env
    return {"type": "podman", "containers": [container]}


def fetch(port: int, *, timeout: float = 10.0, path: str = "/") -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as r:
                return str(r.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class RecordingRuntime(PodmanRuntime):
    """The real podman adapter, recording the images it was asked about (not a mock:
    every call still goes to podman)."""

    def __init__(self, *, url: str) -> None:
        super().__init__(url=url)
        self.images: list[str] = []  # every image passed to image_present, pull, create
        self.pulls = 0

    def image_present(self, image: str) -> bool:
        self.images.append(image)
        return super().image_present(image)

    def pull(self, image: str, *, timeout: float, auth: Any = None) -> None:
        self.images.append(image)
        self.pulls += 1
        super().pull(image, timeout=timeout, auth=auth)

    def create(
        self, *, name: str, spec: Any, labels: Any, mounts: Any = (), secret_env: Any = None
    ) -> str:
        self.images.append(spec.image)
        return super().create(
            name=name, spec=spec, labels=labels, mounts=mounts, secret_env=secret_env
        )


@dataclass
class AgentWorld:
    """The real parts an agent test drives: NATS (via a test bus), podman, agents."""

    nats: NatsServer
    bus: Bus
    loop: EventLoopThread
    podman: PodmanEnv
    state_root: Path
    device: DeviceId = field(default_factory=lambda: DeviceId(f"dev-{secrets.token_hex(3)}"))
    agents: list[AgentApp] = field(default_factory=list)

    def config(self, **overrides: Any) -> AgentConfig:
        values: dict[str, Any] = {
            "device_id": self.device,
            "labels": {"site": "lab"},
            "nats_urls": [self.nats.url],
            "podman_socket": self.podman.socket_url,
            "heartbeat_interval_s": 1.0,
            "state_dir": self.state_root / self.device,
            "resync_interval_s": 1.0,
            "stop_timeout_s": 2.0,
        }
        values.update(overrides)
        return AgentConfig(**values)

    def start_agent(
        self,
        config: AgentConfig | None = None,
        *,
        runtime: PodmanRuntime | None = None,
        **options: Any,
    ) -> AgentApp:
        """An in-process agent; ``options`` go to :class:`AgentApp` (e.g. crash_window)."""
        options = {"max_backoff": 1.0, "event_debounce": 0.1, **options}
        app = AgentApp(
            config or self.config(),
            runtime=runtime or PodmanRuntime(url=self.podman.socket_url),
            loop_factory=uvloop.new_event_loop,
            **options,
        )
        self.agents.append(app)
        app.start()
        return app

    def stop_agent(self, app: AgentApp) -> None:
        self.agents.remove(app)
        assert app.stop(timeout=10) == []
        assert isinstance(app.runtime, PodmanRuntime)
        app.runtime.close()

    # -- KV ------------------------------------------------------------------------------
    def put_desired(self, deployment: str, value: dict[str, Any] | bytes) -> int:
        data = value if isinstance(value, bytes) else msgspec.json.encode(value)
        key = desired_state_key(self.device, DeploymentName(deployment))
        return self.loop.run(self.bus.put(BUCKET_DESIRED_STATE, key, data), timeout=10)

    def delete_desired(self, deployment: str) -> None:
        key = desired_state_key(self.device, DeploymentName(deployment))
        self.loop.run(self.bus.delete(BUCKET_DESIRED_STATE, key), timeout=10)

    def state(self, deployment: str) -> DeploymentState | None:
        key = device_state_key(self.device, DeploymentName(deployment))
        entry = self.loop.run(self.bus.get(BUCKET_DEVICE_STATE, key), timeout=10)
        return None if entry is None else decode_state(entry.value)

    def wait_state(
        self,
        deployment: str,
        check: Callable[[DeploymentState], bool],
        *,
        timeout: float = 20.0,
    ) -> DeploymentState:
        deadline = time.monotonic() + timeout
        last: DeploymentState | None = None
        while time.monotonic() < deadline:
            try:
                last = self.state(deployment)
            except Exception:  # NATS restarting in a fault test
                last = None
            if last is not None and check(last):
                return last
            time.sleep(0.05)
        raise AssertionError(f"state of {deployment} never matched; last: {last}")

    # -- podman --------------------------------------------------------------------------
    def owned(self, deployment: str | None = None) -> list[dict[str, Any]]:
        """Every container (any state) carrying this device's (and deployment's) labels."""
        labels = {
            "fleet.nationtech.io/managed-by": "fleet-agent",
            "fleet.nationtech.io/device": self.device,
        }
        if deployment is not None:
            labels["fleet.nationtech.io/deployment"] = deployment
        args = ["ps", "-a", "--format", "json"]
        for key, value in labels.items():
            args += ["--filter", f"label={key}={value}"]
        found: list[dict[str, Any]] = msgspec.json.decode(self.podman.podman(*args).stdout or "[]")
        return [c for c in found if all(c.get("Labels", {}).get(k) == v for k, v in labels.items())]

    def container(self, deployment: str, name: str = "web") -> dict[str, Any] | None:
        full = f"fleet-{self.device}-{deployment}-{name}"
        proc = self.podman.podman("inspect", "--type", "container", full, check=False)
        if proc.returncode != 0:
            return None
        inspected: dict[str, Any] = msgspec.json.decode(proc.stdout)[0]
        return inspected

    def wait_container(
        self,
        deployment: str,
        check: Callable[[dict[str, Any] | None], bool],
        *,
        name: str = "web",
        timeout: float = 20.0,
    ) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        found = self.container(deployment, name)
        while not check(found):
            if time.monotonic() > deadline:
                raise AssertionError(f"container {deployment}/{name} never matched: {found}")
            time.sleep(0.1)
            found = self.container(deployment, name)
        return found


def running(phase_of: DeploymentState, revision: int) -> bool:
    return phase_of.phase.value == "Running" and phase_of.desired_revision == revision


def sleep_score(*names: str, image: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Containers that each take the whole stop timeout to stop: busybox ``sleep`` as
    PID 1 ignores SIGTERM, so podman waits, then kills. Slow stops give a test time to
    act in the middle of a removal or a replace."""
    containers = []
    for name in names:
        container: dict[str, Any] = {"name": name, "image": image, "command": ["sleep", "300"]}
        if env:
            container["env"] = env
        containers.append(container)
    return {"type": "podman", "containers": containers}


def wait_for(check: Callable[[], Any], *, timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy; return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} never held within {timeout}s")
        time.sleep(0.05)


@pytest.fixture
def world(
    nats_server: NatsServer,
    bus: Bus,
    event_loop_thread: EventLoopThread,
    podman: PodmanEnv,
    tmp_path: Path,
) -> Iterator[AgentWorld]:
    w = AgentWorld(
        nats=nats_server, bus=bus, loop=event_loop_thread, podman=podman, state_root=tmp_path
    )
    yield w
    for app in list(w.agents):
        w.stop_agent(app)


# -- the runtime conformance kit's world (tests/agent/conformance/kit.py) ----------------
# Each package that uses ``bench`` says which runtime by its ``subject`` fixture.


@pytest.fixture
def kube_adapter() -> Iterator[KubernetesAdapter]:
    """The API emulator with its workload controller (the ``kubernetes`` runtime's world)."""
    from tests.agent.conformance.adapters import KubernetesAdapter

    adapter = KubernetesAdapter()
    yield adapter
    adapter.close()


@pytest.fixture
def kvm_adapter(kvm_guest: Guest) -> Iterator[KvmAdapter]:
    """The system libvirtd with the tiny guest of tests/fixtures/kvm.py."""
    from tests.agent.conformance.adapters import KvmAdapter

    adapter = KvmAdapter(kvm_guest, uri=LIBVIRT_URI)
    yield adapter
    adapter.close()


@pytest.fixture
def bench(
    subject: RuntimeAdapter,
    nats_server: NatsServer,
    bus: Bus,
    event_loop_thread: EventLoopThread,
    tmp_path: Path,
) -> Iterator[Bench]:
    """A real agent's world around ``subject``: NATS, a test bus, the reports it writes."""
    b = Bench(
        bus=bus, loop=event_loop_thread, nats_url=nats_server.url, state_root=tmp_path,
        adapter=subject,
    )  # fmt: skip
    b.listen()
    yield b
    b.close()
