"""Shards: who owns what (the hash), and the shard map that hands a change of shard count
over without two counts writing at once, against the API emulator's real Leases.

The attacks: a shard of a new count while the old count still holds a Lease; an old-count
shard that takes its Lease after the map moved; a Lease whose count annotation is junk;
a leader of the old count once the map moved (it must step down).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from fleet.actors.operator.shards import Shard, shard_of
from fleet.errors import ConfigError
from fleet.runtime.kube.lease import LeaseElector, LeaseTiming
from fleet.runtime.kube.shard_map import SHARDS_ANNOTATION, ShardMap, shard_lease_name
from tests.fixtures.kube import KubeCluster

from ..sim import eventually

TIMING = LeaseTiming(duration=3.0, renew_deadline=2.0, retry_period=0.25)
NS = "fleet-system"
BASE = "fleet-operator"


def test_the_hash_is_pinned_and_spreads_names_evenly() -> None:
    # Pinned: every replica of every version must agree, or two shards own one name.
    names = ("web", "db", "cache", "dev-0001", "dev-0002", "dev-0003")
    assert [shard_of(name, 4) for name in names] == [0, 3, 2, 1, 3, 1]
    assert [shard_of(name, 3) for name in names[:3]] == [2, 0, 0]
    counts = Counter(shard_of(f"dev-{i:05d}", 4) for i in range(10_000))
    assert set(counts) == {0, 1, 2, 3}
    assert all(2_200 < n < 2_800 for n in counts.values()), counts
    for name in ("web", "dev-0001"):
        owners = [i for i in range(4) if Shard(count=4, index=i).owns_deployment(name)]
        assert len(owners) == 1
    assert Shard().owns_deployment("anything")
    assert Shard().owns_device("anything")


@pytest.mark.parametrize(
    ("count", "index", "says"),
    [(0, 0, "--shards must be 1..64"), (65, 0, "--shards must be 1..64"),
     (2, 2, "--shard-index must be 0..1"), (3, -1, "--shard-index must be 0..2")],
)  # fmt: skip
def test_a_shard_out_of_range_is_refused_naming_the_flag(count: int, index: int, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        Shard(count=count, index=index)


@pytest.fixture
def electors() -> Iterator[list[LeaseElector]]:
    made: list[LeaseElector] = []
    yield made
    for elector in made:
        elector.release()


def shard_lease(
    kube: KubeCluster, made: list[LeaseElector], count: int, index: int
) -> LeaseElector:
    elector = LeaseElector(
        kube.api_client, namespace=NS, name=shard_lease_name(BASE, count=count, index=index),
        identity=f"op-{count}-{index}", timing=TIMING,
        annotations={SHARDS_ANNOTATION: str(count)},
    )  # fmt: skip
    made.append(elector)
    assert elector.try_acquire_or_renew()
    elector.keep(on_lost=lambda _why: None)
    return elector


def gate(kube: KubeCluster, count: int, index: int) -> ShardMap:
    return ShardMap(kube.api_client, namespace=NS, base=BASE, count=count, index=index,
                    timing=TIMING)  # fmt: skip


def map_count(kube: KubeCluster) -> str | None:
    api: Any = kubernetes.client.CoordinationV1Api(kube.api_client)
    annotations = api.read_namespaced_lease(f"{BASE}-shards", NS).metadata.annotations or {}
    value: str | None = annotations.get(SHARDS_ANNOTATION)
    return value


def passes(shard_map: ShardMap) -> bool:
    return shard_map.step() is None


@pytest.mark.timeout(120)
def test_a_new_count_waits_for_every_lease_of_the_old_one_then_the_old_steps_down(
    kube: KubeCluster, electors: list[LeaseElector]
) -> None:
    old = [shard_lease(kube, electors, 2, i) for i in range(2)]
    old_maps = [gate(kube, 2, i) for i in range(2)]
    eventually(lambda: passes(old_maps[0]), timeout=30)
    assert map_count(kube) == "2"
    assert passes(old_maps[1])
    stepped_down = threading.Event()
    old_maps[1].keep(on_changed=lambda _why: stepped_down.set())
    try:
        # a rolling update to 3 shards: new shard 2 takes its Lease while the old still lead
        shard_lease(kube, electors, 3, 2)
        new = gate(kube, 3, 2)
        why = new.step()
        assert why is not None
        assert f"{BASE}-shard-0 (2)" in why
        assert f"{BASE}-shard-1 (2)" in why
        assert map_count(kube) == "2"
        old[0].release()  # old shard 0 stopped cleanly: old shard 1 still leads
        why = new.step()
        assert why is not None
        assert f"{BASE}-shard-1 (2)" in why
        assert "shard-0" not in why
        assert map_count(kube) == "2"
        assert not stepped_down.is_set()
        # the old shard 0's replacement (count 3) takes the Lease the old one released
        shard_lease(kube, electors, 3, 0)
        assert gate(kube, 3, 0).step() is not None
        old[1].release()  # the last old replica is gone: the new count moves the map
        eventually(lambda: passes(new), timeout=30)
        assert map_count(kube) == "3"
        assert passes(gate(kube, 3, 0))
        # an old-count replica that starts (or restarts) now never writes
        assert shard_lease_name(BASE, count=2, index=1) == f"{BASE}-shard-1"
        late = shard_lease(kube, electors, 2, 1)
        why = gate(kube, 2, 1).step()
        assert why is not None
        assert "(3)" in why
        assert map_count(kube) == "3"
        late.release()
        # an old leader still watching when the map moves steps down (the second guard)
        assert stepped_down.wait(timeout=10)
    finally:
        old_maps[1].stop()


@pytest.mark.timeout(60)
def test_a_lease_with_a_junk_count_blocks_until_it_lapses(
    kube: KubeCluster, electors: list[LeaseElector]
) -> None:
    api: Any = kubernetes.client.CoordinationV1Api(kube.api_client)
    junk = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": f"{BASE}-shard-7",
                         "annotations": {SHARDS_ANNOTATION: "lots" * 40}},
            "spec": {"holderIdentity": "intruder", "leaseDurationSeconds": 2,
                     "renewTime": "2099-01-01T00:00:00.000000Z"}}  # fmt: skip
    api.create_namespaced_lease(NS, junk)
    shard_lease(kube, electors, 2, 0)
    shard_map = gate(kube, 2, 0)
    why = shard_map.step()
    assert why is not None
    assert f"{BASE}-shard-7 (unreadable count)" in why
    # never renewed: it lapses after its own duration as this replica observed it
    eventually(lambda: passes(shard_map), timeout=30)
    assert map_count(kube) == "2"


@pytest.mark.timeout(60)
def test_leases_of_other_names_and_a_map_made_by_a_rival_are_taken_in_stride(
    kube: KubeCluster, electors: list[LeaseElector]
) -> None:
    api: Any = kubernetes.client.CoordinationV1Api(kube.api_client)
    other = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "someone-elses-lease"},
             "spec": {"holderIdentity": "x", "leaseDurationSeconds": 3600}}  # fmt: skip
    api.create_namespaced_lease(NS, other)
    shard_lease(kube, electors, 1, 0)  # one shard: the Lease is BASE itself
    shard_map = gate(kube, 1, 0)
    eventually(lambda: passes(shard_map), timeout=30)
    assert map_count(kube) == "1"
