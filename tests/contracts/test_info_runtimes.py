"""``DeviceInfo.runtimes``: optional, bounded, total; absent means podman only."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from fleet.contracts import decode_info, encode_info
from fleet.contracts.info import MAX_RUNTIMES
from fleet.errors import ContractError
from tests.contracts.samples import info, info_json


def with_runtimes(value: Any) -> bytes:
    return msgspec.json.encode({**info_json(), "runtimes": value})


def test_an_info_without_runtimes_is_podman_only_and_encodes_as_before() -> None:
    decoded = decode_info(msgspec.json.encode(info_json()))
    assert decoded.runtimes is None
    assert decoded.runnable == ("podman",)
    assert b"runtimes" not in encode_info(info())  # an older agent's bytes, unchanged


def test_runtimes_round_trip() -> None:
    decoded = decode_info(with_runtimes(["podman", "kvm", "kubernetes"]))
    assert decoded.runnable == ("podman", "kvm", "kubernetes")
    assert decode_info(encode_info(decoded)) == decoded
    assert decode_info(with_runtimes([])).runnable == ()  # says it runs nothing


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (["Podman"], "runtimes[0]"),
        (["podman", ""], "runtimes[1]"),
        (["kvm", "kvm"], "runtimes[1]"),
        (["x" * 64], "runtimes[0]"),
        ([1], "runtimes[0]"),
        ("podman", "runtimes"),
        ({"podman": True}, "runtimes"),
        ([f"r{i}" for i in range(MAX_RUNTIMES + 1)], "runtimes"),
    ],
)
def test_a_bad_runtimes_list_is_refused_naming_the_field(value: Any, field: str) -> None:
    with pytest.raises(ContractError) as caught:
        decode_info(with_runtimes(value))
    assert caught.value.field == field
    assert f"`{field}`" in str(caught.value)
