"""The README's first command: the whole fleet on this machine, converged, then gone.

By default with device identity on (docs/security.md): nats-server with JWT auth and
TLS, each device enrolled and approved by the bootstrap token the demo made for it;
``--no-auth`` runs open, as before, with a warning.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .leftovers import field, processes_mentioning

DEMO = [sys.executable, "-m", "fleet.cli.demo"]


def run_once(*extra: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DEMO, "--once", "--timeout", "90", *extra],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def assert_nothing_left(output: str) -> None:
    """No process names the demo's files or its nats-server; its temp dir is gone."""
    logs = Path(field(output, "logs"))
    nats = field(output, "nats-server (JetStream)")
    kube = field(output, "Kubernetes API emulator")
    root = logs.parent
    deadline = time.monotonic() + 5
    while (left := processes_mentioning(str(root), nats, kube)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == []
    assert not root.exists()


DEVICE_IDS = ("pi-lab-1", "pi-shop-1", "pi-shop-2")


def assert_enrolled(output: str) -> None:
    """TLS and JWT auth on, and each device approved by the token shown for it."""
    assert field(output, "nats-server (JetStream)").startswith("tls://127.0.0.1:")
    assert "JWT auth and TLS" in output
    table = output[output.index("Enrollment requests (fleetctl enroll list):") :]
    for device in DEVICE_IDS:
        shown = output[output.index(f"fleet-agent {device}") :].splitlines()[1]
        token = shown.split("token ")[1].strip()
        row = next(line for line in table.splitlines() if line.startswith(device))
        assert row.split()[2:5] == ["Approved", "token", token.partition(".")[0]], row


def assert_converged(output: str) -> None:
    last = output[output.rindex("NAMESPACE") :]
    assert "hello-shop  2         2" in last
    assert "hello-web   1         1" in last
    assert last.count("True (AllRunning)") == 2
    assert "Converged: every targeted device reports Running." in output
    for device in ("pi-lab-1", "pi-shop-1", "pi-shop-2"):
        assert f"fleet-agent {device}" in output


@pytest.mark.timeout(150)
def test_once_on_the_simulated_runtime_converges_and_leaves_nothing() -> None:
    result = run_once("--simulated", timeout=140)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SIMULATED runtime" in result.stdout
    assert_enrolled(result.stdout)
    assert_converged(result.stdout)
    assert "--no-auth" not in result.stderr
    assert_nothing_left(result.stdout)


@pytest.mark.timeout(150)
def test_no_auth_runs_open_as_before_with_a_loud_warning() -> None:
    result = run_once("--simulated", "--no-auth", timeout=140)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING fleet.demo: --no-auth: NATS runs WITHOUT authentication" in result.stderr
    assert field(result.stdout, "nats-server (JetStream)").startswith("nats://127.0.0.1:")
    assert "NO AUTH, NO TLS" in result.stdout
    assert "enrolls with" not in result.stdout
    assert "Enrollment requests" not in result.stdout
    assert_converged(result.stdout)
    assert_nothing_left(result.stdout)


@pytest.mark.podman
@pytest.mark.timeout(200)
def test_once_on_podman_serves_the_page_from_distinct_containers() -> None:
    result = run_once(timeout=190)
    if "NOT USABLE HERE" in result.stdout:
        if os.environ.get("CI") == "true":
            pytest.fail(f"podman must work in CI:\n{result.stdout}")
        pytest.skip("podman unusable here: the demo fell back to the simulated runtime")
    assert result.returncode == 0, result.stdout + result.stderr
    assert_enrolled(result.stdout)
    assert_converged(result.stdout)
    table = result.stdout[result.stdout.index("Containers (podman ps") :]
    containers = table.splitlines()[2:5]
    names = [line.split()[0] for line in containers]
    assert names == [
        "fleet-pi-lab-1-hello-web-web",
        "fleet-pi-shop-1-hello-shop-web",
        "fleet-pi-shop-2-hello-shop-web",
    ]
    assert all(line.split()[-1] == "running" for line in containers)
    assert "(hello-web on pi-lab-1)\nhello from fleet\n" in result.stdout
    assert_nothing_left(result.stdout)


def check_fleetctl_against(output: str) -> None:
    """The commands the demo prints work as printed: as fleetctl's own identity, on TLS."""
    env = dict(os.environ)
    for line in output.splitlines():
        if line.strip().startswith("export FLEET_"):
            for pair in line.split()[1:]:
                key, value = pair.split("=", 1)
                env[key] = value
    assert env["FLEET_NATS_URL"].startswith("tls://")
    assert Path(env["FLEET_NATS_CREDENTIALS"]).name == "fleetctl.creds"
    assert Path(env["FLEET_NATS_CA"]).is_file()

    def fleetctl(*args: str, environ: dict[str, str] = env) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "fleet.cli.fleetctl.main", *args],
            env=environ, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    def out(*args: str) -> str:
        done = fleetctl(*args)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    devices = json.loads(out("devices", "-o", "json"))
    assert [(d["device"], d["online"]) for d in devices] == [
        ("pi-lab-1", True), ("pi-shop-1", True), ("pi-shop-2", True),
    ]  # fmt: skip
    assert devices[0]["deployments"] == {"hello-web": "Running"}
    deployments = {d["name"]: d for d in json.loads(out("deployments", "-o", "json"))}
    assert deployments["hello-shop"]["running"] == 2
    assert "default/hello-web: 1/1 running" in out("status", "hello-web")
    requests = json.loads(out("enroll", "list", "-o", "json"))
    assert [(r["device"], r["phase"]) for r in requests] == [
        (device, "Approved") for device in DEVICE_IDS
    ]
    assert all(str(r["approved_by"]).startswith("token ") for r in requests), requests
    # the server asks for credentials: without them (or without the CA) nothing is read
    anonymous = {k: v for k, v in env.items() if k != "FLEET_NATS_CREDENTIALS"}
    denied = fleetctl("devices", "--connect-timeout", "2", environ=anonymous)
    assert denied.returncode != 0, denied.stdout


def assert_server_runs_auth_and_tls(output: str) -> None:
    """nats-server's own config: the operator's JWT (decentralized auth) and TLS."""
    root = Path(field(output, "logs")).parent
    (config,) = root.glob("nats-server-*.conf")
    text = config.read_text()
    assert "operator:" in text
    assert "resolver_preload:" in text
    assert "tls {" in text


def check_kubectl_against(output: str, cache: Path) -> None:
    """The real kubectl with the kubeconfig the demo wrote: printer columns, Events."""
    exports = [line.split()[1] for line in output.splitlines() if "export KUBECONFIG=" in line]
    kubeconfig = exports[0].split("=", 1)[1]
    assert Path(kubeconfig).is_file()
    env = {**os.environ, "KUBECONFIG": kubeconfig, "KUBECACHEDIR": str(cache)}

    def kubectl(*args: str) -> str:
        done = subprocess.run(
            [str(Path(sys.executable).parent / "kubectl"), *args],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert (done.returncode, done.stderr) == (0, ""), done.stderr
        return done.stdout

    rows = {line.split()[1]: line.split() for line in kubectl("get", "fleetdep", "-A").splitlines()}
    assert rows["NAME"][:8] == ["NAMESPACE", "NAME", "TARGETED", "RUNNING", "PENDING", "FAILED",
                                "UNREACHABLE", "READY"]  # fmt: skip
    assert rows["hello-shop"][2:8] == ["2", "2", "0", "0", "0", "True"]
    assert rows["hello-web"][2:8] == ["1", "1", "0", "0", "0", "True"]
    deadline = time.monotonic() + 60
    while (
        "Ready"
        not in (described := kubectl("describe", "fleetdep", "hello-web")).split("Events:")[-1]
    ):  # the operator's Ready Event, posted as the Deployment turned Ready
        assert time.monotonic() < deadline, described
        time.sleep(1)


def check_dashboard_against(output: str) -> None:
    """The dashboard URL the demo prints opens the fleet; without its token, a 401."""
    url = field(output, "operator dashboard")
    assert f"The dashboard (a live web page of the fleet): {url}" in output
    base, _, token = url.partition("/?token=")
    assert base.startswith("http://127.0.0.1:"), url
    assert len(token) >= 32, url
    request = urllib.request.Request(
        base + "/api/overview", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        overview = json.loads(response.read())
    assert overview["devices"]["total"] == 3
    assert {d["name"] for d in overview["deployments"]} == {"hello-web", "hello-shop"}
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(base + "/api/overview", timeout=30)
    refused.value.close()  # its socket: a ResourceWarning otherwise, in a later test
    assert refused.value.code == 401


@pytest.mark.timeout(210)  # the demo's 120 s, then fleetctl, kubectl and the teardown
def test_ctrl_c_tears_everything_down_and_fleetctl_works_meanwhile(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*DEMO, "--simulated", "--timeout", "90"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for x in proc.stdout or ():
            lines.put(x)

    reader = threading.Thread(target=read)
    reader.start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while not any("Press Ctrl-C" in line for line in seen):
            assert time.monotonic() < deadline, "".join(seen)
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                assert proc.poll() is None, "".join(seen)
        output = "".join(seen)
        assert_server_runs_auth_and_tls(output)
        check_fleetctl_against(output)
        check_kubectl_against(output, tmp_path / "kube-cache")
        check_dashboard_against(output)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        reader.join(10)
        if proc.stdout is not None:
            proc.stdout.close()
    while not lines.empty():
        seen.append(lines.get())
    output = "".join(seen)
    assert "Stopped; nothing left running." in output
    assert_nothing_left(output)
