"""Loop-thread logging in the swarm: collected without gevent's locks, handed on in order."""

from __future__ import annotations

import logging
import threading

import pytest

from loadtest.logbridge import LoopLogHandler


def record(message: str) -> logging.LogRecord:
    return logging.LogRecord("fleet.test", logging.WARNING, __file__, 1, message, None, None)


def test_records_from_a_real_thread_reach_the_root_handlers_in_order(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler = LoopLogHandler()
    worker = threading.Thread(target=lambda: [handler.handle(record(f"m{i}")) for i in range(3)])
    worker.start()
    worker.join(5)
    assert not caplog.records  # nothing is written from the other thread itself

    with caplog.at_level(logging.WARNING):
        handler.drain()

    assert [r.getMessage() for r in caplog.records] == ["m0", "m1", "m2"]


def test_a_full_buffer_drops_the_oldest_and_says_how_many(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler = LoopLogHandler(maxlen=2)
    for i in range(5):
        handler.handle(record(f"m{i}"))

    with caplog.at_level(logging.WARNING):
        handler.drain()

    messages = [r.getMessage() for r in caplog.records]
    assert messages[:2] == ["m3", "m4"]
    assert messages[2] == "3 log records from the loop dropped"
