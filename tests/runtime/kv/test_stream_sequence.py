"""The revision of a watched entry, read from its ``$JS.ACK`` subject as nats-py would."""

from __future__ import annotations

import pytest
from nats.aio.msg import Msg

from fleet.runtime.nats.kv import stream_sequence

REPLIES = [
    "$JS.ACK.KV_device-state.ordered123.1.4711.42.1700000000000000000.7",  # 9 tokens
    "$JS.ACK._.ACCHASH.KV_device-state.ordered123.1.4711.42.1700000000000000000.7",  # 11
    "$JS.ACK.hub.ACCHASH.KV_device-state.c.2.99.3.1700000000000000000.0.token",  # 12
]


@pytest.mark.parametrize("reply", REPLIES)
def test_reads_the_same_stream_sequence_as_nats_py(reply: str) -> None:
    assert stream_sequence(reply) == Msg.Metadata._from_reply(reply).sequence.stream


@pytest.mark.parametrize(
    "reply", [None, "", "_INBOX.abc.1", "$JS.ACK.too.few.tokens", "$JS.ACK.S.C.1.x.2.3.4"]
)
def test_anything_else_is_refused_by_name(reply: str | None) -> None:
    with pytest.raises(ValueError, match="JetStream delivery subject"):
        stream_sequence(reply)
