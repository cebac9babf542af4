"""Which Device resources give the key Secrets are sealed to: only one bound as the
operator binds it (its name is its ``spec.deviceId``'s resource name). A Device made or
edited to carry another device's id neither gives that device a key nor takes its key
away."""

from __future__ import annotations

from collections.abc import Mapping

from fleet.actors.operator.enrollment.service import _device_event, _devices_listed
from fleet.actors.operator.mirror import device_resource_name
from fleet.runtime.kube.client import KubeObject
from fleet.runtime.nats.claims import new_seed, public_key


class Keys:
    def __init__(self) -> None:
        self.keys: dict[str, str] = {}

    def set_keys(self, keys: Mapping[str, str], *, listed: bool = False) -> None:
        if listed:
            self.keys = {}
        for device, key in keys.items():
            if key:
                self.keys[device] = key
            else:
                self.keys.pop(device, None)


class Desk:
    def tell(self, message: object) -> None:
        pass


def device(name: str, device_id: str, key: str) -> KubeObject:
    spec = f'{{"deviceId": "{device_id}", "publicKey": "{key}"}}'.encode()
    return KubeObject(
        namespace=None, name=name, uid="u", generation=1, resource_version="1",
        creation_timestamp="", deletion_timestamp=None, finalizers=(), spec=spec,
    )  # fmt: skip


def test_only_a_device_bound_under_its_own_name_gives_a_key() -> None:
    real, forged = (public_key(new_seed("user"), "user") for _ in range(2))
    keys, desk = Keys(), Desk()
    listed = _devices_listed(desk, None, keys)  # type: ignore[arg-type]
    odd = device_resource_name("Odd_Id")  # an id that is no resource name: named as bound
    listed(None, [device("victim", "victim", real), device("evil", "victim", forged),
                  device(odd, "Odd_Id", real), device("nokey", "", real)])  # fmt: skip
    assert keys.keys == {"victim": real, "Odd_Id": real}
    del keys.keys["Odd_Id"]
    event = _device_event(desk, None, keys)  # type: ignore[arg-type]
    event("MODIFIED", device("evil", "victim", forged))  # a forged Device appears
    assert keys.keys == {"victim": real}
    event("DELETED", device("evil", "victim", forged))  # and goes: the real key stays
    assert keys.keys == {"victim": real}
    event("DELETED", device("victim", "victim", real))
    assert keys.keys == {}
