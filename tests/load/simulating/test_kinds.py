"""A simulated device of each kind tells the story the agent would of each score type."""

from __future__ import annotations

import pytest

from fleet.contracts import BUCKET_DESIRED_STATE, Phase, convert_score, encode_score
from fleet.devtools.simrollout import rollout_of
from fleet.runtime.nats.kv import KvEntry
from loadtest.runtime_mix import score_of


def entry(kind: str) -> KvEntry:
    value = encode_score(convert_score(score_of(kind, 2)))
    return KvEntry(bucket=BUCKET_DESIRED_STATE, key="d1.app", value=value, revision=7)


@pytest.mark.parametrize(
    ("kind", "phases", "pulled"),
    [
        ("podman", ["Pending", "Pulling", "Starting", "Running"], "registry.local/load/app:2"),
        ("kvm", ["Pending", "Pulling", "Starting", "Running"],
         "https://images.load.invalid/tiny-2.qcow2"),
        ("kubernetes", ["Pending", "Starting", "Running"], "load-2/Deployment/app"),
    ],
)  # fmt: skip
def test_a_device_running_the_type_goes_to_running(
    kind: str, phases: list[str], pulled: str
) -> None:
    rollout = rollout_of(entry(kind), (kind,))
    assert rollout is not None
    assert [s.phase.value for s in rollout.steps] == phases
    assert rollout.image == pulled
    assert rollout.revision == 7


@pytest.mark.parametrize("kind", ["kvm", "kubernetes"])
def test_a_podman_only_device_fails_naming_type(kind: str) -> None:
    rollout = rollout_of(entry(kind))  # podman only, as every device before runtimes
    assert rollout is not None
    (step,) = rollout.steps
    assert step.phase is Phase.FAILED
    assert step.message is not None
    assert f"its `type` {kind!r} has no runtime here (this device runs: podman)" in step.message
    assert rollout.image is None
