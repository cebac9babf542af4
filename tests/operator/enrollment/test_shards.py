"""Device identity with two operator shards (docs/operator.md, "Shards"): shard 0 alone
answers enrollment (one desk, one Device resource); both shards target by the approved
labels, so the Deployment owned by shard 1 reaches an enrolled device by the labels its
Device resource holds, never by those it reports. Real nats-server in auth mode, the API
emulator, both shards in process.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.actors.operator.shards import shard_of
from fleet.devtools.tls import LocalCa
from fleet.runtime.aiokit.loop import EventLoopThread
from tests.fixtures.kube import KubeCluster

from .conftest import running
from .test_labels import SCORE, enrolled, reported, targeted
from .world import World

pytestmark = pytest.mark.timeout(120)


def _owned(base: str, index: int) -> bool:
    return all(shard_of(f"{base}-{site}", 2) == index for site in ("paris", "rome"))


NAMESPACE = "labels"


@pytest.fixture
def sharded(
    tmp_path: Path, local_ca: LocalCa, kube: KubeCluster, event_loop_thread: EventLoopThread
) -> Iterator[World]:
    with running(tmp_path, local_ca, kube, event_loop_thread, shards=2) as world:
        yield world


def test_shard_zero_answers_and_both_target_by_the_approved_labels(sharded: World) -> None:
    first, second = sharded.operators
    assert first.desk is not None
    assert second.desk is None  # one desk: no request answered (or revoked) twice
    # one pair of Deployments (paris, rome) owned by each shard
    names = {i: next(b for n in range(200) if _owned(b := f"web-{n}", i)) for i in range(2)}
    device, creds = enrolled(sharded, "sh-1", {"site": "paris"})
    sharded.announce(device, creds, {"site": "rome"})  # what it reports: not what targets
    reported(sharded, "sh-1", {"site": "rome"})
    for name in names.values():
        for site in ("paris", "rome"):
            sharded.kube.create_deployment(
                NAMESPACE, f"{name}-{site}", selector={"matchLabels": {"site": site}},
                score=SCORE,
            )  # fmt: skip
    for name in names.values():
        targeted(sharded, "sh-1", f"{name}-paris", True)
    for name in names.values():
        assert sharded.desired("sh-1", f"{name}-rome") is None
    sharded.patch("devices", "sh-1", {"spec": {"labels": {"site": "rome"}}})  # a person
    for name in names.values():
        targeted(sharded, "sh-1", f"{name}-rome", True)
        targeted(sharded, "sh-1", f"{name}-paris", False)
