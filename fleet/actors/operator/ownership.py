"""Which Deployment resource owns each deployment name.

Why it exists: a desired-state key carries only the name (``<device>.<name>``), yet two
namespaces may each hold a Deployment of that name. One of them owns it: the
earliest-created (creationTimestamp, then namespace, then name). A later one gets
``NameConflict`` and writes nothing; when the owner goes, the next-oldest takes over.
Before the initial sync nobody is active yet, so an older resource listed later still
takes the name from a younger one; once a record is active (it holds the name's entries),
only its removal passes the name on.

:class:`Ownership` keeps every Deployment record (its object, validated spec, name, and
whether it is active) and the owner of each name, and says, for each change, which
records must be told their conflict anew (``notices``). Plain and synchronous: no I/O, no
actors (the fleet index holds the actors and tells them).

What it must never do: let two records be active for one name at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from fleet.contracts import DeploymentName
from fleet.runtime.kube.client import KubeObject

from .selectors import LabelSelector
from .spec import DeploymentSpec, SpecReading

DeploymentKey = tuple[str, str]  # (namespace, name)


def age(obj: KubeObject) -> tuple[str, str, str]:
    """Sort key: the earliest-created first (RFC 3339 timestamps sort as text)."""
    return (obj.creation_timestamp, obj.namespace or "", obj.name)


def key_of(obj: KubeObject) -> DeploymentKey:
    return (obj.namespace or "", obj.name)


class Record:
    """One Deployment resource as last seen."""

    __slots__ = ("active", "error", "key", "name", "obj", "spec")

    def __init__(self, key: DeploymentKey, obj: KubeObject) -> None:
        self.key = key
        self.obj = obj
        self.spec: DeploymentSpec | None = None
        self.error: str | None = None
        self.name: DeploymentName | None = None
        self.active = False  # owns its name and was handed its entries


Notice = tuple[Record, str | None]  # (record, "namespace/name" it conflicts with, or None)


class Upserted(NamedTuple):
    record: Record
    created: bool
    owner: DeploymentKey | None  # of the record's name
    selector_changed: bool
    notices: tuple[Notice, ...]  # the record itself first


class Removed(NamedTuple):
    record: Record
    owned: bool  # it owned its name
    heir: Record | None  # who owns the name now
    notices: tuple[Notice, ...]


class Ownership:
    def __init__(self) -> None:
        self._records: dict[DeploymentKey, Record] = {}
        self._owners: dict[DeploymentName, DeploymentKey] = {}

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[Record]:
        return iter(list(self._records.values()))

    def get(self, key: DeploymentKey) -> Record | None:
        return self._records.get(key)

    def owner(self, name: DeploymentName) -> Record | None:
        key = self._owners.get(name)
        return self._records.get(key) if key is not None else None

    def active_owner(self, name: DeploymentName) -> Record | None:
        record = self.owner(name)
        return record if record is not None and record.active else None

    def selectors(self) -> dict[DeploymentKey, LabelSelector]:
        """The selector of each active record with a valid spec (what targets devices)."""
        return {
            r.key: r.spec.selector
            for r in self._records.values()
            if r.active and r.spec is not None
        }

    def owners(self) -> list[Record]:
        """Every name's owner."""
        return [self._records[key] for key in self._owners.values()]

    def upsert(self, obj: KubeObject, reading: SpecReading) -> Upserted:
        key = key_of(obj)
        record = self._records.get(key)
        created = record is None
        if record is None:
            record = self._records[key] = Record(key, obj)
        old_selector = record.spec.selector if record.spec is not None else None
        record.obj = obj
        record.spec, record.error, record.name = reading.spec, reading.error, reading.name
        notices: list[Notice] = []
        owner = self._claim(record, notices)
        notices.insert(0, (record, None if owner is None or owner == key else "/".join(owner)))
        return Upserted(
            record=record,
            created=created,
            owner=owner,
            selector_changed=record.spec is not None and record.spec.selector != old_selector,
            notices=tuple(notices),
        )

    def _claim(self, record: Record, notices: list[Notice]) -> DeploymentKey | None:
        if record.name is None:
            return None
        owner = self._owners.setdefault(record.name, record.key)
        if owner != record.key:
            other = self._records.get(owner)
            if other is not None and not other.active and age(record.obj) < age(other.obj):
                # Not yet active (initial sync pending): the earlier-created one wins.
                self._owners[record.name] = record.key
                notices.append((other, "/".join(record.key)))
                return record.key
        return owner

    def remove(self, key: DeploymentKey) -> Removed | None:
        record = self._records.pop(key, None)
        if record is None:
            return None
        name = record.name
        if name is None or self._owners.get(name) != key:
            return Removed(record=record, owned=False, heir=None, notices=())
        del self._owners[name]
        rivals = sorted(
            (r for r in self._records.values() if r.name == name), key=lambda r: age(r.obj)
        )
        if not rivals:
            return Removed(record=record, owned=True, heir=None, notices=())
        heir = rivals[0]
        self._owners[name] = heir.key
        conflict = "/".join(heir.key)
        notices: list[Notice] = [(heir, None), *((rival, conflict) for rival in rivals[1:])]
        return Removed(record=record, owned=True, heir=heir, notices=tuple(notices))
