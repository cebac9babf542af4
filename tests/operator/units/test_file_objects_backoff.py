"""An object whose read fails is read again after a backoff (interval, doubling to a
bound), not every round; a success clears it."""

from __future__ import annotations

import itertools
from typing import Any

import kubernetes
import pytest

from fleet.runtime.kube.client import KubeClient
from fleet.runtime.kube.file_objects import MAX_BACKOFF, FileObjects


def test_a_failing_read_backs_off_and_a_success_clears_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [0.0]
    objects = FileObjects(
        KubeClient(kubernetes.client.ApiClient()), interval=10.0, clock=lambda: now[0]
    )
    reads: list[float] = []
    failing = [True]

    def read(_key: Any) -> dict[str, Any] | None:
        reads.append(now[0])
        if failing[0]:
            raise ValueError("get secret ns/creds: larger than 1048576 bytes")
        return {"k": "v"}

    monkeypatch.setattr(objects, "_read", read)
    objects.need("ns/web", "ns", {("config_map", "conf")}, lambda _devices: None)
    for _ in range(1000):  # a round a second, for 1000 s
        objects.refresh()
        now[0] += 1.0
    assert reads[:5] == [0.0, 10.0, 30.0, 70.0, 150.0]
    assert all(b - a <= MAX_BACKOFF for a, b in itertools.pairwise(reads))
    assert len(reads) < 10  # not 1000
    failing[0] = False
    now[0] = reads[-1] + MAX_BACKOFF
    objects.refresh()
    assert objects.config_map("ns", "conf") == {"k": "v"}
    count = len(reads)
    objects.refresh()  # read every round again
    assert len(reads) == count + 1
