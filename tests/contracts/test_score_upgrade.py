"""Issue 14 added optional container fields; a score without them must encode, and hash,
byte for byte as the release before did (the agent labels its containers with these
hashes: a changed hash would replace every container of the fleet on upgrade)."""

from __future__ import annotations

import msgspec

from fleet.contracts import convert_score, decode_score, encode_score, score_hash
from fleet.runtime.podman.port import spec_hash

# Written by the release before issue 14 (commit 5fbfe22), pinned here.
OLD_FULL = (
    b'{"type":"podman","containers":[{"name":"web","image":"127.0.0.1:5000/busybox:test",'
    b'"command":["sleep","300"],"env":{"V":"1"},"ports":[{"host_port":18080,'
    b'"container_port":80}],"restart_policy":"on-failure"}]}'
)
OLD_FULL_SCORE_HASH = "5e4f1a97a78f6953"
OLD_FULL_SPEC_HASH = "5763e0a5b2c8a8e3"
OLD_MINIMAL = b'{"type":"podman","containers":[{"name":"a","image":"b"}]}'
OLD_MINIMAL_SCORE_HASH = "f32246d14042ac3a"


def test_a_score_without_the_new_fields_encodes_and_hashes_as_before() -> None:
    full = decode_score(OLD_FULL)
    assert encode_score(full) == OLD_FULL
    assert score_hash(full) == OLD_FULL_SCORE_HASH
    assert spec_hash(full.containers[0]) == OLD_FULL_SPEC_HASH  # type: ignore[union-attr]
    minimal = decode_score(OLD_MINIMAL)
    assert encode_score(minimal) == OLD_MINIMAL
    assert score_hash(minimal) == OLD_MINIMAL_SCORE_HASH


def test_new_fields_at_their_defaults_are_left_out() -> None:
    raw = msgspec.json.decode(OLD_FULL)
    container = raw["containers"][0]
    container.update(
        host_network=False, privileged=False, volumes=None, devices=None, cap_add=None,
        user=None, working_dir=None, entrypoint=None, labels=None, healthcheck=None,
        memory=None, cpus=None,
    )  # fmt: skip
    assert encode_score(convert_score(raw)) == OLD_FULL
    assert score_hash(convert_score(raw)) == OLD_FULL_SCORE_HASH


def test_a_new_field_changes_the_hash_and_round_trips() -> None:
    raw = msgspec.json.decode(OLD_FULL)
    raw["containers"][0]["volumes"] = [{"name": "data", "path": "/data"}]
    raw["containers"][0]["healthcheck"] = {"command": ["true"], "interval_s": 5}
    score = convert_score(raw)
    assert score_hash(score) != OLD_FULL_SCORE_HASH
    assert decode_score(encode_score(score)) == score
    assert b'"interval_s":5' in encode_score(score)
    assert b"retries" not in encode_score(score)  # defaults left out
