"""Device labels follow Kubernetes label syntax, since selectors are matched on them."""

from __future__ import annotations

import pytest

from fleet.contracts import DeviceInfo, is_label_key, is_label_value
from fleet.errors import ContractError

from . import samples

GOOD_KEYS = [
    "site",
    "a",
    "Site_1.x-y",
    "a" * 63,
    "fleet.nationtech.io/tier",
    "example.com/a",
    "a/b",
    ("a" * 63 + ".") * 3 + "b" * 61 + "/name",  # prefix of exactly 253 characters
]
BAD_KEYS = [
    "",
    "a" * 64,
    "-site",
    "site-",
    ".site",
    "si te",
    "site!",
    "/site",
    "example.com/",
    "Example.com/site",
    "a/b/c",
    "a..b/site",
    "-a.com/site",
    ("a" * 63 + ".") * 3 + "b" * 62 + "/name",  # prefix of 254 characters
    "a" * 64 + ".com/site",  # a prefix label longer than 63
]
GOOD_VALUES = ["", "lab", "Lab_1.x-y", "a" * 63, "0"]
BAD_VALUES = ["a" * 64, "-lab", "lab-", "la b", "lab/1", "lab!", "_lab"]


@pytest.mark.parametrize("key", GOOD_KEYS)
def test_good_keys(key: str) -> None:
    assert is_label_key(key)


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys(key: str) -> None:
    assert not is_label_key(key)


@pytest.mark.parametrize("value", GOOD_VALUES)
def test_good_values(value: str) -> None:
    assert is_label_value(value)


@pytest.mark.parametrize("value", BAD_VALUES)
def test_bad_values(value: str) -> None:
    assert not is_label_value(value)


def test_device_info_refuses_bad_labels_naming_them() -> None:
    base = samples.info()
    with pytest.raises(ContractError, match="'si te'") as caught:
        DeviceInfo(
            device_id=base.device_id,
            labels={"si te": "x"},
            inventory=base.inventory,
            agent_version=base.agent_version,
            updated_at=base.updated_at,
        )
    assert caught.value.field == "labels"
    with pytest.raises(ContractError, match=r"'-x'.*'site'"):
        DeviceInfo(
            device_id=base.device_id,
            labels={"site": "-x"},
            inventory=base.inventory,
            agent_version=base.agent_version,
            updated_at=base.updated_at,
        )
