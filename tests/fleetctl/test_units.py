"""Pure pieces of fleetctl: the merge patch apply sends, the options before or after."""

from __future__ import annotations

import pytest

from fleet.cli.fleetctl.main import parse_args
from fleet.cli.fleetctl.manifests import merge_patch


def test_merge_patch_removes_what_the_file_no_longer_has() -> None:
    old = {"selector": {"matchLabels": {"a": "1", "b": "2"}}, "score": {"type": "podman"}}
    new = {"selector": {"matchLabels": {"a": "1"}}, "score": {"type": "podman"}}
    assert merge_patch(old, new) == {"selector": {"matchLabels": {"b": None}}}
    assert merge_patch(new, new) == {}
    assert merge_patch({"x": [1, 2]}, {"x": [2]}) == {"x": [2]}  # lists are replaced


def test_common_options_go_before_or_after_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLEET_NATS_URL", raising=False)
    before = parse_args(["--nats-url", "nats://a:1", "-o", "json", "devices"])
    after = parse_args(["devices", "--nats-url", "nats://a:1", "-o", "json"])
    assert before.nats_url == after.nats_url == ["nats://a:1"]
    assert before.output == after.output == "json"
    assert parse_args(["devices"]).nats_url == ["nats://127.0.0.1:4222"]
    monkeypatch.setenv("FLEET_NATS_URL", "nats://env:2")
    assert parse_args(["devices"]).nats_url == ["nats://env:2"]
