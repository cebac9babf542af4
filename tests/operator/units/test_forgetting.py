"""The keys of forgotten devices through a fake deleter port: compare-and-swap deletes,
failures tried again after a while, a device that wrote again left alone."""

from __future__ import annotations

import logging

import pytest

from fleet.actors.operator.forgetting import KeyDeletions, KeysDeleted
from fleet.contracts import DeviceId

from .fakes import Deleter, Replies

KEYS_A = (("device-heartbeat", "heartbeat.a", 5), ("device-info", "info.a", 2))
KEYS_B = (("device-heartbeat", "heartbeat.b", 6),)


def test_groups_go_to_the_deleter_and_failures_come_back_after_the_retry_delay(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="fleet.actors.operator.forgetting")
    deleter, replies = Deleter(["failed: down", "changed"]), Replies()
    keys = KeyDeletions(deleter=deleter, replies=replies, retry=30.0)
    keys.delete([(DeviceId("a"), KEYS_A), (DeviceId("b"), KEYS_B)], now=0.0)
    assert deleter.groups == [list(KEYS_A), list(KEYS_B)]
    (outcome,) = replies.take()
    assert isinstance(outcome, KeysDeleted)
    keys.done(outcome, now=0.0)
    assert keys.pending_retries == 1  # a, which failed; b wrote again: kept
    assert "wrote again" in caplog.text
    assert "retrying in 30 s" in caplog.text
    keys.delete([], now=10.0)
    assert len(deleter.groups) == 2  # not yet
    keys.delete([], now=30.0)
    assert deleter.groups[-1] == list(KEYS_A)
    keys.done(replies.take()[0], now=30.0)  # type: ignore[arg-type]
    assert keys.pending_retries == 0


def test_without_a_deleter_nothing_is_deleted() -> None:
    replies = Replies()
    keys = KeyDeletions(deleter=None, replies=replies)
    keys.delete([(DeviceId("a"), KEYS_A)], now=0.0)
    assert replies.take() == []
