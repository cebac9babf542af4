"""The charts' device identity, run: the operator as its pod runs it, against a nats-server
set up as ``deploy/nats/values.yaml`` sets the official NATS chart up.

* The authority is made as docs/install.md says (``fleet-operator --auth-dir DIR
  --init-auth``); the two Secrets are copies of its files: the four seeds for the operator
  (read-only, as Kubernetes mounts a Secret), ``nats-accounts.conf`` for nats-server.
* nats-server's config holds what the values add to the official chart's: the
  ``$include`` of ``nats-accounts.conf`` at the values' path beside ``nats.conf``, the
  values' resolver (full, on its own directory), TLS. (The official chart itself is not
  reachable from CI; ``test_the_official_chart_renders_the_same_fleet_parts`` renders it
  when ``FLEET_NATS_CHART`` points at a copy: docs/install.md.)
* ``fleet-operator`` runs with exactly the arguments our chart renders, each mount path
  mapped to a local directory holding what the volume would.

Then a device enrolls by a token, connects with what it got, is revoked, and is refused:
the whole chain through the chart's resolver. Nothing is written where the keys are.
"""

from __future__ import annotations

import os
import shutil
import ssl
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest
import yaml
from nats.aio.client import Client

from fleet.cli.fleetctl import enrolling
from fleet.contracts import DeviceId
from fleet.devtools.processes import Child
from fleet.devtools.tls import LocalCa, make_local_ca
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.kube.client import KubeClient
from fleet.runtime.nats import subjects
from fleet.runtime.nats.permissions import device_permissions
from fleet.runtime.nats.server import free_port, nats_server_binary
from tests.budgets import budget
from tests.deploy.conftest import CHART, DEPLOY, NAMESPACE, RELEASE, by_kind_name
from tests.deploy.helm import helm, render_chart
from tests.e2e_identity.conftest import wait_for
from tests.fixtures.kube import KubeCluster
from tests.operator.enrollment.world import SimDevice

pytestmark = pytest.mark.timeout(180)

SEEDS = ("operator.seed", "system.seed", "account.seed", "signing.seed")
NATS_VALUES = yaml.safe_load((DEPLOY / "nats" / "values.yaml").read_text())


def fleet_nats_config(*, conf_dir: Path, ca: LocalCa, port: int, store: Path) -> Path:
    """``nats.conf`` with what deploy/nats/values.yaml adds to the official chart's."""
    config = NATS_VALUES["config"]
    include = config["merge"]["$include"]
    resolver = {**config["resolver"]["merge"], "dir": str(store / "resolver")}
    assert config["nats"]["tls"]["enabled"] is True
    fields = ", ".join(f"{k}: {v if isinstance(v, bool) else repr(str(v))}".replace("'", '"')
                       for k, v in resolver.items())  # fmt: skip
    text = (
        f"include {include}\n"
        f'listen: "127.0.0.1:{port}"\n'
        f'jetstream: {{ store_dir: "{store / "js"}" }}\n'
        f"resolver: {{ {fields} }}\n"
        f'tls: {{ cert_file: "{ca.server.cert}", key_file: "{ca.server.key}", timeout: 5 }}\n'
    )
    path = conf_dir / "nats.conf"
    path.write_text(text)
    return path


def start_nats(config: Path, log: Path) -> subprocess.Popen[bytes]:
    offset = log.stat().st_size if log.exists() else 0  # a restart appends to the log
    with log.open("ab") as out:
        proc = subprocess.Popen([nats_server_binary(), "-c", str(config)], stdout=out,
                                stderr=subprocess.STDOUT)  # fmt: skip

    def ready() -> bool:
        return proc.poll() is not None or b"Server is ready" in log.read_bytes()[offset:]

    try:
        wait_for(ready, timeout=20, what="nats-server ready")
    except AssertionError:
        proc.kill()
        raise
    assert proc.poll() is None, log.read_text(errors="replace")
    return proc


def chart_operator_argv(local: dict[str, Path], *, url: str) -> list[str]:
    """The operator container's arguments as our chart renders them, each path under a
    mount mapped to the local directory standing in for that volume (by volume name)."""
    objects = render_chart(CHART, release=RELEASE, namespace=NAMESPACE)
    deployment = by_kind_name(objects)[("Deployment", RELEASE)]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    argv: list[str] = []
    for arg in container["args"]:
        flag, _, value = arg.partition("=")
        if flag == "--nats-url":
            value = url
        elif flag == "--metrics-address":
            value = "127.0.0.1:0"  # the pod's port is its own; here it shares the machine's
        elif flag == "--bucket-replicas":
            value = "1"  # the chart's NATS is a 3-server cluster; here it is one server
        for mount, volume in mounts.items():
            if value.startswith(mount + "/") or value == mount:
                value = str(local[volume]) + value[len(mount) :]
        argv.append(f"{flag}={value}" if value else flag)
    return argv


class ChartWorld:
    def __init__(self, root: Path, kube: KubeCluster) -> None:
        self.root, self.kube = root, kube
        self.made = root / "made"  # what --init-auth made on a person's machine
        self.keys = root / "secret-fleet-authority"
        self.state = root / "claim-authority"
        self.nats_secret = root / "conf" / "fleet-authority"
        self.ca = make_local_ca(root / "ca")
        self.procs: list[subprocess.Popen[bytes]] = []
        self.nats_config = root / "conf" / "nats.conf"
        self.operator: Child | None = None
        self.url = ""

    def start(self) -> None:
        made = subprocess.run(
            [sys.executable, "-m", "fleet.cli.operator", "--auth-dir", str(self.made),
             "--init-auth"],
            capture_output=True, text=True, timeout=budget(60), check=False,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        # kubectl create secret generic fleet-authority --from-file=... (mounted 0440, r/o)
        self.keys.mkdir()
        for name in SEEDS:
            shutil.copy(self.made / name, self.keys / name)
            (self.keys / name).chmod(0o440)
        self.keys.chmod(0o500)
        self.nats_secret.mkdir(parents=True)
        shutil.copy(self.made / "nats-accounts.conf", self.nats_secret)
        (self.root / "ca-secret").mkdir()
        shutil.copy(self.ca.ca_cert, self.root / "ca-secret" / "ca.crt")
        self.state.mkdir()
        port = free_port()
        self.url = f"tls://127.0.0.1:{port}"
        config = fleet_nats_config(conf_dir=self.root / "conf", ca=self.ca, port=port,
                                   store=self.root / "store")  # fmt: skip
        self.nats_config = config
        self.procs.append(start_nats(config, self.root / "nats.log"))
        local = {"authority-keys": self.keys, "authority": self.state,
                 "nats-ca": self.root / "ca-secret", "tmp": self.root / "tmp"}  # fmt: skip
        argv = chart_operator_argv(local, url=self.url)
        self.operator = Child(
            name="fleet-operator",
            argv=[sys.executable, "-m", "fleet.cli.operator", *argv, "--kube-url",
                  self.kube.url, "--pending-retry", "1"],
            log_path=self.root / "operator.log",
        )  # fmt: skip
        self.operator.start()
        wait_for(
            lambda: "enrollment on" in self.operator_log(), timeout=60,
            what=f"the operator answering enrollment\n{self.operator_log()[-2000:]}",
        )  # fmt: skip

    def restart_nats(self) -> None:
        proc = self.procs.pop()
        proc.terminate()
        proc.wait(10)
        self.procs.append(start_nats(self.nats_config, self.root / "nats.log"))

    def stop(self) -> None:
        if self.operator is not None:
            self.operator.stop()
        for proc in self.procs:
            proc.terminate()
            proc.wait(10)
        self.keys.chmod(0o700)

    def operator_log(self) -> str:
        path = self.root / "operator.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def ask(self, subject: str, data: bytes, *, creds: Path, inbox: str) -> Any:
        async def run() -> Any:
            client = await self.connect(creds, inbox=inbox)
            try:
                return (await client.request(subject, data, timeout=10)).data
            finally:
                await client.close()

        return self.loop.run(run(), timeout=30)

    async def connect(self, creds: Path, *, inbox: str) -> Client:
        return await nats.connect(
            self.url, user_credentials=str(creds),
            tls=ssl.create_default_context(cafile=str(self.ca.ca_cert)),
            inbox_prefix=inbox, allow_reconnect=False, max_reconnect_attempts=0,
            connect_timeout=5,
        )  # fmt: skip

    def refused(self, creds: Path, device: str) -> str | None:
        async def run() -> str | None:
            try:
                client = await self.connect(
                    creds, inbox=device_permissions(DeviceId(device)).inbox_prefix
                )
            except (nats.errors.Error, OSError) as exc:
                return repr(exc) or "refused"
            await client.close()
            return None

        return self.loop.run(run(), timeout=30)

    loop: EventLoopThread


@pytest.fixture
def chart_world(
    tmp_path: Path, kube: KubeCluster, event_loop_thread: EventLoopThread
) -> Iterator[ChartWorld]:
    world = ChartWorld(tmp_path, kube)
    world.loop = event_loop_thread
    try:
        world.start()
        yield world
    finally:
        world.stop()
        sys.stderr.write(world.operator_log()[-4000:] + "\n")
    assert "Traceback" not in world.operator_log()


def test_the_operator_as_the_chart_runs_it_enrolls_and_revokes_through_the_charts_nats(
    chart_world: ChartWorld,
) -> None:
    from fleet.contracts import decode_enrollment_reply

    world = chart_world
    keys_before = {p.name: p.read_bytes() for p in world.keys.iterdir()}
    token, _ = enrolling.create_token(
        KubeClient(world.kube.api_client), ttl=3600, uses=1, labels={"site": "lab"}
    )
    device = SimDevice("pi-chart")
    reply = decode_enrollment_reply(world.ask(
        subjects.ENROLL, device.enrollment(token=token, labels={"site": "lab"}),
        creds=world.made / "bootstrap.creds", inbox=subjects.BOOTSTRAP_INBOX_PREFIX,
    ))  # fmt: skip
    assert reply.status == "approved", reply
    assert reply.jwt is not None
    creds = device.creds(world.root, reply.jwt)
    assert world.refused(creds, "pi-chart") is None  # the server trusts what it signed

    done = subprocess.run(
        [sys.executable, "-m", "fleet.cli.fleetctl.main", "--kube-url", world.kube.url,
         "device", "revoke", "pi-chart"],
        capture_output=True, text=True, timeout=budget(60), check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    wait_for(lambda: world.refused(creds, "pi-chart"), timeout=30,
             what="the revoked device refused")  # fmt: skip
    # nats-server restarted: the resolver keeps the pushed account JWT (newer than the
    # one preloaded from nats-accounts.conf), so the revocation holds.
    world.restart_nats()
    refusal = world.refused(creds, "pi-chart")
    assert refusal is not None, "a restarted nats-server let a revoked key in"
    assert "Authorization" in refusal, refusal  # refused for who it is, not unreachable
    # The revocation is kept on the claim, never beside the keys, which are untouched.
    assert device.key in (world.state / "revocations.json").read_text()
    assert {p.name: p.read_bytes() for p in world.keys.iterdir()} == keys_before
    assert {"operator.creds", "system.creds"} <= {p.name for p in world.state.iterdir()}
    for path in world.state.iterdir():
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def test_missing_keys_in_the_secret_are_named_and_nothing_starts(tmp_path: Path) -> None:
    keys, state = tmp_path / "keys", tmp_path / "state"
    keys.mkdir()
    (keys / "operator.seed").write_text("SOAxxxx")
    done = subprocess.run(
        [sys.executable, "-m", "fleet.cli.operator", "--auth-dir", str(state),
         "--auth-keys", str(keys), "--nats-url", "tls://127.0.0.1:1"],
        capture_output=True, text=True, timeout=budget(60), check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "missing system.seed, account.seed, signing.seed" in done.stderr
    assert not any(keys.glob("*.creds"))


@pytest.mark.skipif(
    not os.environ.get("FLEET_NATS_CHART"),
    reason="FLEET_NATS_CHART (a copy of the official nats chart) not set: not reachable in CI",
)
def test_the_official_chart_renders_the_same_fleet_parts() -> None:
    """With a copy of the official chart: the config it renders from our values includes
    nats-accounts.conf at the path our Secret is mounted, and has the resolver and TLS."""
    chart = Path(os.environ["FLEET_NATS_CHART"])
    out = helm("template", "fleet-nats", str(chart), "--namespace", NAMESPACE,
               "--values", str(DEPLOY / "nats" / "values.yaml")).stdout  # fmt: skip
    objects = [d for d in yaml.safe_load_all(out) if d]
    kinds = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    conf = kinds[("ConfigMap", "fleet-nats-config")]["data"]["nats.conf"]
    assert "include ./fleet-authority/nats-accounts.conf;" in conf
    assert '"type": "full"' in conf
    assert '"allow_delete": false' in conf
    assert '"cert_file": "/etc/nats-certs/nats/tls.crt"' in conf
    pod = kinds[("StatefulSet", "fleet-nats")]["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["fleet-authority"] == "/etc/nats-config/fleet-authority"
    assert mounts["config"] == "/etc/nats-config"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["fleet-authority"]["secret"]["secretName"] == "fleet-nats-authority"
    assert volumes["nats-tls"]["secret"]["secretName"] == "fleet-nats-tls"
