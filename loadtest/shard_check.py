"""What a sharded load run (``loadtest/run --shards N``) must show besides true aggregates:
each Deployment written by exactly one shard, the one its name hashes to.

Two witnesses, both outside the operator: the desired-state stream (every put, through
:class:`~loadtest.tap.DesiredTap`: an entry put twice is a double write, whoever made it),
and each shard's log, where the shard that owns a Deployment records its revision
(``deployment <ns>/<name>: revision N``) and no other shard does.

What it must never do: pass a run it could not check (a missing log is a problem).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from fleet.actors.operator.shards import shard_of

from .tap import Write


def shard_problems(
    writes: Sequence[Write], logs: Sequence[Path], names: Sequence[str], namespace: str
) -> list[str]:
    """Problems found (none: each Deployment had one writer, its own shard)."""
    problems: list[str] = []
    puts = Counter((w.device, w.deployment) for w in writes if w.value is not None)
    twice = sorted(key for key, n in puts.items() if n > 1)
    if twice:
        device, name = twice[0]
        problems.append(
            f"{len(twice)} desired entries were put more than once (e.g. {device}.{name}, "
            f"{puts[twice[0]]} times): two shards wrote one Deployment"
        )
    texts = []
    for log in logs:
        try:
            texts.append(log.read_text(errors="replace"))
        except OSError as exc:
            problems.append(f"{log}: unreadable ({exc}): cannot tell which shard wrote what")
            return problems
    for name in names:
        said = f"deployment {namespace}/{name}: revision"
        writers = [index for index, text in enumerate(texts) if said in text]
        owner = shard_of(name, len(logs))
        if writers != [owner]:
            problems.append(
                f"Deployment {name}: written by shard(s) {writers}, owned by shard {owner}"
            )
    return problems
