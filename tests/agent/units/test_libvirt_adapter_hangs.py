"""The libvirt adapter when libvirtd hangs: a stuck call does not block the ones after it,
close() returns, and the event stream neither waits for good on connecting nor leaks a
connection whose registration failed (libvirt replaced by fakes: no libvirtd needed)."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import pytest

libvirt = pytest.importorskip("libvirt")

from fleet.runtime.libvirt import events  # noqa: E402
from fleet.runtime.libvirt.adapter import LibvirtEventStream, LibvirtMachines  # noqa: E402
from fleet.runtime.libvirt.port import LibvirtUnavailable  # noqa: E402
from tests.agent.conftest import wait_for  # noqa: E402

pytestmark = pytest.mark.timeout(60)


class FakeConn:
    def __init__(self) -> None:
        self.closed = threading.Event()
        self.refuse_register = False

    def isAlive(self) -> bool:
        return not self.closed.is_set()

    def close(self) -> int:
        self.closed.set()
        return 0

    def setKeepAlive(self, interval: int, count: int) -> int:
        return 0

    def registerCloseCallback(self, cb: Any, opaque: Any) -> int:
        return 0

    def domainEventRegisterAny(self, *args: Any) -> int:
        if self.refuse_register:
            raise libvirt.libvirtError("no events for you")
        return 1


@pytest.fixture
def conns(monkeypatch: pytest.MonkeyPatch) -> list[FakeConn]:
    made: list[FakeConn] = []

    def open_(uri: str) -> FakeConn:
        made.append(FakeConn())
        return made[-1]

    monkeypatch.setattr(events, "ensure_running", lambda: None)
    monkeypatch.setattr(libvirt, "open", open_)
    return made


def test_a_stuck_call_does_not_block_the_next_and_close_returns(conns: list[FakeConn]) -> None:
    machines = LibvirtMachines(uri="qemu:///fake", timeout=0.5)
    release = threading.Event()
    with pytest.raises(LibvirtUnavailable, match="did not answer"):
        machines._call("stuck", lambda conn: release.wait(30))
    assert machines._call("next", lambda conn: 42) == 42  # a fresh worker, not queued
    closing = threading.Thread(target=machines.close, daemon=True)
    closing.start()
    closing.join(timeout=20)
    assert not closing.is_alive()
    release.set()


def test_close_does_not_wait_for_a_call_stuck_in_libvirt(conns: list[FakeConn]) -> None:
    machines = LibvirtMachines(uri="qemu:///fake", timeout=30)
    release, entered = threading.Event(), threading.Event()

    def stuck(conn: Any) -> None:
        entered.set()
        release.wait(30)

    def call() -> None:
        with contextlib.suppress(LibvirtUnavailable):  # what matters: close() returning
            machines._call("stuck", stuck)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    assert entered.wait(20)
    closing = threading.Thread(target=machines.close, daemon=True)
    closing.start()
    closing.join(timeout=20)
    assert not closing.is_alive(), "close() waited for the stuck call"
    release.set()
    caller.join(timeout=20)


def test_an_event_stream_whose_registration_fails_closes_its_connection(
    conns: list[FakeConn], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refusing(uri: str) -> FakeConn:
        conn = FakeConn()
        conn.refuse_register = True
        conns.append(conn)
        return conn

    monkeypatch.setattr(libvirt, "open", refusing)
    with pytest.raises(LibvirtUnavailable, match="cannot listen"):
        LibvirtEventStream(
            uri="qemu:///fake", device="pi", on_event=lambda e: None, on_error=lambda e: None
        )
    [conn] = conns
    assert conn.closed.is_set()


def test_an_event_stream_does_not_wait_for_good_on_connecting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()
    late: list[FakeConn] = []

    def hanging(uri: str) -> FakeConn:
        release.wait(30)
        late.append(FakeConn())
        return late[-1]

    monkeypatch.setattr(events, "ensure_running", lambda: None)
    monkeypatch.setattr(libvirt, "open", hanging)
    with pytest.raises(LibvirtUnavailable, match="did not answer"):
        LibvirtEventStream(
            uri="qemu:///fake", device="pi", on_event=lambda e: None, on_error=lambda e: None,
            timeout=0.5,
        )  # fmt: skip
    release.set()
    wait_for(
        lambda: late and late[0].closed.is_set(), what="the late connection closed"
    )  # the connection that answered late is not leaked
