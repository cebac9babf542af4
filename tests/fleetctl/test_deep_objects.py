"""A Deployment nested 1,000 deep (a real API server stores one) does not crash fleetctl."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fleet.runtime.kube.decode import TOO_DEEP, decode_loose
from tests.fixtures.kube import KubeCluster
from tests.operator.robustness.test_hostile_kube import (
    GROUP,
    deep,
    deep_deployment,
    deep_recursion,
    post,
)

from .conftest import Result

__all__ = ["deep_recursion"]  # the fixture: the in-process emulator parses it with json


@pytest.mark.usefixtures("deep_recursion")
def test_deployments_and_status_show_a_deep_deployment(
    kube: KubeCluster, ctl: Callable[..., Result]
) -> None:
    post(kube.url, f"{GROUP}/namespaces/ns/deployments", deep_deployment("deep"))
    listed = ctl("deployments", "-n", "ns")
    assert listed.code == 0, listed.err
    assert "deep" in listed.out
    shown = ctl("status", "deep", "-n", "ns", "-o", "json")
    assert shown.code == 0, shown.err
    assert shown.json()["deployment"]["name"] == "deep"


def test_decode_loose_keeps_what_it_can_show() -> None:
    data = b'{"metadata":{"name":"x"},"spec":' + deep(1000) + b',"n":[1,2]}'
    value = decode_loose(data)
    assert isinstance(value, dict)
    assert value["metadata"] == {"name": "x"}
    assert value["n"] == [1, 2]
    node = value["spec"]
    for _ in range(40):
        if node == TOO_DEEP:
            break
        node = node["a"]
    assert node == TOO_DEEP
