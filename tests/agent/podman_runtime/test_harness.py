"""The podman test harness itself: private storage, local registry, busybox httpd."""

from __future__ import annotations

import urllib.request

import pytest

from tests.fixtures.podman import PodmanEnv, free_port

pytestmark = pytest.mark.podman


def test_busybox_httpd_serves_from_the_local_registry_image(podman: PodmanEnv) -> None:
    port = free_port()
    podman.podman(
        "run",
        "-d",
        "--label",
        podman.session_label,
        "-p",
        f"{port}:80",
        podman.image,
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    )
    body = ""
    for _ in range(50):
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).read().decode()
            break
        except OSError:
            import time

            time.sleep(0.1)
    assert body == "hello from fleet\n"


def test_storage_is_private_to_the_session(podman: PodmanEnv) -> None:
    podman.assert_private()
    assert str(podman.root) in podman.podman("info", "--format", "{{.Store.RunRoot}}").stdout
