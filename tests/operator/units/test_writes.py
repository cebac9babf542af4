"""Desired writes through a fake writer port: keys from the contracts, chunks, partial
failures, re-reads, orphan deletes; each outcome one message."""

from __future__ import annotations

import concurrent.futures

from fleet.actors.operator import messages as m
from fleet.actors.operator.writes import DesiredWriter
from fleet.contracts import BUCKET_DESIRED_STATE, DeploymentName, DeviceId
from fleet.errors import TemporaryError
from fleet.runtime.nats.kv import KvEntry

from .fakes import Replies, Writer

WEB = DeploymentName("web")
DEVICES = [DeviceId(f"d{i}") for i in range(5)]


def test_puts_go_in_chunks_with_contract_keys_and_each_key_its_own_result() -> None:
    writer, replies = Writer(), Replies()
    DesiredWriter(writer=writer, replies=replies, chunk=2).put(WEB, DEVICES, b"v")
    assert [len(c.args) for c in writer.calls] == [2, 2, 1]
    assert writer.keys("put") == [f"d{i}.web" for i in range(5)]
    assert {c.bucket for c in writer.calls} == {BUCKET_DESIRED_STATE}
    writer.calls[0].future.set_result([7, TemporaryError("no ack")])
    writer.calls[1].future.set_exception(TimeoutError("gone"))
    writer.calls[2].future.set_result([9])
    first, second, third = replies.take()
    assert isinstance(first, m.WritesDone)
    assert first.puts == ((DEVICES[0], b"v", 7), (DEVICES[1], b"v", None))
    assert first.error is not None
    assert "no ack" in first.error
    assert isinstance(second, m.WritesDone)
    assert second.puts == ((DEVICES[2], b"v", None), (DEVICES[3], b"v", None))
    assert isinstance(third, m.WritesDone)
    assert third.error is None


def test_deletes_report_each_marker_revision() -> None:
    writer, replies = Writer(auto=True), Replies()
    DesiredWriter(writer=writer, replies=replies).delete(WEB, DEVICES[:2])
    assert writer.keys("delete") == ["d0.web", "d1.web"]
    (done,) = replies.take()
    assert isinstance(done, m.WritesDone)
    assert done.deletes == ((DEVICES[0], 100), (DEVICES[1], 101))


def test_re_reads_tell_apart_an_entry_none_and_a_failure() -> None:
    writer, replies = Writer(), Replies()
    DesiredWriter(writer=writer, replies=replies).read(WEB, DEVICES[:3])
    entry = KvEntry(bucket=BUCKET_DESIRED_STATE, key="d0.web", value=b"x", revision=42)
    writer.calls[0].future.set_result([entry, None, TemporaryError("down")])
    (verified,) = replies.take()
    assert isinstance(verified, m.Verified)
    assert verified.entries == (
        (DEVICES[0], 42, b"x"),
        (DEVICES[1], 0, None),
        (DEVICES[2], -1, None),
    )
    assert verified.error is not None


def test_orphans_deleted_names_only_those_gone() -> None:
    writer, replies = Writer(), Replies()
    entries = [
        m.DesiredEntry(device=d, deployment=DeploymentName("gone"), revision=1, value=b"v")
        for d in DEVICES[:2]
    ]
    DesiredWriter(writer=writer, replies=replies).delete_orphans(DeploymentName("gone"), entries)
    assert writer.keys("delete") == ["d0.gone", "d1.gone"]
    writer.calls[0].future.set_result([5, TemporaryError("x")])
    (done,) = replies.take()
    assert isinstance(done, m.OrphansDeleted)
    assert done.devices == (DEVICES[0],)
    assert done.failed == 1
    failing = Writer()
    DesiredWriter(writer=failing, replies=replies).delete_orphans(DeploymentName("gone"), entries)
    failing.calls[0].future.set_exception(concurrent.futures.CancelledError())
    (failed,) = replies.take()
    assert isinstance(failed, m.OrphansDeleted)
    assert failed.failed == 2
