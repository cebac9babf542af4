"""The agent's desired-state rules, without podman or NATS: store only what decodes,
store a deletion until it is finished, drop what no longer decodes on load."""

from __future__ import annotations

from pathlib import Path

import msgspec

from fleet.actors.agent.desired import DesiredBook
from fleet.actors.agent.messages import Apply, Remove
from fleet.contracts import DeploymentName
from fleet.runtime.host.desired_store import DesiredStore, StoredDesired, StoredEntry

WEB = DeploymentName("web")
GOOD = msgspec.json.encode({"type": "podman", "containers": [{"name": "web", "image": "busybox"}]})
DEEP = b"[" * 1000 + b"]" * 1000


def test_a_malformed_value_is_answered_failed_and_never_stored(tmp_path: Path) -> None:
    store = DesiredStore(tmp_path)
    book = DesiredBook(store)
    first = book.put(WEB, revision=1, value=GOOD)
    assert isinstance(first, Apply)
    assert first.score is not None
    bad = book.put(WEB, revision=2, value=DEEP)
    assert isinstance(bad, Apply)
    assert bad.score is None
    assert bad.error is not None
    assert "malformed" in bad.error
    assert book.put(WEB, revision=2, value=DEEP) is None  # answered once
    assert store.load().entries == {"web": StoredEntry(revision=1, value=GOOD)}
    assert book.put(WEB, revision=1, value=GOOD) is None  # a re-read of what is stored


def test_a_deletion_is_stored_until_its_containers_are_gone(tmp_path: Path) -> None:
    store = DesiredStore(tmp_path)
    book = DesiredBook(store)
    book.put(WEB, revision=1, value=GOOD)
    assert book.delete(WEB, revision=5, running=True) == Remove(revision=5)
    assert store.load().removing == {"web": 5}
    assert "web" not in book
    book.removed("web", revision=4)  # an older removal: not this one
    assert store.load().removing == {"web": 5}
    book.removed("web", revision=5)
    assert store.load() == StoredDesired()
    assert book.delete(DeploymentName("never"), revision=7, running=False) is None


def test_load_resumes_deletions_and_drops_entries_that_no_longer_decode(tmp_path: Path) -> None:
    book = DesiredBook(DesiredStore(tmp_path))
    out = book.load(
        StoredDesired(
            entries={
                "web": StoredEntry(revision=3, value=GOOD),
                "api": StoredEntry(revision=4, value=DEEP),
            },
            removing={"old": 9, "Bad Name": 2},
        )
    )
    assert [(str(name), type(message).__name__) for name, message in out] == [
        ("old", "Remove"),
        ("web", "Apply"),
    ]
    assert "api" not in book
