"""The enrollment side asks the write fence too: a deposed leader neither rewrites
``revocations.json`` nor pushes the account JWT (which would un-revoke a key revoked by
the new leader), whatever its connection or worker is still doing."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

import pytest

from fleet.errors import Fenced
from fleet.runtime.aiokit.loop import EventLoopThread
from fleet.runtime.nats import subjects
from fleet.runtime.nats.claims import new_seed, public_key
from fleet.runtime.nats.fenced import FencedTransport
from fleet.runtime.nats.identity import Authority
from fleet.runtime.nats.signer import DeviceSigner
from fleet.runtime.nats.transport import ForwardingTransport, Message, Transport

from .fakes import Switch


class Recorder(ForwardingTransport):
    """Records requests; answers each with an empty reply (no server)."""

    def __init__(self) -> None:
        super().__init__(inner=None)  # type: ignore[arg-type]  # never forwarded to
        self.asked: list[str] = []

    async def request(
        self,
        subject: str,
        payload: bytes = b"",
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float,
    ) -> Message:
        self.asked.append(subject)
        return Message(subject=subject, data=b'{"data":{"code":200}}', reply="")


def test_an_account_push_is_a_fenced_write_and_reads_are_not() -> None:
    fence, inner = Switch(), Recorder()
    system: Transport = FencedTransport(inner, fence, also=frozenset({subjects.CLAIMS_UPDATE}))
    fence.open = False
    with pytest.raises(Fenced, match=r"\$SYS\.REQ\.CLAIMS\.UPDATE"):
        asyncio.run(system.request(subjects.CLAIMS_UPDATE, b"jwt", timeout=1))
    assert inner.asked == []
    asyncio.run(system.request("$SYS.REQ.SERVER.PING", timeout=1))  # not a write
    assert inner.asked == ["$SYS.REQ.SERVER.PING"]


def test_a_deposed_signer_neither_writes_revocations_nor_pushes(tmp_path: Path) -> None:
    fence, inner = Switch(), Recorder()
    loop = EventLoopThread(name="test-loop")
    loop.start()
    try:
        signer = DeviceSigner(
            authority=Authority.create(), directory=tmp_path, system=inner, loop=loop,
            fence=fence,
        )  # fmt: skip
        first, second = (public_key(new_seed("user"), "user") for _ in range(2))
        signer.revoke(first)  # leading: written down and pushed
        kept = (tmp_path / "revocations.json").read_bytes()
        assert len(inner.asked) == 1
        fence.open = False  # the Lease is lost
        with pytest.raises(Fenced):
            signer.revoke(second)
        with pytest.raises(Fenced):
            signer.revoke_quietly([second])
        with pytest.raises(Fenced):
            signer.push()
        assert (tmp_path / "revocations.json").read_bytes() == kept
        assert len(inner.asked) == 1
        assert not signer.revoked(second)
    finally:
        loop.stop()
