"""A delivery's revision and consumer sequence, read from its ``$JS.ACK`` subject as
nats-py reads them; anything else is refused as the server's fault."""

from __future__ import annotations

import pytest
from nats.aio.msg import Msg

from fleet.errors import BusError
from fleet.runtime.nats.subjects import parse_delivery

REPLIES = [
    "$JS.ACK.KV_device-state.ordered123.1.4711.42.1700000000000000000.7",  # 9 tokens
    "$JS.ACK._.ACCHASH.KV_device-state.ordered123.1.4711.42.1700000000000000000.7",  # 11
    "$JS.ACK.hub.ACCHASH.KV_device-state.c.2.99.3.1700000000000000000.0.token",  # 12
]


@pytest.mark.parametrize("reply", REPLIES)
def test_reads_the_same_stream_sequence_as_nats_py(reply: str) -> None:
    theirs = Msg.Metadata._from_reply(reply)
    ours = parse_delivery(reply)
    assert ours.stream_seq == theirs.sequence.stream
    assert ours.consumer_seq == theirs.sequence.consumer


@pytest.mark.parametrize(
    "reply",
    [
        None,
        "",
        "_INBOX.abc.1",
        "$JS.ACK.too.few.tokens",
        "$JS.ACK.S.C.1.x.2.3.4",
        "$JS.ACK.S.C.1.2.3.4.5.6",  # 10 tokens: neither form
        "$JS.ACK.S.C.1.².3.4.5",  # a digit to str.isdigit, not to int()
    ],
)
def test_anything_else_is_refused_by_name(reply: str | None) -> None:
    with pytest.raises(ValueError, match="JetStream delivery subject") as refused:
        parse_delivery(reply)
    assert isinstance(refused.value, BusError)  # a fleet error, never a bare ValueError
