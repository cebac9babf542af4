"""The example scripts a person runs first: ``examples/fleet_load_test`` and
``examples/fleet_nats_install`` (docs/provisioning.md), each run as a child process.

The load example runs the real swarm (nats-server, the API emulator, fleet-operator,
locust) at its smallest and must print loadtest's PASS with every aggregate right, pass a
FAIL on as its exit code, and stop everything it started when its time is up. The NATS
install cannot meet a real cluster here (none, and no internet for the chart): its
``--dry-run`` must name what it would install and never print key material, and each
missing prerequisite (helm, kubectl, a cluster that answers, the TLS Secret) must stop it
with one line before anything is made. What it must never do: print a key.
"""

from __future__ import annotations

import ast
import base64
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.budgets import budget
from tests.fixtures.kube import KubeCluster

REPO = Path(__file__).resolve().parents[2]
LOAD_TEST = REPO / "examples" / "fleet_load_test"
NATS_INSTALL = REPO / "examples" / "fleet_nats_install"
VENV_BIN = REPO / ".venv" / "bin"
VALUES = REPO / "deploy" / "nats" / "values.yaml"


def run_example(
    script: Path,
    *args: str,
    env: Mapping[str, str],
    timeout: float,
    path: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a session of its own; past ``timeout`` the whole session is
    killed (SIGTERM, then SIGKILL) and the test fails naming what it printed."""
    full = {**os.environ, **env, "PATH": path or f"{VENV_BIN}:/usr/bin:/bin"}
    proc = subprocess.Popen(
        [str(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full,
        cwd=REPO,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        pytest.fail(f"{script.name} ran past {timeout:.0f} s:\n{out[-3000:]}\n{err[-3000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


MARK = "FLEET_EXAMPLE_RUN"


def processes_marked(token: str) -> list[str]:
    """Live processes whose environment holds ``MARK=token``: every process a run started,
    however deep (each inherits the environment, also in a session of its own)."""
    wanted = f"{MARK}={token}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if wanted in environ:
            found.append(f"{proc.name}: {cmdline[:200]}")
    return found


# -- examples/fleet_load_test ------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_smallest_load_run_passes_with_every_aggregate_right(tmp_path: Path) -> None:
    done = run_example(
        LOAD_TEST,
        "--workdir",
        str(tmp_path / "run"),
        env={"DEVICES": "20", "DEPLOYMENTS": "2", "DURATION": "40", "TIMEOUT": "180"},
        timeout=210,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "PASS" in lines, done.stdout  # the checker's verdict: every aggregate as recomputed
    assert any(re.fullmatch(r"\s+verdict\s+PASS", line) for line in lines), done.stdout
    for name in ("load-0", "load-1"):
        (row,) = [line for line in lines if line.startswith(f"  {name}: {{")]
        counts = ast.literal_eval(row.split(": ", 1)[1])
        assert counts["targeted"] == 20, row
        assert counts["pending"] == counts["unreachable"] == 0, row
        assert counts["running"] + counts["failed"] == 20, row
    figures = json.loads((tmp_path / "run" / "figures.json").read_text())
    assert figures["verdict"] == "PASS"
    assert figures["registered"] == 20
    assert lines[-1].startswith("fleet_load_test: PASS: every aggregate is what the devices")


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_wrong_aggregate_makes_the_example_fail(tmp_path: Path) -> None:
    # the operator is frozen and one Running report rewritten as Failed behind its back
    done = run_example(
        LOAD_TEST,
        "--failure-rate", "0", "--settle", "3", "--inject-fault", "stale-aggregate",
        "--workdir", str(tmp_path / "run"),
        env={"DEVICES": "10", "DEPLOYMENTS": "1", "DURATION": "40", "TIMEOUT": "180"},
        timeout=210,
    )  # fmt: skip

    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAIL" in done.stdout.splitlines(), done.stdout
    assert re.search(r"load-0: aggregate\.running is \d+, devices say \d+", done.stdout)
    assert done.stdout.splitlines()[-1].startswith("fleet_load_test: FAIL")


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_load_run_is_bounded_and_leaves_nothing_running(tmp_path: Path) -> None:
    token = tmp_path.name
    done = run_example(
        LOAD_TEST,
        "--workdir",
        str(tmp_path / "run"),
        env={"DEVICES": "20", "DEPLOYMENTS": "1", "DURATION": "60", "TIMEOUT": "3", MARK: token},
        timeout=90,
    )

    assert done.returncode == 124, done.stdout + done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "fleet_load_test: loadtest/run did not end within 3 s and was stopped: raise TIMEOUT "
        "or lower DEVICES"
    )
    deadline = time.monotonic() + budget(15)
    while (left := processes_marked(token)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, left


@pytest.mark.timeout(30)
@pytest.mark.parametrize("env", [{"DEVICES": "lots"}, {"DURATION": "0"}, {"TIMEOUT": "-5"}])
def test_a_bad_bound_is_refused_in_one_line(env: dict[str, str]) -> None:
    done = run_example(LOAD_TEST, env=env, timeout=20)

    assert done.returncode == 2
    assert done.stdout == ""  # nothing started
    (line,) = done.stderr.splitlines()
    name, value = next(iter(env.items()))
    assert line == (
        f"fleet_load_test: {name} must be a whole number from 1 to 999999, got '{value}'"
    )


# -- examples/fleet_nats_install ---------------------------------------------------------


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real fleet authority, made by ``fleet-operator --init-auth``."""
    auth = tmp_path_factory.mktemp("authority") / "fleet-authority"
    made = subprocess.run(
        [str(VENV_BIN / "fleet-operator"), "--auth-dir", str(auth), "--init-auth"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    assert (auth / "nats-accounts.conf").is_file()
    return auth


@pytest.fixture
def tls_files(tmp_path: Path) -> dict[str, Path]:
    """A throwaway self-signed certificate and its key (openssl), as PEM files."""
    key, cert = tmp_path / "server.key", tmp_path / "server.crt"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-subj",
         "/CN=fleet-nats.fleet-system.svc", "-days", "1"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    return {"cert": cert, "key": key, "ca": cert}


def offline_env(tmp_path: Path, **more: str) -> dict[str, str]:
    """No kubeconfig to reach anything, helm's own folders in the test's."""
    return {
        "KUBECONFIG": str(tmp_path / "no-kubeconfig"),
        "HELM_CONFIG_HOME": str(tmp_path / "helm-config"),
        "HELM_CACHE_HOME": str(tmp_path / "helm-cache"),
        "HELM_DATA_HOME": str(tmp_path / "helm-data"),
        **more,
    }


def secrets_of(files: list[Path]) -> list[str]:
    """Every string of these files that must not be printed: each whole file, its base64
    (what a Secret's data holds) and each of its lines long enough to be a key or a JWT."""
    found = []
    for path in files:
        text = path.read_text()
        found += [text.strip(), base64.b64encode(path.read_bytes()).decode()]
        found += [part for line in text.splitlines() if len(part := line.strip()) >= 16]
    return found


@pytest.mark.timeout(60)
def test_the_dry_run_names_what_it_installs_and_prints_no_key(
    tmp_path: Path, authority: Path, tls_files: dict[str, Path]
) -> None:
    done = run_example(
        NATS_INSTALL, "--dry-run", "--tls-cert", str(tls_files["cert"]),
        "--tls-key", str(tls_files["key"]), "--tls-ca", str(tls_files["ca"]),
        env=offline_env(tmp_path, AUTH_DIR=str(authority)), timeout=45,
    )  # fmt: skip

    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    (install,) = [line for line in out.splitlines() if "upgrade --install" in line]
    assert install == (
        f"+ helm upgrade --install fleet-nats nats/nats --namespace fleet-system "
        f"--create-namespace -f {VALUES}"
    )
    assert "+ helm repo add nats https://nats-io.github.io/k8s/helm/charts/" in out
    assert "rollout status statefulset/fleet-nats --timeout=600s" in out
    for name in ("fleet-nats-authority", "fleet-nats-tls", "fleet-nats-box-creds"):
        assert f"create secret generic {name} " in out, name
        assert f"  name: {name}\n  namespace: fleet-system\n" in out, name  # its manifest
    assert "nats-accounts.conf: <redacted>" in out
    assert "tls.key: <redacted>" in out
    leaked = [s for s in secrets_of([*authority.iterdir(), tls_files["key"]]) if s in out]
    assert not leaked, f"{len(leaked)} secret strings printed, e.g. {leaked[0][:12]}..."
    assert "fleet-operator" not in out.replace(str(authority), "")  # the authority is kept
    assert done.stdout.splitlines()[-1] == "# dry run: nothing was changed"


@pytest.mark.timeout(60)
def test_the_dry_run_without_an_authority_shows_how_it_is_made_and_makes_none(
    tmp_path: Path,
) -> None:
    auth = tmp_path / "fleet-authority"
    done = run_example(
        NATS_INSTALL, "--dry-run", env=offline_env(tmp_path, AUTH_DIR=str(auth)), timeout=45
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"+ {VENV_BIN}/fleet-operator --auth-dir {auth} --init-auth" in done.stdout
    assert "create secret generic fleet-nats-authority " in done.stdout
    # no TLS files given: it says the Secret must exist, and how to make one
    assert "+ kubectl --request-timeout=60s -n fleet-system get secret fleet-nats-tls" in (
        done.stdout
    )
    assert "cert-manager" in done.stdout
    assert not auth.exists()


def bin_without(tmp_path: Path, *missing: str) -> str:
    """A PATH holding every program of /usr/bin and the venv's helm and kubectl, except
    ``missing``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for entry in Path("/usr/bin").iterdir():
        if entry.name not in {"helm", "kubectl", *missing}:
            (bin_dir / entry.name).symlink_to(entry)
    for tool in ("helm", "kubectl"):
        if tool not in missing:
            (bin_dir / tool).symlink_to(VENV_BIN / tool)
    return str(bin_dir)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("missing", "says"),
    [
        ("helm", "helm not found on PATH: install Helm 3 (https://helm.sh/docs/intro/install/)"),
        ("kubectl", "kubectl not found on PATH: install it (https://kubernetes.io/docs/tasks/"),
    ],
)
@pytest.mark.parametrize("dry_run", [False, True], ids=["install", "dry-run"])
def test_a_missing_tool_stops_it_in_one_line(
    tmp_path: Path, authority: Path, missing: str, says: str, *, dry_run: bool
) -> None:
    auth = tmp_path / "fleet-authority"
    done = run_example(
        NATS_INSTALL, *(["--dry-run"] if dry_run else []),
        env=offline_env(tmp_path, AUTH_DIR=str(auth)), path=bin_without(tmp_path, missing),
        timeout=45,
    )  # fmt: skip

    assert done.returncode == 3, done.stdout + done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"fleet_nats_install: {says}"), line
    assert done.stdout == ""
    assert not auth.exists()


@pytest.mark.timeout(60)
def test_no_cluster_stops_it_in_one_line(tmp_path: Path) -> None:
    auth = tmp_path / "fleet-authority"
    # no kubeconfig: no current context
    done = run_example(NATS_INSTALL, env=offline_env(tmp_path, AUTH_DIR=str(auth)), timeout=45)
    assert done.returncode == 3, done.stdout + done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("fleet_nats_install: no current context in the kubeconfig"), line

    # a context whose server does not answer (a closed port of 127.0.0.1)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "gone",
        "clusters": [{"name": "gone", "cluster": {"server": "https://127.0.0.1:9"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "gone"}}],
        "users": [{"name": "gone", "user": {}}],
    }))  # fmt: skip
    done = run_example(
        NATS_INSTALL, env=offline_env(tmp_path, AUTH_DIR=str(auth), KUBECONFIG=str(kubeconfig)),
        timeout=45,
    )  # fmt: skip
    assert done.returncode == 3, done.stdout + done.stderr
    (line,) = done.stderr.splitlines()
    assert line == (
        "fleet_nats_install: the cluster of context gone (https://127.0.0.1:9) does not answer: "
        "check the kubeconfig and the network, or try --dry-run"
    )
    assert not auth.exists()


@pytest.mark.timeout(60)
def test_a_cluster_without_the_tls_secret_stops_it_before_anything_is_made(
    tmp_path: Path, kube: KubeCluster
) -> None:
    # a cluster that answers kubectl (the API emulator) but holds no Secret fleet-nats-tls,
    # and no certificate files given: refused before the authority or a namespace is made
    kubeconfig = kube.server.write_kubeconfig(tmp_path / "kubeconfig")
    auth = tmp_path / "fleet-authority"
    done = run_example(
        NATS_INSTALL, env=offline_env(tmp_path, AUTH_DIR=str(auth), KUBECONFIG=str(kubeconfig)),
        timeout=45,
    )  # fmt: skip

    assert done.returncode == 3, done.stdout + done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith(
        "fleet_nats_install: no Secret fleet-nats-tls in fleet-system: give --tls-cert/"
    ), line
    assert not auth.exists()
    namespaces = subprocess.run(
        [str(VENV_BIN / "kubectl"), "--kubeconfig", str(kubeconfig), "get", "namespaces",
         "-o", "name"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout.split()  # fmt: skip
    assert "namespace/fleet-system" not in namespaces


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ["--tls-cert", "server.crt"],
            "give --tls-cert, --tls-key and --tls-ca together (the server's certificate, its "
            "key, the CA devices trust)",
        ),
        (["--auth-dir"], "--auth-dir needs a value (--help)"),
        (["--force"], "unknown argument '--force' (--help)"),
    ],
)
def test_bad_usage_is_refused_in_one_line(tmp_path: Path, args: list[str], says: str) -> None:
    done = run_example(NATS_INSTALL, *args, "--dry-run", env=offline_env(tmp_path), timeout=20)

    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"fleet_nats_install: {says}"]


@pytest.mark.timeout(30)
def test_help_is_the_header(tmp_path: Path) -> None:
    done = run_example(NATS_INSTALL, "--help", env=offline_env(tmp_path), timeout=20)

    assert done.returncode == 0
    assert done.stdout.startswith("fleet_nats_install: the fleet's NATS")
    assert "Tried here only with --dry-run" in done.stdout
    assert "set -euo" not in done.stdout
