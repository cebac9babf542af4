"""A watched batch counts each key's latest entry once (superseded reports are not decoded)."""

from __future__ import annotations

from fleet.actors.operator.sources import latest_per_key
from fleet.runtime.nats.kv import KvEntry


def _e(key: str, revision: int, *, op: str = "PUT") -> KvEntry:
    return KvEntry(
        bucket="device-state", key=key, value=b"" if op != "PUT" else b"{}", revision=revision,
        operation=op,  # type: ignore[arg-type]
    )  # fmt: skip


def test_keeps_each_keys_last_entry_in_the_order_of_those_entries() -> None:
    batch = (_e("a", 1), _e("b", 2), _e("a", 3), _e("c", 4), _e("b", 5, op="DEL"), _e("a", 6))
    assert [(e.key, e.revision) for e in latest_per_key(batch)] == [("c", 4), ("b", 5), ("a", 6)]


def test_a_delete_after_a_put_wins_and_a_put_after_a_delete_wins() -> None:
    assert latest_per_key((_e("a", 1), _e("a", 2, op="DEL")))[0].deleted
    assert not latest_per_key((_e("a", 1, op="DEL"), _e("a", 2)))[0].deleted


def test_a_batch_without_repeats_is_handed_on_as_is() -> None:
    batch = (_e("a", 1), _e("b", 2))
    assert latest_per_key(batch) is batch
    assert latest_per_key(()) == ()
