"""score_hash: the agent labels containers with it to notice spec changes."""

from __future__ import annotations

import json
import re

from fleet.contracts import ContainerSpec, PodmanScore, decode_score, score_hash

from . import samples


def test_hash_is_short_hex_and_stable_across_runs() -> None:
    digest = score_hash(samples.score())
    assert re.fullmatch(r"[0-9a-f]{16}", digest)
    # Locked: sha256 of {"containers":[{"image":"b","name":"a"}],"type":"podman"}, first 16
    # hex digits. A change means every agent replaces every container after an upgrade.
    assert score_hash(PodmanScore(containers=[ContainerSpec(name="a", image="b")])) == (
        "f32246d14042ac3a"
    )


def test_hash_ignores_key_order_and_explicit_defaults() -> None:
    payload = samples.score_json()
    reordered = json.dumps(payload, sort_keys=True).encode()
    explicit = {
        "type": "podman",
        "containers": [{"image": "b", "name": "a", "restart_policy": "always", "command": None}],
    }
    assert score_hash(decode_score(reordered)) == score_hash(samples.score())
    assert score_hash(decode_score(samples.dumps(explicit))) == score_hash(
        PodmanScore(containers=[ContainerSpec(name="a", image="b")])
    )


def test_hash_changes_with_any_spec_change() -> None:
    base = PodmanScore(containers=[ContainerSpec(name="a", image="b")])
    changed = [
        PodmanScore(containers=[ContainerSpec(name="a", image="c")]),
        PodmanScore(containers=[ContainerSpec(name="a", image="b", command=["x"])]),
        PodmanScore(containers=[ContainerSpec(name="a", image="b", env={"K": "v"})]),
        PodmanScore(containers=[ContainerSpec(name="a", image="b", restart_policy="no")]),
    ]
    hashes = {score_hash(score) for score in [base, *changed]}
    assert len(hashes) == 1 + len(changed)
