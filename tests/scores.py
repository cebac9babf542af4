"""Typed access to podman scores in tests: a decoded desired-state value is a union of
score types; most tests only ever write podman ones and read their containers."""

from __future__ import annotations

from fleet.contracts import PodmanScore, ReconcileScore, decode_score


def podman(score: ReconcileScore | bytes) -> PodmanScore:
    """``score`` (or the desired-state value it was decoded from), which must be podman's."""
    decoded = decode_score(score) if isinstance(score, bytes) else score
    assert isinstance(decoded, PodmanScore), f"not a podman score: {decoded!r}"
    return decoded
