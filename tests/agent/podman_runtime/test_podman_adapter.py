"""The real podman adapter against the private podman service and the local registry."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest

from fleet.contracts import ContainerSpec, PortMapping
from fleet.runtime.podman.adapter import PodmanRuntime
from fleet.runtime.podman.port import (
    ContainerEvent,
    ContainerFailed,
    ImagePullFailed,
    NotAddressable,
    owner_labels,
)
from tests.budgets import EVENT_STREAM_CLOSE_S
from tests.fixtures.podman import PodmanEnv, free_port

pytestmark = pytest.mark.podman


@pytest.fixture
def runtime(podman: PodmanEnv) -> Iterator[PodmanRuntime]:
    rt = PodmanRuntime(url=podman.socket_url)
    yield rt
    rt.close()


def fetch(port: int, *, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as r:
                body: bytes = r.read()
                return body.decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_pull_create_start_serve_stop_remove(podman: PodmanEnv, runtime: PodmanRuntime) -> None:
    assert runtime.version()[0] == "podman"
    tag = podman.push_tag("adapter")
    assert not runtime.image_present(tag)
    runtime.pull(tag, timeout=10)
    assert runtime.image_present(tag)
    port = free_port()
    spec = ContainerSpec(
        name="web",
        image=tag,
        command=["httpd", "-f", "-p", "80", "-h", "/www"],
        env={"A": "b"},
        ports=[PortMapping(host_port=port, container_port=80)],
    )
    labels = owner_labels("dev-a", "web")
    cid = runtime.create(name="fleet-dev-a-web-web", spec=spec, labels=labels)
    runtime.start(cid)
    assert fetch(port) == "hello from fleet\n"
    [listed] = runtime.list_containers(labels=labels)
    assert listed.id == cid
    assert listed.running
    assert listed.deployment == "web"
    assert runtime.list_containers(labels=owner_labels("dev-b")) == []
    runtime.stop(cid, timeout=1)
    inspected = runtime.inspect(cid)
    assert inspected is not None
    assert not inspected.running
    runtime.remove(cid)
    assert runtime.inspect(cid) is None
    runtime.remove(cid)  # absent is fine


def test_pull_errors_say_what_is_wrong(podman: PodmanEnv, runtime: PodmanRuntime) -> None:
    with pytest.raises(ImagePullFailed, match="manifest unknown") as missing:
        runtime.pull(f"{podman.registry}/busybox:absent", timeout=10)
    assert missing.value.not_found
    tag = podman.push_tag("down")
    podman.stop_registry()
    with pytest.raises(ImagePullFailed, match="connection refused") as down:
        runtime.pull(tag, timeout=10)
    assert not down.value.not_found


def test_start_with_the_port_taken_fails_with_the_reason(
    podman: PodmanEnv, runtime: PodmanRuntime
) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        spec = ContainerSpec(
            name="web",
            image=podman.image,
            command=["httpd", "-f", "-p", "80"],
            ports=[PortMapping(host_port=port, container_port=80)],
        )
        cid = runtime.create(name="taken", spec=spec, labels=owner_labels("dev-a", "x"))
        with pytest.raises(ContainerFailed, match="address already in use"):
            runtime.start(cid)


def test_events_report_owned_containers_only_and_close_promptly(
    podman: PodmanEnv, runtime: PodmanRuntime
) -> None:
    seen: list[ContainerEvent] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def on_event(event: ContainerEvent) -> None:
        with lock:
            seen.append(event)

    stream = runtime.events(
        labels=owner_labels("dev-ev"), on_event=on_event, on_error=errors.append
    )
    try:
        spec = ContainerSpec(name="s", image=podman.image, command=["sleep", "100"])
        mine = runtime.create(name="ev-mine", spec=spec, labels=owner_labels("dev-ev", "d1"))
        runtime.create(name="ev-other", spec=spec, labels=owner_labels("dev-other", "d1"))
        runtime.start(mine)
        podman.podman("kill", "ev-mine")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with lock:
                actions = {e.action for e in seen}
            if "died" in actions:
                break
            time.sleep(0.05)
        with lock:
            assert {e.name for e in seen} == {"ev-mine"}
            assert {"start", "died"} <= {e.action for e in seen}
            assert all(e.deployment == "d1" for e in seen)
    finally:
        started = time.monotonic()
        stream.close()
        assert time.monotonic() - started < EVENT_STREAM_CLOSE_S
    assert errors == []


def test_values_in_rest_paths_are_escaped(podman: PodmanEnv, runtime: PodmanRuntime) -> None:
    spec = ContainerSpec(name="v", image=podman.image, command=["sleep", "100"])
    runtime.create(name="victim", spec=spec, labels=owner_labels("dev-esc", "d1"))
    crafted = "x/../../containers/victim"
    # The hazard, shown with the raw client: unescaped, the path resolves to the
    # container's own endpoint, which answers for it.
    assert runtime._api().get(f"/images/{crafted}/exists").status_code == 204
    # Escaped: one path segment, an image reference podman refuses.
    assert runtime.image_present(crafted) is False
    assert runtime.inspect("../victim") is None
    runtime.remove("x/../victim")  # absent: nothing else is removed
    assert runtime.inspect("victim") is not None
    for value in ("", ".", ".."):  # would be a dot segment whatever the escaping
        with pytest.raises(NotAddressable):
            runtime.image_present(value)
    # and real references, with a port, '/' and ':', still work
    assert runtime.image_present(podman.image) is True


def test_rename_logs_and_restart_count(podman: PodmanEnv, runtime: PodmanRuntime) -> None:
    spec = ContainerSpec(
        name="c",
        image=podman.image,
        command=["sh", "-c", "echo out; echo err >&2; printf '\\033[1mbold\\n'; exit 3"],
        restart_policy="always",
    )
    cid = runtime.create(name="before", spec=spec, labels=owner_labels("dev-rn", "d1"))
    runtime.rename(cid, "after")
    renamed = runtime.inspect("after")
    assert renamed is not None
    assert renamed.id == cid
    runtime.start(cid)
    deadline = time.monotonic() + 10
    while (found := runtime.inspect(cid)) is not None and found.restart_count < 2:
        assert time.monotonic() < deadline, found
        time.sleep(0.05)
    lines = runtime.logs(cid, tail=3)
    assert len(lines) == 3
    assert set(lines) <= {"out", "err", "?[1mbold"}
    assert runtime.logs("no-such-container", tail=3) == []
    other = runtime.create(name="other", spec=spec, labels=owner_labels("dev-rn", "d1"))
    with pytest.raises(ContainerFailed, match="after"):
        runtime.rename(other, "after")  # taken
