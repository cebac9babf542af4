"""The persisted desired state: round trip, atomic replace, first start."""

from __future__ import annotations

from pathlib import Path

from fleet.runtime.desired_store import DesiredStore, StoredEntry


def test_round_trip_and_first_start(tmp_path: Path) -> None:
    store = DesiredStore(tmp_path / "state")
    assert store.load() == {}
    entries = {
        "web": StoredEntry(revision=3, value=b'{"type":"podman"}'),
        "x": StoredEntry(revision=1, value=b"\xff"),
    }
    store.save(entries)
    assert store.load() == entries
    store.save({"web": entries["web"]})
    assert store.load() == {"web": entries["web"]}
    assert [p.name for p in (tmp_path / "state").iterdir()] == [
        "desired-state.json"
    ]  # no temp left


def test_damaged_file_starts_empty(tmp_path: Path) -> None:
    store = DesiredStore(tmp_path)
    store.path.write_bytes(b"{not json")
    assert store.load() == {}
