"""Devices of each kind in the load swarm: the mix, and the checker's rule for them."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from loadtest.check import judge
from loadtest.expected import FleetView, Report
from loadtest.runtime_mix import (
    PODMAN_ONLY,
    parse_mix,
    render_mix,
    runtimes_for,
    score_of,
    score_types,
)

NOW = 1_000_000.0
TIMEOUT = 30.0


def test_a_mix_parses_renders_and_draws_by_weight() -> None:
    mix = parse_mix("podman=8, kvm=1,kubernetes=1,podman+kvm=2")
    assert render_mix(mix) == "podman=8,kvm=1,kubernetes=1,podman+kvm=2"
    assert score_types(mix) == ("podman", "kvm", "kubernetes")
    assert parse_mix("") == PODMAN_ONLY
    drawn = Counter(runtimes_for(f"load-0-{n}", mix) for n in range(12_000))
    assert drawn[("podman",)] == pytest.approx(8000, rel=0.1)
    assert drawn[("kvm",)] == pytest.approx(1000, rel=0.2)
    assert drawn[("podman", "kvm")] == pytest.approx(2000, rel=0.15)
    assert runtimes_for("load-0-7", mix) == runtimes_for("load-0-7", mix)  # by id, always


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("podman", "not runtimes=weight"),
        ("docker=1", "at most once"),
        ("kvm+kvm=1", "at most once"),
        ("kvm=0", "integer >= 1"),
        ("kvm=x", "integer >= 1"),
        ("kvm=1,kvm=2", "listed twice"),
        ("=3", "not runtimes=weight"),
    ],
)
def test_a_bad_mix_is_refused_naming_the_part(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_mix(text)


@pytest.mark.parametrize("kind", ["podman", "kvm", "kubernetes"])
def test_each_type_has_a_valid_score(kind: str) -> None:
    from fleet.contracts import convert_score

    assert convert_score(score_of(kind, 3)).__struct_config__.tag == kind


def view(**overrides: Any) -> FleetView:
    """d1 runs kvm (Running at its entry), d2 and d3 podman only (no entry)."""
    base: dict[str, Any] = {
        "labels": {d: {"site": "lab"} for d in ("d1", "d2", "d3")},
        "beats": dict.fromkeys(("d1", "d2", "d3"), NOW - 1),
        "desired": {("d1", "vm"): 10},
        "reports": {("d1", "vm"): Report(phase="Running", desired_revision=10)},
        "runtimes": {"d1": ("podman", "kvm"), "d2": ("podman",)},  # d3: absent, podman only
    }
    base.update(overrides)
    return FleetView(**base)


def deployment(listed: list[str], pending: int = 2) -> dict[str, Any]:
    return {
        "metadata": {"name": "vm", "generation": 1},
        "spec": {"selector": {"matchLabels": {"site": "lab"}}, "score": {"type": "kvm"}},
        "status": {
            "observedGeneration": 1,
            "aggregate": {"targeted": 3, "running": 1, "pending": pending, "failed": 0,
                          "unreachable": 0},
            "unrunnable": [{"device": d, "reason": "..."} for d in listed],
        },
    }  # fmt: skip


def test_devices_that_cannot_run_the_type_count_pending_without_an_entry() -> None:
    verdict = judge(
        deployments=[deployment(["d2", "d3"])], view=view(), now=NOW, liveness_timeout=TIMEOUT
    )
    assert verdict.ok, verdict.render()


def test_an_entry_for_a_device_that_cannot_run_it_fails() -> None:
    bad = view(desired={("d1", "vm"): 10, ("d2", "vm"): 11})
    verdict = judge(deployments=[deployment(["d2", "d3"])], view=bad, now=NOW,
                    liveness_timeout=TIMEOUT)  # fmt: skip
    assert not verdict.ok
    assert any("cannot run its type (e.g. d2)" in line for line in verdict.lines), verdict.lines


def test_a_wrong_unrunnable_list_fails() -> None:
    verdict = judge(deployments=[deployment(["d3"])], view=view(), now=NOW,
                    liveness_timeout=TIMEOUT)  # fmt: skip
    assert not verdict.ok
    assert any("status.unrunnable" in line for line in verdict.lines), verdict.lines


def test_the_run_passes_the_mix_to_the_swarm_and_refuses_what_cannot_be_checked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pathlib import Path

    from loadtest.options import locust_command, parse_args

    args = parse_args(["--runtime-mix", "podman=8,kvm=1,kubernetes=1"])
    argv = locust_command(args, nats_url="nats://x", swarm="s", csv=Path("c"))
    assert argv[argv.index("--runtime-mix") + 1] == "podman=8,kvm=1,kubernetes=1"
    assert "--runtime-mix" not in locust_command(
        parse_args([]), nats_url="nats://x", swarm="s", csv=Path("c")
    )
    for bad, says in (
        (["--runtime-mix", "vmware=1"], "at most once"),
        (["--runtime-mix", "podman=1,kvm=1,kubernetes=1", "--deployments", "2"], ">= 3"),
        (["--runtime-mix", "kvm=1", "--scenario", "rollout"], "only goes with"),
    ):
        with pytest.raises(SystemExit):
            parse_args(bad)
        assert says in capsys.readouterr().err
