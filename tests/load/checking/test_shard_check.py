"""The sharded load run's own check (:mod:`loadtest.shard_check`): it passes one writer per
Deployment, its own shard, and fails a double put, a Deployment its owner never wrote, one
written by two shards, and a log it cannot read."""

from __future__ import annotations

from pathlib import Path

from fleet.actors.operator.shards import shard_of
from loadtest.shard_check import shard_problems
from loadtest.tap import Write

NS = "fleet-load"
NAMES = [f"load-{i}" for i in range(6)]


def logs(tmp_path: Path, shards: int, wrote: dict[str, list[int]]) -> list[Path]:
    paths = [tmp_path / f"operator-{i}.log" for i in range(shards)]
    for index, path in enumerate(paths):
        lines = [f"INFO deployment {NS}/{n}: revision 1" for n, ws in wrote.items() if index in ws]
        path.write_text("\n".join(["INFO operator started", *lines]) + "\n")
    return paths


def puts(names: list[str], devices: int = 3) -> list[Write]:
    return [Write(0.0, f"dev-{d}", n, b"{}") for n in names for d in range(devices)]


def test_one_writer_each_its_owner_passes(tmp_path: Path) -> None:
    owners = {n: [shard_of(n, 3)] for n in NAMES}
    assert shard_problems(puts(NAMES), logs(tmp_path, 3, owners), NAMES, NS) == []


def test_a_double_put_and_a_wrong_or_second_writer_fail(tmp_path: Path) -> None:
    wrong = {n: [shard_of(n, 3)] for n in NAMES}
    wrong[NAMES[0]] = [(shard_of(NAMES[0], 3) + 1) % 3]  # not its owner
    wrong[NAMES[1]] = [0, 1, 2]  # everyone
    del wrong[NAMES[2]]  # nobody
    writes = [*puts(NAMES), Write(1.0, "dev-0", NAMES[3], b"{}")]  # one entry put again
    problems = shard_problems(writes, logs(tmp_path, 3, wrong), NAMES, NS)
    assert any("1 desired entries were put more than once" in p for p in problems)
    assert any(f"Deployment {NAMES[0]}: written by shard(s) [" in p for p in problems)
    assert any(f"Deployment {NAMES[1]}: written by shard(s) [0, 1, 2]" in p for p in problems)
    assert any(f"Deployment {NAMES[2]}: written by shard(s) []" in p for p in problems)
    assert len(problems) == 4


def test_a_missing_log_is_a_problem_not_a_pass(tmp_path: Path) -> None:
    paths = logs(tmp_path, 2, {n: [shard_of(n, 2)] for n in NAMES})
    paths[1].unlink()
    problems = shard_problems(puts(NAMES), paths, NAMES, NS)
    assert len(problems) == 1
    assert "unreadable" in problems[0]
