"""Name ownership without actors: the earliest-created owns a name, the next one inherits."""

from __future__ import annotations

from fleet.actors.operator.ownership import Ownership, Upserted
from fleet.actors.operator.spec import SpecReading, read_spec
from fleet.runtime.kube.client import KubeObject

from .fakes import obj, spec_json

EARLY, LATE = "2024-01-01T00:00:00Z", "2024-06-01T00:00:00Z"


def read(o: KubeObject) -> SpecReading:
    return read_spec(name=o.name, spec_json=o.spec)


def upsert(
    owners: Ownership, namespace: str, *, created: str, spec: bytes | None = None
) -> Upserted:
    o = obj("web", namespace, created=created, spec=spec)
    return owners.upsert(o, read(o))


def test_the_first_of_a_name_owns_it_and_a_later_one_conflicts() -> None:
    owners = Ownership()
    first = upsert(owners, "team-a", created=EARLY)
    assert first.created
    assert first.owner == ("team-a", "web")
    assert first.notices == ((first.record, None),)
    second = upsert(owners, "team-b", created=LATE)
    assert second.owner == ("team-a", "web")
    assert second.notices == ((second.record, "team-a/web"),)
    assert first.record.name is not None
    assert owners.owner(first.record.name) is first.record


def test_before_activation_an_older_resource_listed_later_takes_the_name() -> None:
    owners = Ownership()
    younger = upsert(owners, "team-b", created=LATE).record
    older = upsert(owners, "team-a", created=EARLY)
    assert older.owner == ("team-a", "web")
    assert (younger, "team-a/web") in older.notices  # told it lost the name


def test_an_active_owner_keeps_its_name_against_an_older_newcomer() -> None:
    owners = Ownership()
    owner = upsert(owners, "team-b", created=LATE).record
    owner.active = True
    older = upsert(owners, "team-a", created=EARLY)
    assert older.owner == ("team-b", "web")
    assert older.notices == ((older.record, "team-b/web"),)


def test_removing_the_owner_passes_the_name_to_the_oldest_rival() -> None:
    owners = Ownership()
    upsert(owners, "team-a", created=EARLY)
    third = upsert(owners, "team-c", created="2024-09-01T00:00:00Z").record
    second = upsert(owners, "team-b", created=LATE).record
    removed = owners.remove(("team-a", "web"))
    assert removed is not None
    assert removed.owned
    assert removed.heir is second
    assert removed.notices == ((second, None), (third, "team-b/web"))
    assert owners.remove(("team-a", "web")) is None  # gone already
    rival = owners.remove(("team-c", "web"))
    assert rival is not None
    assert not rival.owned
    assert rival.notices == ()


def test_a_name_that_is_not_a_dns_label_claims_nothing_and_an_invalid_spec_still_does() -> None:
    owners = Ownership()
    bad_name = obj("Web_1", "ns")
    upserted = owners.upsert(bad_name, read(bad_name))
    assert upserted.owner is None
    assert upserted.record.error is not None
    invalid = obj("web", "ns", spec=b'{"selector":{}}')  # no score: invalid, name claimed
    upserted = owners.upsert(invalid, read(invalid))
    assert upserted.record.spec is None
    assert upserted.owner == ("ns", "web")
    assert "score" in (upserted.record.error or "")


def test_selector_change_is_reported_and_last_owner_leaving_leaves_no_heir() -> None:
    owners = Ownership()
    upsert(owners, "ns", created=EARLY)
    same = upsert(owners, "ns", created=EARLY)
    assert not same.created
    assert not same.selector_changed
    changed = upsert(
        owners, "ns", created=EARLY,
        spec=spec_json(b'{"matchLabels":{"a":"b"}}'),
    )  # fmt: skip
    assert changed.selector_changed
    removed = owners.remove(("ns", "web"))
    assert removed is not None
    assert removed.owned
    assert removed.heir is None
    assert len(owners) == 0
