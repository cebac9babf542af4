"""Host paths on real podman: a device that allows ``host_path`` bind-mounts a directory
of the host (read-only when asked, the container's writes reaching the host otherwise);
a device that does not refuses it naming the field; a path that resolves (symlinks
followed) to a denied one, is or holds the agent's state dir or podman's storage, or does
not exist is Failed naming the field, and so is a denied path written by hand into the
bucket. Nothing of a refused entry runs. Podman binds the path resolved on the device: a
symlink swapped afterwards does not move the mount."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fleet.contracts import DeploymentState
from tests.agent.conftest import AgentWorld, running

pytestmark = pytest.mark.podman


def failed_at(revision: int) -> Callable[[DeploymentState], bool]:
    return lambda s: s.phase.value == "Failed" and s.desired_revision == revision


def bind_score(image: str, *volumes: dict[str, Any]) -> dict[str, Any]:
    container = {"name": "app", "image": image,
                 "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 300 & wait"],
                 "volumes": list(volumes)}  # fmt: skip
    return {"type": "podman", "containers": [container]}


@pytest.mark.timeout(150)
def test_a_device_that_allows_host_paths_mounts_them(world: AgentWorld, tmp_path: Path) -> None:
    config_dir, data_dir = tmp_path / "site-config", tmp_path / "site-data"
    config_dir.mkdir()
    data_dir.mkdir()
    token = secrets.token_hex(6)
    (config_dir / "site.conf").write_text(f"site={token}\n")
    world.start_agent(world.config(allow_privileges=frozenset({"host_path"})))
    rev = world.put_desired("site", bind_score(
        world.podman.image,
        {"host_path": str(config_dir), "path": "/etc/site", "read_only": True},
        {"host_path": str(data_dir), "path": "/data"},
    ))  # fmt: skip
    world.wait_state("site", lambda s: running(s, rev), timeout=60)
    name = f"fleet-{world.device}-site-app"
    assert world.podman.podman("exec", name, "cat", "/etc/site/site.conf").stdout == (
        f"site={token}\n"
    )
    refused = world.podman.podman("exec", name, "sh", "-c", "echo x > /etc/site/new", check=False)
    assert refused.returncode != 0  # read_only honoured
    assert not (config_dir / "new").exists()
    world.podman.podman("exec", name, "sh", "-c", "echo written > /data/out")
    assert (data_dir / "out").read_text() == "written\n"  # the host's own directory

    world.delete_desired("site")
    world.wait_container("site", lambda c: c is None, name="app", timeout=60)
    assert (data_dir / "out").exists()  # never removed with the deployment
    assert (config_dir / "site.conf").exists()


@pytest.mark.timeout(150)
def test_what_the_device_will_not_mount_is_failed_naming_the_field(
    world: AgentWorld, tmp_path: Path
) -> None:
    image = world.podman.image
    app = world.start_agent()  # no [policy] allow: host paths refused
    ok_dir = tmp_path / "ok"
    ok_dir.mkdir()
    rev = world.put_desired("plain-policy", bind_score(image, {"host_path": str(ok_dir),
                                                              "path": "/x"}))  # fmt: skip
    state = world.wait_state("plain-policy", failed_at(rev), timeout=60)
    assert "`containers[0].volumes[0].host_path`" in (state.message or "")
    assert "policy" in (state.message or "")
    assert world.owned("plain-policy") == []
    world.stop_agent(app)

    world.start_agent(world.config(allow_privileges=frozenset({"host_path"})))
    to_etc = tmp_path / "innocent"
    to_etc.symlink_to("/etc")
    state_dir = world.state_root / world.device
    state_dir.mkdir(parents=True, exist_ok=True)
    cases = {
        "symlink": (str(to_etc), "resolves to '/etc', under /etc"),
        "missing": (str(tmp_path / "nowhere"), "does not exist on this device"),
        "state": (str(state_dir), "the agent's own"),
        "holds-state": (str(world.state_root), "the agent's own"),
    }
    for deployment, (host_path, why) in cases.items():
        volumes = ({"name": "v", "path": "/v"}, {"host_path": host_path, "path": "/x"})
        rev = world.put_desired(deployment, bind_score(image, *volumes))
        state = world.wait_state(deployment, failed_at(rev), timeout=60)
        message = state.message or ""
        assert message.startswith("containers[0].volumes[1].host_path: "), message
        assert why in message, message
        assert world.owned(deployment) == []  # nothing of it runs

    raw = bind_score(image, {"host_path": "/etc", "path": "/x"})  # written by hand
    rev = world.put_desired("denied", raw)
    state = world.wait_state("denied", failed_at(rev), timeout=60)
    assert "containers[0].volumes[0].host_path" in (state.message or "")
    assert "is under /etc" in (state.message or "")
    assert world.owned("denied") == []


@pytest.mark.timeout(150)
def test_podmans_storage_is_refused_and_podman_binds_the_real_path(
    world: AgentWorld, tmp_path: Path
) -> None:
    image = world.podman.image
    world.start_agent(world.config(allow_privileges=frozenset({"host_path"})))
    graph_root = world.podman.podman("info", "--format", "{{.Store.GraphRoot}}").stdout.strip()
    to_storage = tmp_path / "to-storage"
    to_storage.symlink_to(graph_root, target_is_directory=True)
    rev = world.put_desired("storage", bind_score(image, {"host_path": str(to_storage),
                                                          "path": "/x"}))  # fmt: skip
    state = world.wait_state("storage", failed_at(rev), timeout=60)
    assert "containers[0].volumes[0].host_path" in (state.message or "")
    assert "the agent's own" in (state.message or ""), state.message
    assert world.owned("storage") == []

    real = tmp_path / "site-real"
    real.mkdir()
    (real / "marker").write_text("real\n")
    link = tmp_path / "site-link"
    link.symlink_to(real, target_is_directory=True)
    rev = world.put_desired("linked", bind_score(image, {"host_path": str(link), "path": "/s"}))
    world.wait_state("linked", lambda s: running(s, rev), timeout=60)
    name = f"fleet-{world.device}-linked-app"
    each = "{{range .Mounts}}{{.Source}}|{{.Destination}};{{end}}"
    mounts = world.podman.podman("inspect", name, "--format", each)
    assert f"{real}|/s;" in mounts.stdout  # the path resolved on the device, not the link
    # the link swapped for another target afterwards does not move the mount
    other = tmp_path / "elsewhere"
    other.mkdir()
    link.unlink()
    link.symlink_to(other, target_is_directory=True)
    world.podman.podman("restart", "-t", "1", name)
    assert world.podman.podman("exec", name, "cat", "/s/marker").stdout == "real\n"
