"""Which devices the rollout scenario powers off, and the command that tells the swarm."""

from __future__ import annotations

import msgspec
import pytest

from loadtest import control


def test_exactly_the_share_asked_for_goes_offline_whatever_the_order() -> None:
    ids = [f"load-s0-0-{n}" for n in range(1000)]
    offline = control.offline_devices(ids, 0.1)

    assert len(offline) == 100
    assert set(offline) <= set(ids)
    assert control.offline_devices(reversed(ids), 0.1) == offline
    assert control.offline_devices(ids, 0.0) == []


def test_a_command_is_read_back_as_sent_and_anything_else_is_refused() -> None:
    command = control.Command(action="offline", devices=("a", "b"))

    assert control.decode(control.encode(command)) == command
    with pytest.raises(msgspec.ValidationError):
        control.decode(b'{"action": "reboot", "devices": []}')
