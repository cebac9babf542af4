"""The operator image, built from deploy/Containerfile and run with podman as a pod would
run it: against a real nats-server and the Kubernetes API emulator (both on 127.0.0.1; the
container shares the host's network), with a simulated device reporting.

What a user would see: the image waits for NATS while alive and not ready, then takes a
Deployment to Ready and keeps the device's Device resource, answers its probes and
``/metrics`` (parsed with prometheus_client's own parser), and stops cleanly on SIGTERM
(as PID 1). Bad input: a base without python3, or one that does not exist, fails the build
saying so; a bad flag stops the container at once with the usual one-line error.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fleet.contracts import Phase
from fleet.devtools.podman_sandbox import PodmanEnv
from tests.fixtures.kube import KubeCluster
from tests.fixtures.nats import NatsServer
from tests.operator.sim import SCORE, Fleet, eventually

from .conftest import BuiltImage, build_argv

pytestmark = pytest.mark.podman

SERVING = re.compile(r"serving /metrics, /healthz and /readyz on http://127\.0\.0\.1:(\d+)")
DEVICE = "pi-image-1"


class Container:
    def __init__(self, podman: PodmanEnv, name: str) -> None:
        self.podman = podman
        self.name = name

    def logs(self) -> str:
        done = self.podman.podman("logs", self.name, check=False)
        return done.stdout + done.stderr

    def says(self, line: str) -> None:
        assert line in self.logs(), f"{self.name} has not logged {line!r}"

    def state(self) -> tuple[str, int]:
        out = self.podman.podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}",
                                 self.name).stdout.split()  # fmt: skip
        return out[0], int(out[1])

    def base_url(self) -> str:
        """The operator's HTTP port, once its log says it listens."""
        logs = self.logs()
        assert self.state()[0] == "running", logs[-3000:]
        found = SERVING.search(logs)
        assert found is not None
        return f"http://127.0.0.1:{int(found.group(1))}"


@contextlib.contextmanager
def operator_container(podman: PodmanEnv, image: str, *argv: str) -> Iterator[Container]:
    """``fleet-operator`` in ``image`` on the host's network; removed at the end."""
    name = f"fleet-operator-image-{secrets.token_hex(3)}"
    podman.podman("run", "-d", "--pull=never", "--network=host", "--name", name,
                  "--label", podman.session_label, image, *argv)  # fmt: skip
    container = Container(podman, name)
    try:
        yield container
    except BaseException:
        print(f"--- podman logs {name} (last 6000 characters) ---\n{container.logs()[-6000:]}")
        raise
    finally:
        podman.podman("rm", "-f", "-t", "0", name, check=False)


def equal(seen: object, wanted: object) -> None:
    """For ``eventually``: a failure names what was seen last."""
    assert seen == wanted, f"{seen!r} != {wanted!r}"


def answers(url: str, wanted: tuple[int, str]) -> None:
    equal(get(url), wanted)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, text = get(f"{base}/metrics")
    assert status == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.mark.timeout(1500)  # the first test of a session builds the image (cold: ~2 min)
def test_the_image_takes_a_deployment_to_ready_and_answers_its_probes_and_metrics(
    operator_image: BuiltImage, podman: PodmanEnv, nats_server: NatsServer, fleet: Fleet,
    kube: KubeCluster,
) -> None:  # fmt: skip
    nats_server.stop()  # it starts with NATS down: alive, not ready, and says what it waits for
    with operator_container(
        podman, operator_image.name, "--nats-url", nats_server.url, "--kube-url", kube.url,
        "--metrics-address", "127.0.0.1:0", "--liveness-timeout", "600",
    ) as operator:  # fmt: skip
        base = eventually(operator.base_url, timeout=120)
        assert get(f"{base}/healthz") == (200, "ok\n")
        status, reason = get(f"{base}/readyz")
        assert status == 503
        assert "NATS not connected" in reason
        eventually(lambda: operator.says(f"connecting to NATS at {nats_server.url}"), timeout=60)

        nats_server.start()
        eventually(lambda: answers(f"{base}/readyz", (200, "ok\n")), timeout=120)
        eventually(lambda: fleet.bus.connected, timeout=60)
        fleet.join([DEVICE], {"site": "lab"})
        kube.create_deployment("default", "hello-image", selector={"matchLabels": {"site": "lab"}},
                               score=SCORE)  # fmt: skip
        eventually(lambda: equal(len(fleet.desired()), 1), timeout=120)
        fleet.report([DEVICE], "hello-image", Phase.RUNNING)

        eventually(lambda: equal(kube.ready("default", "hello-image").get("status"), "True"),
                   timeout=120)  # fmt: skip
        assert kube.aggregate("default", "hello-image") == {
            "targeted": 1, "running": 1, "pending": 0, "failed": 0, "unreachable": 0,
        }  # fmt: skip

        def device_online() -> None:
            device = kube.cluster_object("devices", DEVICE)
            assert device is not None
            assert device["metadata"]["labels"] == {"site": "lab"}
            assert device["status"]["online"] is True

        eventually(device_online, timeout=120)
        assert get(f"{base}/readyz") == (200, "ok\n")

        def figures() -> None:
            samples = scrape(base)
            key = (("deployment", "hello-image"), ("deployment_namespace", "default"))
            assert samples[("fleet_operator_synced", ())] == 1
            assert samples[("fleet_operator_devices_online", ())] == 1
            assert samples[("fleet_operator_deployment_targeted_devices", key)] == 1
            running = tuple(sorted((*key, ("class", "running"))))
            assert samples[("fleet_operator_deployment_devices", running)] == 1
            assert samples[("process_resident_memory_bytes", ())] > 0

        eventually(figures, timeout=60)

        podman.podman("stop", "-t", "30", operator.name, timeout=60)  # SIGTERM, as a pod's end
        assert operator.state() == ("exited", 0), operator.logs()[-3000:]


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("base", "says"),
    [
        ("localhost/busybox:test", "BASE_IMAGE has no python3: fleet needs Python >= 3.11"),
        ("localhost/no-such-base:none", "localhost/no-such-base:none: image not known"),
    ],
)
def test_a_bad_base_image_fails_the_build_saying_why(
    podman: PodmanEnv, base: str, says: str
) -> None:
    done = subprocess.run(
        ["podman", *build_argv(base=base, tag=None)], env=podman.env, capture_output=True,
        text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert says in done.stderr, done.stderr[-3000:]


@pytest.mark.timeout(1500)  # builds the image when run alone
def test_a_bad_flag_stops_the_image_with_a_one_line_error(
    operator_image: BuiltImage, podman: PodmanEnv
) -> None:
    done = podman.podman("run", "--rm", "--pull=never", "--network=host", operator_image.name,
                         "--liveness-timeout", "0", check=False, timeout=120)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "fleet-operator: error: --liveness-timeout must be > 0, got 0.0" in done.stderr
