"""The real parts of device identity together: every one a process, on 127.0.0.1.

``identity_world`` (one per test): an authority made by ``fleet-operator --auth-dir DIR
--init-auth``, a throwaway CA, a nats-server in JWT-auth and TLS mode trusting that
authority, the Kubernetes API emulator, the real ``fleet-operator`` process
(``--auth-dir``, ``--nats-credentials``, ``--nats-ca``), and real ``fleet-agent``
processes on the private podman world, each holding nothing but the bootstrap
credential (and maybe a token) when it starts. ``fleetctl`` runs as a process, as a
person would run it. The test reads what people would read: Kubernetes resources,
``podman inspect``, the agent's log and files, and the buckets through fleetctl's own
read-only identity.

Every wait is for a condition, bounded (``tests/budgets.py`` scales the bounds).
"""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest
from nats.aio.client import Client

from fleet.contracts import (
    BUCKET_DEVICE_HEARTBEAT,
    DeviceId,
    EnrollmentReply,
    decode_enrollment_reply,
    device_heartbeat_key,
)
from fleet.devtools.processes import Child
from fleet.devtools.tls import LocalCa, make_local_ca
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats import subjects
from fleet.runtime.nats.authority_files import load_or_create
from fleet.runtime.nats.bus import Bus
from fleet.runtime.nats.permissions import device_permissions, fleetctl_permissions
from fleet.runtime.nats.server import LocalNatsServer
from tests.budgets import budget
from tests.fixtures.kube import KubeCluster
from tests.fixtures.podman import PodmanEnv
from tests.operator.enrollment.world import SimDevice

NAMESPACE = "e2e"
HEARTBEAT_S = 0.5
LIVENESS_S = 3.0
PENDING_RETRY_S = 1.0

AGENT_CONFIG = """\
device_id = "{device}"
[labels]
site = "e2e"
[nats]
urls = ["{url}"]
ca = "{ca}"
[podman]
socket = "{socket}"
[agent]
heartbeat_interval_s = {heartbeat}
state_dir = "{state}"
resync_interval_s = 1
stop_timeout_s = 2
[enrollment]
bootstrap_credentials = "{bootstrap}"
"""


def wait_for(check: Callable[[], Any], *, timeout: float, what: str) -> Any:
    """Poll ``check`` until it returns something truthy (return it); fail naming ``what``
    and the last value seen."""
    deadline = time.monotonic() + budget(timeout)
    last: Any = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {budget(timeout):g}s (last: {last!r})")
        time.sleep(0.1)


class Agent:
    """One ``fleet-agent`` process with its config, state dir and log."""

    def __init__(self, *, home: Path, device: str, config: str) -> None:
        home.mkdir(parents=True)
        self.device = device
        self.state_dir = home / "state"
        self.config = home / "agent.toml"
        self.config.write_text(config)
        self.child = Child(
            name=f"fleet-agent {device}",
            argv=[sys.executable, "-m", "fleet.cli.agent", "--config", str(self.config)],
            log_path=home / "agent.log",
            env=None,
        )

    @property
    def creds(self) -> Path:
        return self.state_dir / "device.creds"

    def log(self) -> str:
        path = self.child.log_path
        return path.read_text(errors="replace") if path.exists() else ""


class IdentityWorld:
    """Start with :meth:`start`; :meth:`stop` tears down everything it started."""

    def __init__(
        self, *, root: Path, ca: LocalCa, kube: KubeCluster, podman: PodmanEnv,
        loop: EventLoopThread,
    ) -> None:  # fmt: skip
        self.root = root
        self.ca = ca
        self.kube = kube
        self.podman = podman
        self.loop = loop
        self.auth_dir = root / "auth"
        self.nats: LocalNatsServer | None = None
        self.operator: Child | None = None
        self.agents: list[Agent] = []
        self.reader: Bus | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        # The authority, made as a person makes it: fleet-operator --init-auth.
        made = subprocess.run(
            [sys.executable, "-m", "fleet.cli.operator", "--auth-dir", str(self.auth_dir),
             "--init-auth"],
            capture_output=True, text=True, timeout=budget(60), check=False,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        assert "nats-auth.conf" in made.stdout, made.stdout
        # nats-server trusts what that directory holds (its operator, accounts).
        authority = load_or_create(self.auth_dir)
        self.nats = LocalNatsServer(
            store_dir=self.root / "jetstream", auth=authority.server_auth(), tls=self.ca.server
        )
        self.nats.start()
        self.operator = Child(
            name="fleet-operator",
            argv=[
                sys.executable, "-m", "fleet.cli.operator",
                "--nats-url", self.nats.url, "--kube-url", self.kube.url,
                "--namespace", NAMESPACE, "--liveness-timeout", str(LIVENESS_S),
                "--auth-dir", str(self.auth_dir),
                "--nats-credentials", str(self.auth_dir / "operator.creds"),
                "--nats-ca", str(self.ca.ca_cert),
                "--pending-retry", str(PENDING_RETRY_S),
            ],
            log_path=self.root / "operator.log",
        )  # fmt: skip
        self.operator.start()
        # The buckets through fleetctl's identity: it may read them and write nothing.
        reader = self.reader = Bus(
            urls=[self.nats.url], name="e2e-reader", create_buckets=False,
            credentials=self.auth_dir / "fleetctl.creds", tls_ca=self.ca.ca_cert,
            inbox_prefix=fleetctl_permissions().inbox_prefix,
        )  # fmt: skip

        async def up() -> None:
            await reader.start()
            await reader.wait_connected(timeout=budget(20))

        self.loop.run(up(), timeout=budget(30))

    def stop(self) -> None:
        for agent in self.agents:
            agent.child.stop(timeout=10)
        if self.operator is not None:
            self.operator.stop(timeout=10)
        if self.reader is not None:
            self.loop.run(self.reader.close(), timeout=10)
        if self.nats is not None:
            self.nats.stop()

    def logs(self) -> str:
        parts = [f"--- {a.child.name}\n{a.child.log_tail(40)}" for a in self.agents]
        if self.operator is not None:
            parts.append(f"--- fleet-operator\n{self.operator.log_tail(40)}")
        return "\n".join(parts)

    # -- agents -------------------------------------------------------------------------

    def start_agent(self, device: str, *, home: str, token: str | None = None) -> Agent:
        assert self.nats is not None
        config = AGENT_CONFIG.format(
            device=device, url=self.nats.url, ca=self.ca.ca_cert, socket=self.podman.socket_url,
            heartbeat=HEARTBEAT_S, state=self.root / home / "state",
            bootstrap=self.auth_dir / "bootstrap.creds",
        )  # fmt: skip
        if token is not None:
            config += f'token = "{token}"\n'
        agent = Agent(home=self.root / home, device=device, config=config)
        self.agents.append(agent)
        agent.child.start()
        return agent

    # -- a person at the keyboard -------------------------------------------------------

    def fleetctl(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "fleet.cli.fleetctl.main", "--kube-url", self.kube.url,
             *args],
            capture_output=True, text=True, timeout=budget(60), check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"fleetctl {' '.join(args)}: {done.stderr}"
        return done.stdout

    # -- what people see ----------------------------------------------------------------

    def cluster_object(self, plural: str, name: str) -> dict[str, Any] | None:
        return self.kube.cluster_object(plural, name)

    def enrollment_request(self, device: str) -> dict[str, Any]:
        return self.cluster_object("enrollmentrequests", device) or {}

    def apply(self, name: str, *, image: str) -> None:
        self.kube.create_deployment(
            NAMESPACE, name, selector={"matchLabels": {"site": "e2e"}},
            score={"type": "podman", "containers": [{
                "name": "main", "image": image,
                "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"],
            }]},
        )  # fmt: skip

    def aggregate(self, name: str) -> dict[str, int]:
        return self.kube.aggregate(NAMESPACE, name)

    def container(self, name: str) -> tuple[str, str] | None:
        """(id, status) of the container ``name``, as ``podman inspect`` says; None: none."""
        done = self.podman.podman(
            "inspect", "--format", "{{.Id}} {{.State.Status}}", name, check=False
        )
        if done.returncode != 0:
            return None
        ident, _, status = done.stdout.strip().partition(" ")
        return ident, status

    async def _connect(self, creds: Path, *, inbox_prefix: str) -> Client:
        assert self.nats is not None
        return await nats.connect(
            self.nats.url, user_credentials=str(creds),
            tls=ssl.create_default_context(cafile=str(self.ca.ca_cert)),
            inbox_prefix=inbox_prefix, allow_reconnect=False, max_reconnect_attempts=0,
            connect_timeout=2,
        )  # fmt: skip

    def connect_refused(self, creds: Path, device: str) -> str | None:
        """Why the server refuses a connection with ``creds``; None if it lets it in."""

        async def run() -> str | None:
            try:
                client = await self._connect(
                    creds, inbox_prefix=device_permissions(DeviceId(device)).inbox_prefix
                )
            except (nats.errors.Error, OSError) as exc:
                return repr(exc) or "refused"
            await client.close()
            return None

        result: str | None = self.loop.run(run(), timeout=budget(20))
        return result

    def ask_to_enroll(self, device: str, *, seed: str) -> EnrollmentReply:
        """What the operator answers an enrollment request signed by ``seed``, sent over
        the bootstrap credential (as the agent asks once its credential is void)."""
        data = SimDevice(device, seed=seed).enrollment(labels={"site": "e2e"})

        async def run() -> EnrollmentReply:
            client = await self._connect(
                self.auth_dir / "bootstrap.creds", inbox_prefix=subjects.BOOTSTRAP_INBOX_PREFIX
            )
            try:
                msg = await client.request(subjects.ENROLL, data, timeout=budget(10))
            finally:
                await client.close()
            return decode_enrollment_reply(msg.data)

        reply: EnrollmentReply = self.loop.run(run(), timeout=budget(20))
        return reply

    def heartbeat_revision(self, device: str) -> int | None:
        assert self.reader is not None
        key = device_heartbeat_key(DeviceId(device))
        entry = self.loop.run(self.reader.get(BUCKET_DEVICE_HEARTBEAT, key), timeout=budget(20))
        return None if entry is None else entry.revision


@pytest.fixture(scope="module")
def local_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCa:
    return make_local_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def identity_world(
    tmp_path: Path, local_ca: LocalCa, kube: KubeCluster, podman: PodmanEnv,
    event_loop_thread: EventLoopThread,
) -> Iterator[IdentityWorld]:  # fmt: skip
    world = IdentityWorld(
        root=tmp_path, ca=local_ca, kube=kube, podman=podman, loop=event_loop_thread
    )
    try:
        world.start()
        yield world
    finally:
        world.stop()
        sys.stderr.write(world.logs() + "\n")  # shown by pytest when the test failed
    for agent in world.agents:
        assert "Traceback" not in agent.log(), agent.log()[-3000:]
    assert world.operator is not None
    operator_log = world.operator.log_path.read_text(errors="replace")
    assert "Traceback" not in operator_log, operator_log[-3000:]
