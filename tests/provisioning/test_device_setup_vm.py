"""Device setup end to end: a VM of the pool becomes a device that runs a real Deployment.

The whole chain on real parts, with device identity on as in production: ``fleetctl vm
create`` boots a VM from the guest image built from Debian's packages; device setup
installs the agent in it over SSH (its real sshd, systemd, rootless podman) with the
fleet's bootstrap credential, the NATS CA and a bootstrap token; the agent enrolls with
a key of its own through a real nats-server in JWT-auth and TLS mode (reached through
the user-mode network at 10.0.2.2, a name the server's certificate carries), the real
operator approves it by the token and targets it by label, podman in the VM pulls from
the local registry through the same gateway, and the container serves through a port
forwarded to 127.0.0.1. On the way ``vm create`` is SIGKILLed while the agent installs;
a dry run then plans the install without making it, and ``vm setup`` repairs; a further
setup changes nothing; ``vm delete`` leaves no domain, disk or volume.
"""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fleet.devtools.podman_sandbox import PodmanEnv, free_port
from fleet.devtools.tls import make_local_ca
from fleet.provisioning.paths import FleetPaths
from fleet.provisioning.pool import HOST_FROM_GUEST
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.ssh import SshTarget, open_session
from tests.chaos.world import wait
from tests.e2e_identity import conftest as identity
from tests.fixtures.kube import KubeCluster

from .conftest import Fleetctl, domains, fleetctl_env, volumes

pytestmark = [pytest.mark.kvm, pytest.mark.slow]

NAME = "setup-e2e-1"


def _lines(proc: subprocess.Popen[str]) -> tuple[queue.Queue[str | None], threading.Thread]:
    """The child's output lines, read on a thread (None at its end); the thread closes
    the pipe when it ends."""
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return lines, reader


def _wait_line(
    lines: queue.Queue[str | None], seen: list[str], match: Callable[[str], bool], timeout: float
) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            raise AssertionError("the child ended first:\n" + "".join(seen))
        seen.append(line)
        if match(line):
            return line
    raise AssertionError(f"no such line within {timeout:.0f} s:\n" + "".join(seen))


def _on_guest(paths: FleetPaths, port: int, command: str) -> bool:
    target = SshTarget("fleet-admin", "127.0.0.1", port)
    with open_session(target, private_key=paths.ssh / "id_ed25519", known_hosts=None) as s:
        return s.run(command, timeout=60).ok


def _web_score(image: str) -> dict[str, Any]:
    return {
        "type": "podman",
        "containers": [
            {
                "name": "web",
                "image": image,
                "command": ["sh", "-c", "trap 'exit 0' TERM; httpd -f -p 80 -h /www & wait"],
                "ports": [{"host_port": 8080, "container_port": 80}],
            }
        ],
    }


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return str(answer.read().decode())
    except OSError:
        return ""


def _running(world: identity.IdentityWorld) -> bool:
    aggregate = world.aggregate("web")
    return aggregate.get("running") == 1 and set(aggregate.values()) <= {0, 1}


@pytest.fixture
def world(
    podman: PodmanEnv, kube: KubeCluster, event_loop_thread: EventLoopThread, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[identity.IdentityWorld]:  # fmt: skip
    """Device identity's world (tests/e2e_identity), its server certificate also naming
    10.0.2.2, and a liveness that tolerates a late beat from an emulated VM."""
    ca = make_local_ca(tmp_path / "ca", more_hosts=(HOST_FROM_GUEST,))
    monkeypatch.setattr(identity, "LIVENESS_S", 30.0)
    world = identity.IdentityWorld(
        root=tmp_path / "world", ca=ca, kube=kube, podman=podman, loop=event_loop_thread
    )
    try:
        world.start()
        yield world
    finally:
        world.stop()
        sys.stderr.write(world.logs() + "\n")


@pytest.mark.timeout(3600)
def test_a_vm_is_set_up_enrolls_runs_a_deployment_and_setup_again_changes_nothing(
    fleetctl: Fleetctl, vm_pool: FleetPaths, world: identity.IdentityWorld, tmp_path: Path
) -> None:
    web = free_port()
    guest_registry = world.podman.registry.replace("127.0.0.1", HOST_FROM_GUEST)
    ca = world.ca
    assert world.nats is not None
    auth = world.auth_dir
    token = world.fleetctl("token", "create", "--uses", "1", "--label", "site=e2e").strip()
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    setup = [
        "--nats-url", world.nats.url, "--nats-credentials", str(auth / "fleetctl.creds"),
        "--nats-ca", str(ca.ca_cert), "--bootstrap-creds", str(auth / "bootstrap.creds"),
        "--enrollment-token-file", str(token_file), "--insecure-registry", guest_registry,
        "--heartbeat-interval", "2", "--wait-timeout", "900",
    ]  # fmt: skip

    # 1. vm create, SIGKILLed while pip installs the agent on the guest
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleet.cli.fleetctl.main", "vm", "create", NAME,
         "--labels", "site=e2e", "--forward", f"{web}:8080", *setup],
        env=fleetctl_env(vm_pool), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    (lines, reader), seen = _lines(proc), list[str]()
    try:
        ready = _wait_line(lines, seen, lambda ln: f"vm {NAME}: ready" in ln, 1500)
        boot_s = time.monotonic() - started
        port = int(re.search(r"ssh -p (\d+)", ready)[1])  # type: ignore[index]
        _wait_line(lines, seen, lambda ln: "installing into" in ln, 900)
        wait(
            lambda: _on_guest(vm_pool, port, "ls /opt/fleet-agent/venvs/*/bin/python"),
            timeout=300, what="pip at work on the guest", interval=1.0,
        )  # fmt: skip
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        reader.join(timeout=30)
    assert not any(token in line for line in seen), "the token was printed"

    # 2. a dry run shows the plan and changes nothing (the repair still has to act)
    done = fleetctl("setup", NAME, "--dry-run", *setup)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[5/8] agent: would install" in done.stdout, done.stdout
    assert "dry run: nothing was changed" in done.stdout, done.stdout

    # 3. vm setup repairs what the kill left; the agent enrolls by the token
    began = time.monotonic()
    done = fleetctl("setup", NAME, *setup)
    setup_s = time.monotonic() - began
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"[8/8] bus: {NAME}: info and heartbeat seen" in done.stdout, done.stdout
    assert re.search(r"changed .*agent", done.stdout), done.stdout
    assert token not in done.stdout + done.stderr
    request = world.enrollment_request(NAME)
    assert request.get("status", {}).get("phase") == "Approved", request

    # 4. a Deployment reaches Running on it; its container serves through the forward
    began = time.monotonic()
    world.kube.create_deployment(
        identity.NAMESPACE, "web", selector={"matchLabels": {"site": "e2e"}},
        score=_web_score(f"{guest_registry}/busybox:test"),
    )  # fmt: skip
    wait(lambda: _running(world), timeout=900, what="web running on the VM")
    wait(lambda: "hello from fleet" in _get(f"http://127.0.0.1:{web}/"), timeout=120,
         what="the container serving on the forwarded port")  # fmt: skip
    running_s = time.monotonic() - began

    # 5. setup again changes nothing (and the device is still on the bus)
    done = fleetctl("setup", NAME, *setup)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nothing changed" in done.stdout, done.stdout
    assert "would" not in done.stdout, done.stdout
    assert "restarted" not in done.stdout, done.stdout
    assert _running(world), world.aggregate("web")
    listed = world.fleetctl(
        "devices", "--nats-url", world.nats.url, "--nats-credentials",
        str(auth / "fleetctl.creds"), "--nats-ca", str(ca.ca_cert),
    )  # fmt: skip
    assert re.search(rf"{NAME}\s+site=e2e\s+yes", listed), listed

    # 6. delete leaves nothing behind
    done = fleetctl("delete", NAME)
    assert done.returncode == 0, done.stderr
    assert NAME not in domains()
    assert not any(v.startswith(NAME) for v in volumes(vm_pool.pool_name))
    print(
        f"\nfigures: vm create to SSH {boot_s:.0f} s; setup after the kill {setup_s:.0f} s; "
        f"Deployment applied to Running and serving {running_s:.0f} s"
    )
