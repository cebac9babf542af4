"""A volume's ``host_path``: exactly one of ``name`` and ``host_path``, absolute,
normalised, outside the deny list; privileged; a score with named volumes only encodes
as before."""

from __future__ import annotations

import re
from typing import Any

import pytest

from fleet.contracts import convert_score, encode_score
from fleet.errors import ContractError

pytestmark = pytest.mark.timeout(30)


def score(*volumes: dict[str, Any]) -> dict[str, Any]:
    container = {"name": "app", "image": "busybox", "volumes": list(volumes)}
    return {"type": "podman", "containers": [container]}


def test_a_host_path_is_privileged_and_a_named_volume_encodes_as_before() -> None:
    named = score({"name": "data", "path": "/data"})
    assert encode_score(convert_score(named)) == (
        b'{"type":"podman","containers":[{"name":"app","image":"busybox",'
        b'"volumes":[{"name":"data","path":"/data"}]}]}'
    )
    host = convert_score(score({"host_path": "/srv/cfg", "path": "/cfg", "read_only": True}))
    container = host.containers[0]  # type: ignore[union-attr]
    assert container.privileges() == ["volumes[0].host_path"]
    assert convert_score(named).containers[0].privileges() == []  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("volume", "field", "message"),
    [
        ({"path": "/x"}, "name", "exactly one of name, host_path"),
        ({"name": "v", "host_path": "/srv", "path": "/x"}, "host_path", "exactly one of"),
        ({"host_path": "srv", "path": "/x"}, "host_path", "an absolute path"),
        ({"host_path": "/srv/../etc", "path": "/x"}, "host_path", "without '..'"),
        ({"host_path": "/", "path": "/x"}, "host_path", "the device's root"),
        ({"host_path": "/etc", "path": "/x"}, "host_path", "is under /etc"),
        ({"host_path": "/proc/1/root", "path": "/x"}, "host_path", "is under /proc"),
        ({"host_path": "/var/lib/containers/storage", "path": "/x"}, "host_path",
         "under /var/lib/containers"),
        ({"host_path": "/var", "path": "/x"}, "host_path", "holds /var/run"),
        ({"host_path": "/var/lib", "path": "/x"}, "host_path", "holds /var/lib/containers"),
        ({"host_path": "/srv/", "path": "/x"}, "host_path", "normalised"),
        ({"host_path": "//etc", "path": "/x"}, "host_path", "normalised"),
        ({"host_path": "/srv/./x", "path": "/x"}, "host_path", "normalised"),
        ({"host_path": "/srv", "path": "/x", "remove_with_deployment": True},
         "remove_with_deployment", "never removed with the deployment"),
    ],
)  # fmt: skip
def test_a_bad_host_path_is_refused_naming_the_field(
    volume: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ContractError, match=re.escape(message)) as caught:
        convert_score(score(volume))
    assert caught.value.field == f"containers[0].volumes[0].{field}"


def test_host_paths_and_named_volumes_share_a_container() -> None:
    both = score({"host_path": "/srv/a", "path": "/a"}, {"name": "b", "path": "/b"},
                 {"host_path": "/srv/a", "path": "/c", "read_only": True})  # fmt: skip
    assert len(convert_score(both).containers[0].volumes or ()) == 3  # type: ignore[union-attr]
    with pytest.raises(ContractError, match="two volumes are mounted at"):
        convert_score(score({"host_path": "/srv/a", "path": "/a"}, {"name": "b", "path": "/a"}))
