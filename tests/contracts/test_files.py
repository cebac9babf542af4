"""``files`` of a container: one source each, bounded, paths inside the container."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from fleet.contracts import convert_score, encode_score
from fleet.contracts.files import MAX_FILE_BYTES
from fleet.errors import ContractError

pytestmark = pytest.mark.timeout(30)


def score(*files: dict[str, Any], volumes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": "busybox", "files": list(files)}
    if volumes:
        container["volumes"] = volumes
    return {"type": "podman", "containers": [container]}


def test_files_round_trip_and_omit_the_default_mode() -> None:
    value = score(
        {"path": "/etc/app.conf", "content": "a=1"},
        {"path": "/etc/ca.pem", "config_map": {"name": "certs", "key": "ca.pem"}, "mode": 0o440},
        {"path": "/run/key", "secret": {"name": "tls", "key": "tls.key"}},
    )
    encoded = encode_score(convert_score(value))
    assert encoded.count(b'"mode"') == 1  # left out when not given
    assert convert_score(msgspec.json.decode(encoded)) == convert_score(value)


@pytest.mark.parametrize(
    ("file", "field"),
    [
        ({"path": "etc/x", "content": "a"}, "path"),
        ({"path": "/etc/../x", "content": "a"}, "path"),
        ({"path": "/proc/self/x", "content": "a"}, "path"),
        ({"path": "/sys", "content": "a"}, "path"),
        ({"path": "/dev/null", "content": "a"}, "path"),
        ({"path": "/", "content": "a"}, "path"),
        ({"path": "/etc/x", "content": "a", "mode": 0o1777}, "mode"),
        ({"path": "/etc/x"}, "content"),
        ({"path": "/etc/x", "content": "a", "secret": {"name": "s", "key": "k"}}, "secret"),
        ({"path": "/etc/x", "content": "a" * (MAX_FILE_BYTES + 1)}, "content"),
        ({"path": "/etc/x", "secret": {"name": "S_", "key": "k"}}, "name"),
        ({"path": "/etc/x", "config_map": {"name": "s", "key": "a/b"}}, "key"),
    ],
)
def test_a_bad_file_is_refused_naming_the_field(file: dict[str, Any], field: str) -> None:
    with pytest.raises(ContractError) as caught:
        convert_score(score(file))
    assert field in str(caught.value)
    assert "files[0]" in str(caught.value)


def test_paths_are_unique_outside_volumes_and_the_score_is_bounded() -> None:
    with pytest.raises(ContractError, match="two files"):
        convert_score(score({"path": "/a", "content": "1"}, {"path": "/a", "content": "2"}))
    with pytest.raises(ContractError, match="inside volume"):
        convert_score(
            score({"path": "/data/x", "content": "1"}, volumes=[{"name": "d", "path": "/data"}])
        )
    big = "x" * MAX_FILE_BYTES
    with pytest.raises(ContractError, match="at most 32768"):
        convert_score(score(*({"path": f"/f{i}", "content": big} for i in range(3))))
