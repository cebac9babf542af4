"""The persisted desired state: round trip, atomic replace, first start, hostile files."""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

import msgspec
import pytest

from fleet.contracts.limits import MAX_CONTAINERS
from fleet.runtime.host.desired_store import (
    MAX_FILE_BYTES,
    DesiredStore,
    StoredDesired,
    StoredEntry,
)


def score(containers: int = 1, *, kind: str = "podman") -> bytes:
    return msgspec.json.encode(
        {
            "type": kind,
            "containers": [
                {"name": f"c{i}", "image": "registry.local/busybox:1"} for i in range(containers)
            ],
        }
    )


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def write(store: DesiredStore, doc: Any) -> None:
    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.write_bytes(doc if isinstance(doc, bytes) else msgspec.json.encode(doc))


def entry(value: bytes, revision: int = 1) -> dict[str, Any]:
    return {"revision": revision, "value": base64.b64encode(value).decode()}


def set_aside(tmp_path: Path) -> list[Path]:
    return sorted(tmp_path.glob("desired-state.json.bad-*"))


def test_round_trip_and_first_start(tmp_path: Path) -> None:
    store = DesiredStore(tmp_path / "state")
    assert store.load() == StoredDesired()
    desired = StoredDesired(
        entries={
            "web": StoredEntry(revision=3, value=score()),
            "x": StoredEntry(revision=1, value=score(2)),
        },
        removing={"old": 7},
    )
    store.save(desired)
    assert store.load() == desired
    store.save(StoredDesired(entries={"web": desired.entries["web"]}))
    assert store.load() == StoredDesired(entries={"web": desired.entries["web"]})
    assert [p.name for p in (tmp_path / "state").iterdir()] == [
        "desired-state.json"
    ]  # no temp left


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"[]",
        b'{"entries": []}',
        b'{"version": 1, "x": ' + nested(1000) + b"}",
        b"\xff\xfe\x00",
    ],
    ids=["not-json", "array", "wrong-shape", "nested-1000", "binary"],
)
def test_a_file_that_does_not_parse_is_set_aside_with_a_warning(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    store = DesiredStore(tmp_path)
    write(store, content)
    with caplog.at_level(logging.WARNING, logger="fleet.runtime.host.desired_store"):
        assert store.load() == StoredDesired()
    [aside] = set_aside(tmp_path)
    assert aside.read_bytes() == content  # kept for a person to look at, not deleted
    assert not store.path.exists()
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert str(store.path) in record.getMessage()
    assert str(aside) in record.getMessage()
    assert store.load() == StoredDesired()  # the next start is a first start


def test_an_oversized_file_is_set_aside_unread(tmp_path: Path) -> None:
    store = DesiredStore(tmp_path)
    with store.path.open("wb") as out:
        out.truncate(MAX_FILE_BYTES + 1)
    assert store.load() == StoredDesired()
    assert len(set_aside(tmp_path)) == 1


def test_hostile_entries_are_dropped_one_by_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = DesiredStore(tmp_path)
    good = score()
    write(
        store,
        {
            "version": 1,
            "entries": {
                "good": entry(good, 4),
                "Bad.Name": entry(good),
                "deep": entry(b'{"type": "podman", "containers": ' + nested(1000) + b"}"),
                "unknown-type": entry(score(kind="docker")),
                "too-many": entry(score(MAX_CONTAINERS + 1)),
                "junk": entry(b"\x00\xff not json"),
                "negative": entry(good, -1),
                "not-base64": {"revision": 1, "value": "%%%"},
                "not-an-object": 5,
            },
            "removing": {"gone": 9, "Bad.Name": 3, "minus": -2, "text": "x"},
        },
    )
    with caplog.at_level(logging.WARNING, logger="fleet.runtime.host.desired_store"):
        loaded = store.load()
    assert loaded == StoredDesired(
        entries={"good": StoredEntry(revision=4, value=good)}, removing={"gone": 9}
    )
    assert set_aside(tmp_path) == []  # the file itself was fine
    dropped = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(dropped) == 8 + 3
    assert any("'too-many'" in m and "containers" in m for m in dropped)
    assert any("'unknown-type'" in m for m in dropped)
