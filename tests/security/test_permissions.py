"""The permission lists themselves: no subject device A may use is one device B uses.

Pure: the subjects B's agent sends and listens on, for pairs of ids chosen to confuse
a prefix or a token match (``a`` and ``a_b``, ``dev1`` and ``dev10``, case), are
matched against A's allow lists with NATS's own rule (``*`` one token, ``>`` the rest,
wildcards only as whole tokens). The one pattern that does not name the device (the
delete of a desired-state consumer by name) is listed, and explained in
docs/security.md.
"""

from __future__ import annotations

import pytest

from fleet.contracts import DeviceId
from fleet.errors import BusError, InvalidName
from fleet.runtime.nats import subjects
from fleet.runtime.nats.permissions import (
    device_permissions,
    fleetctl_permissions,
    operator_permissions,
)

PAIRS = [("a", "a_b"), ("a_b", "a"), ("a", "a-b"), ("dev1", "dev10"), ("A", "a"), ("x", "x_x")]
NOT_NAMING_THE_DEVICE = {"$JS.API.CONSUMER.DELETE.KV_desired-state.*"}


def matches(pattern: str, subject: str) -> bool:
    """NATS's rule: ``*`` is one token, ``>`` one or more; anything else is literal."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)


def what_a_device_uses(device: str) -> tuple[list[str], list[str]]:
    """(published, subscribed): the concrete subjects ``device``'s agent uses."""
    ds = "desired-state"
    published = [
        f"$JS.API.DIRECT.GET.KV_{ds}.$KV.{ds}.{device}.web",
        f"$JS.API.DIRECT.GET.KV_{ds}.$KV.{ds}.{device}.*",
        f"$JS.API.CONSUMER.CREATE.KV_{ds}.feed_{device}_0a1b2c3d.$KV.{ds}.{device}.*",
        f"$JS.API.CONSUMER.DELETE.KV_{ds}.feed_{device}_0a1b2c3d",
        f"$KV.device-info.info.{device}",
        f"$KV.device-state.state.{device}.web",
        f"$KV.device-heartbeat.heartbeat.{device}",
    ]
    subscribed = [
        f"$KV.{ds}.{device}.web",
        f"$KV.device-heartbeat.heartbeat.{device}",
        f"_INBOX_device_{device}.Xq3h7FzWpk2sjt8Uv0LmNa",
        f"fleet.device.{device}.logs",  # the requests made of it (logs, describe)
        f"fleet.device.{device}.describe",
    ]
    return published, subscribed


@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_no_subject_of_one_device_is_allowed_to_another(a: str, b: str) -> None:
    allowed = device_permissions(DeviceId(a))
    published, subscribed = what_a_device_uses(b)
    leaks = [
        (pattern, subject)
        for pattern in allowed.pub.allow
        if pattern not in NOT_NAMING_THE_DEVICE
        for subject in published
        if matches(pattern, subject)
    ]
    leaks += [(p, s) for p in allowed.sub.allow for s in subscribed if matches(p, s)]
    assert leaks == []


@pytest.mark.parametrize("device", ["a", "a_b", "dev-1", "A"])
def test_a_device_is_allowed_what_its_agent_uses(device: str) -> None:
    allowed = device_permissions(DeviceId(device))
    published, subscribed = what_a_device_uses(device)
    assert [s for s in published if not any(matches(p, s) for p in allowed.pub.allow)] == []
    assert [s for s in subscribed if not any(matches(p, s) for p in allowed.sub.allow)] == []
    assert allowed.inbox_prefix == f"_INBOX_device_{device}"


def test_every_allowed_subject_names_the_device_as_a_whole_token() -> None:
    allowed = device_permissions(DeviceId("dev-7"))
    for pattern in (*allowed.pub.allow, *allowed.sub.allow):
        if pattern in NOT_NAMING_THE_DEVICE:
            continue
        tokens = pattern.split(".")
        assert "dev-7" in tokens or tokens[0] == "_INBOX_device_dev-7", pattern
        assert ">" not in tokens[:-1]
    assert not allowed.pub.deny
    assert not allowed.sub.deny


@pytest.mark.parametrize("bad", ["", ".", "a.b", "*", ">", "a*", "a b", "-a", "a\n", "a>"])
def test_an_id_that_is_not_one_subject_token_gets_no_permissions(bad: str) -> None:
    with pytest.raises(InvalidName):
        device_permissions(bad)  # type: ignore[arg-type]  # what a caller might pass


def test_no_device_id_can_name_a_services_inboxes() -> None:
    """``operator`` as a device id gets ``_INBOX_device_operator``, not the operator's."""
    services = {operator_permissions().inbox_prefix, fleetctl_permissions().inbox_prefix}
    assert device_permissions(DeviceId("operator")).inbox_prefix not in services
    assert device_permissions(DeviceId("fleetctl")).inbox_prefix not in services
    with pytest.raises(BusError):
        subjects.inbox_prefix("device_x", device=False)


def test_fleetctl_may_ask_devices_but_not_hear_their_requests() -> None:
    allowed = fleetctl_permissions()
    for kind in ("logs", "describe"):
        subject = f"fleet.device.dev1.{kind}"
        assert any(matches(p, subject) for p in allowed.pub.allow)
        assert not any(matches(p, subject) for p in allowed.sub.allow)
    assert not any(matches(p, "fleet.device.dev1.shell") for p in allowed.pub.allow)


def test_fleetctl_may_write_nothing() -> None:
    allowed = fleetctl_permissions()
    writes = [
        "$KV.desired-state.dev1.web",
        "$KV.device-state.state.dev1.web",
        "$JS.API.STREAM.PURGE.KV_desired-state",
        "$JS.API.STREAM.DELETE.KV_device-info",
        "$JS.API.STREAM.UPDATE.KV_device-state",
        "$JS.API.STREAM.CREATE.KV_device-state",
        "$JS.API.STREAM.MSG.DELETE.KV_desired-state",
    ]
    assert [(p, w) for p in allowed.pub.allow for w in writes if matches(p, w)] == []
