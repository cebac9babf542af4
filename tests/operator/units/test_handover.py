"""What waits for its keeper: strays (before a device actor exists) and unclaimed desired
entries (before a name's owner is active, or after it retired)."""

from __future__ import annotations

from fleet.actors.operator.messages import Beat, DesiredEntry
from fleet.actors.operator.strays import Strays
from fleet.actors.operator.unclaimed import Unclaimed
from fleet.contracts import DeploymentName, DeviceId, Phase

from .fakes import at, report

D1, D2 = DeviceId("d1"), DeviceId("d2")
WEB, API = DeploymentName("web"), DeploymentName("api")


def beat(device: DeviceId, seconds: float, *, deleted: bool = False) -> Beat:
    return Beat(device=device, at=seconds, when=None if deleted else at(seconds), revision=1)


def test_a_new_actor_takes_everything_that_waited_and_nothing_stays() -> None:
    strays = Strays()
    strays.beat(beat(D1, 1.0))
    strays.beat(beat(D1, 2.0))
    strays.report(report("d1", "web"))
    strays.report(report("d1", "api"))
    strays.report(report("d1", "api", phase=None))  # deleted again
    assert strays.beats == 1
    last, reports = strays.take(D1)
    assert last is not None
    assert last.at == 2.0
    assert [r.deployment for r in reports] == ["web"]
    assert D1 not in strays
    assert strays.take(D1) == (None, ())


def test_a_deleted_heartbeat_and_a_forgotten_id_leave_nothing() -> None:
    strays = Strays()
    strays.beat(beat(D1, 1.0))
    strays.beat(beat(D1, 0.0, deleted=True))
    strays.report(report("d2", "web", Phase.FAILED))
    assert strays.beats == 0
    strays.drop(D2)
    assert D2 not in strays


def entry(device: DeviceId, name: DeploymentName, value: bytes | None = b"v") -> DesiredEntry:
    return DesiredEntry(device=device, deployment=name, revision=3, value=value)


def test_unclaimed_entries_go_to_one_keeper_or_are_forgotten_once_deleted() -> None:
    unclaimed = Unclaimed()
    unclaimed.add([entry(D1, WEB), entry(D2, WEB), entry(D1, API)])
    unclaimed.add([entry(D2, WEB, None)])  # deleted meanwhile
    assert len(unclaimed) == 2
    assert sorted(unclaimed.names()) == ["api", "web"]
    assert unclaimed.take(WEB) == (entry(D1, WEB),)
    assert unclaimed.take(WEB) == ()  # handed over once
    assert unclaimed.live(API) == [entry(D1, API)]
    unclaimed.forget(API, [D1])
    assert unclaimed.names() == []


def test_orphans_are_deleted_through_the_writer_and_forgotten_once_gone() -> None:
    from fleet.actors.operator.messages import OrphansDeleted
    from fleet.actors.operator.writes import DesiredWriter

    from .fakes import Replies, Writer

    writer, replies = Writer(auto=True), Replies()
    unclaimed = Unclaimed(DesiredWriter(writer=writer, replies=replies))
    unclaimed.add([entry(D1, WEB), entry(D2, WEB)])
    unclaimed.delete_orphans(WEB)
    assert writer.keys("delete") == ["d1.web", "d2.web"]
    (done,) = replies.take()
    assert isinstance(done, OrphansDeleted)
    unclaimed.deleted(done)
    assert unclaimed.names() == []


def test_a_retiring_owner_holds_its_name_until_its_entries_are_back() -> None:
    unclaimed = Unclaimed()
    unclaimed.retiring(WEB, "old owner")
    assert unclaimed.awaiting(WEB)
    assert unclaimed.retiring_refs() == ["old owner"]
    unclaimed.returned(WEB, [entry(D1, WEB)])
    assert not unclaimed.awaiting(WEB)
    assert unclaimed.take(WEB) == (entry(D1, WEB),)
