"""The desired book: what to write, what a completed write means, and foreign-write repair."""

from __future__ import annotations

from fleet.actors.operator.desired import DesiredBook
from fleet.actors.operator.messages import DesiredEntry
from fleet.contracts import DeploymentName, DeviceId

D1, D2, D3 = DeviceId("d1"), DeviceId("d2"), DeviceId("d3")
WEB = DeploymentName("web")
V1, V2 = b'{"v":1}', b'{"v":2}'


def entry(device: DeviceId, revision: int, value: bytes | None) -> DesiredEntry:
    return DesiredEntry(device=device, deployment=WEB, revision=revision, value=value)


def test_writes_only_what_differs_and_deletes_what_is_not_targeted() -> None:
    book = DesiredBook()
    book.observe(entry(D1, 5, V1))  # right already
    book.observe(entry(D2, 6, V2))  # other content
    book.observe(entry(D3, 7, V1))  # not targeted
    book.touch([D1, D2, D3, DeviceId("d4")])
    plan = book.plan(targets={D1, D2, DeviceId("d4")}, desired=V1, deleting=False)
    assert sorted(plan.puts) == [D2, "d4"]
    assert plan.deletes == [D3]
    assert book.writing == 3
    assert book.plan(targets={D1, D2}, desired=V1, deleting=False) == ([], [])  # not twice
    assert book.current(D1, V1) == 5
    assert book.current(D2, V1) is None


def test_completed_writes_update_the_book_and_failures_are_planned_again() -> None:
    book = DesiredBook()
    book.touch([D1, D2])
    book.plan(targets={D1, D2}, desired=V1, deleting=False)
    assert book.written([(D1, V1, 11), (D2, V1, None)], [])  # one failed
    assert book.current(D1, V1) == 11
    assert book.writing == 0
    assert book.plan(targets={D1, D2}, desired=V1, deleting=False).puts == [D2]
    assert not book.written([(D2, V1, 12)], [])
    assert len(book) == 2


def test_deleting_deletes_everything_and_a_delete_leaves_a_tombstone() -> None:
    book = DesiredBook()
    book.observe(entry(D1, 5, V1))
    book.touch_all()
    assert book.plan(targets={D1}, desired=V1, deleting=True).deletes == [D1]
    assert not book.written([], [(D1, 9)])
    assert len(book) == 0
    assert book.suspect([(D1, 9)]) == []  # its own delete marker: not foreign
    assert book.suspect([(D1, 10)]) == [D1]  # newer than anything it wrote: re-read


def test_an_older_revision_never_replaces_a_newer_one() -> None:
    book = DesiredBook()
    assert book.observe(entry(D1, 9, V2))
    assert not book.observe(entry(D1, 5, V1))
    assert not book.observe(entry(D1, 8, None))  # an older delete
    assert book.current(D1, V2) == 9


def test_a_newer_reported_revision_is_re_read_and_repaired() -> None:
    book = DesiredBook()
    book.observe(entry(D1, 5, V1))
    book.plan(targets={D1}, desired=V1, deleting=False)  # clears dirty
    assert book.suspect([(D1, 5), (D1, 4)]) == []
    assert book.suspect([(D1, 8)]) == [D1]
    assert book.suspect([(D1, 9)]) == []  # a re-read is in flight: checked after it
    assert book.plan(targets={D1}, desired=V1, deleting=False).puts == []  # not while verifying
    changed = book.verified([(D1, 8, b'{"evil":1}')])
    assert changed == [D1]
    assert book.current(D1, V1) is None
    assert book.settled([D1]) == [D1]  # revision 9 came meanwhile: newer than 8
    assert book.verified([(D1, 9, b'{"evil":2}')]) == [D1]
    assert book.plan(targets={D1}, desired=V1, deleting=False).puts == [D1]  # restored


def test_an_entry_deleted_by_another_writer_is_written_again() -> None:
    book = DesiredBook()
    book.observe(entry(D1, 5, V1))
    book.plan(targets={D1}, desired=V1, deleting=False)
    assert book.suspect([(D1, 6)]) == [D1]  # the device reports the delete marker
    assert book.verified([(D1, 0, None)]) == [D1]
    assert book.suspect([(D1, 6)]) == []  # known now (a tombstone at the reported revision)
    assert book.plan(targets={D1}, desired=V1, deleting=False).puts == [D1]


def test_a_report_during_a_write_is_checked_when_it_completes_and_failed_reads_retry() -> None:
    book = DesiredBook()
    book.touch([D1, D2])
    book.plan(targets={D1, D2}, desired=V1, deleting=False)
    assert book.suspect([(D1, 50)]) == []  # in flight
    book.written([(D1, V1, 11), (D2, V1, 12)], [])
    assert book.settled([D1, D2]) == [D1]
    assert book.verified([(D1, -1, None)]) == []  # could not read: a suspect
    assert book.suspects
    assert book.retry_suspects() == [D1]
    assert not book.suspects


def test_release_hands_over_every_live_entry() -> None:
    book = DesiredBook()
    book.observe(entry(D1, 5, V1))
    book.observe(entry(D2, 6, V1))
    book.observe(entry(D2, 7, None))
    assert book.release(WEB) == (entry(D1, 5, V1),)
