"""A state file that does not parse, or holds hostile entries, never stops the agent."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import msgspec
import pytest

from fleet.contracts.limits import MAX_CONTAINERS
from tests.agent.conftest import AgentWorld, fetch, httpd_score, running, wait_for
from tests.agent.process.harness import AgentProcess
from tests.agent.process.test_agent_process import heartbeat
from tests.fixtures.podman import free_port

pytestmark = pytest.mark.podman


def stored(value: bytes, revision: int = 1) -> dict[str, Any]:
    return {"revision": revision, "value": base64.b64encode(value).decode()}


def hostile_entries(world: AgentWorld) -> bytes:
    image = world.podman.image
    many = {
        "type": "podman",
        "containers": [{"name": f"c{i}", "image": image} for i in range(MAX_CONTAINERS + 1)],
    }
    return msgspec.json.encode(
        {
            "version": 1,
            "entries": {
                "nested": stored(b"[" * 1000 + b"]" * 1000),
                "unknown-type": stored(msgspec.json.encode({"type": "docker"})),
                "too-many": stored(msgspec.json.encode(many)),
                "Bad.Name": stored(msgspec.json.encode(httpd_score(image=image, port=8080))),
                "junk": stored(b"\xff\xfe"),
            },
            "removing": {"Also.Bad": 3},
        }
    )


FILES = {
    "nested-1000": lambda world: b'{"entries": ' + b"[" * 1000 + b"]" * 1000 + b"}",
    "not-json": lambda world: b"\x00\xff{{{",
    "hostile-entries": hostile_entries,
}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("kind", sorted(FILES))
def test_the_agent_starts_beats_and_converges_whatever_its_state_file_holds(
    world: AgentWorld, agents: list[AgentProcess], tmp_path: Path, kind: str
) -> None:
    port = free_port()
    revision = world.put_desired("web", httpd_score(image=world.podman.image, port=port))
    agent = AgentProcess(world, tmp_path)
    agent.state_dir.mkdir()
    content = FILES[kind](world)
    (agent.state_dir / "desired-state.json").write_bytes(content)
    agents.append(agent)
    agent.start()

    wait_for(lambda: (h := heartbeat(world)) is not None and h.seq >= 2, what="heartbeats")
    world.wait_state("web", lambda s: running(s, revision), timeout=30)
    assert fetch(port) == "hello from fleet\n"
    assert agent.alive
    log = agent.log()
    aside = sorted(agent.state_dir.glob("desired-state.json.bad-*"))
    if kind == "hostile-entries":
        assert aside == []
        assert log.count("dropping the") == 6
        assert "'too-many'" in log
    else:
        [moved] = aside
        assert moved.read_bytes() == content
        assert f"set it aside as {moved}" in log
    # and what it persists now is the good entry only: the next start is clean too
    kept = msgspec.json.decode((agent.state_dir / "desired-state.json").read_bytes())
    assert set(kept["entries"]) == {"web"}
    assert agent.stop() == 0
