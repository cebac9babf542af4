"""Fixtures for tests that run the real ``fleet-agent`` process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.agent.process.harness import AgentProcess


@pytest.fixture
def agents() -> Iterator[list[AgentProcess]]:
    """A list to put started agent processes in; whatever is left is killed afterwards."""
    started: list[AgentProcess] = []
    yield started
    for agent in started:
        if agent.alive:
            agent.kill()
    for agent in started:
        assert "Traceback" not in agent.log(), agent.log()[-3000:]
