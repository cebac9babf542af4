"""The rollout scenario's Deployment, its batches and what must come of it.

Why it exists: ``loadtest/run --scenario rollout`` rolls a second revision out over the
swarm with ``spec.rollout`` batches 1% / 10% / the rest, ``failureThreshold`` 5% and
``autoRollback``; this module holds that Deployment and what the checker recomputes on
its own, without trusting the operator:

* the batches (:func:`batches`): the targets ordered as docs/rollouts.md says, by
  ``rank(deployment, device)`` (the operator's hash, :func:`fleet.actors.operator.rollout.rank`,
  called, not copied), cut into ``ceil(1% of targets)``, ``ceil(10%)``, the rest;
* the outcome the devices imply (:func:`predict`): which devices fail revision 2 is known
  (:func:`fleet.devtools.simrollout.told_to_fail`, the devices' own rule) and which are
  offline too (:func:`loadtest.control.offline_devices`): walking the batches, the
  rollout must halt in the first batch whose failures, among the online devices of the
  batches reached, reach the threshold, and roll back; it can only complete if no batch
  holds a failing online device (a batch with one can never be 100% running).

What it must never do: I/O, or take a number from the operator's status.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from typing import Any, Final, NamedTuple

from fleet.actors.operator.rollout import rank
from fleet.contracts import (
    CRD_GROUP,
    CRD_VERSION,
    KIND_DEPLOYMENT,
    DeviceId,
    decode_score,
)
from fleet.devtools.simrollout import image_of
from fleet.errors import ContractError
from loadtest.plan import SWARM_LABEL

DEPLOYMENT: Final = "rollout"
IMAGE_V1: Final = "registry.local/load/app:1"
IMAGE_V2: Final = "registry.local/load/app:2"
BATCH_PERCENTS: Final = (1, 10)  # then the rest
FAILURE_PERCENT: Final = 5


def policy() -> dict[str, Any]:
    return {
        "batches": [{"size": f"{p}%"} for p in BATCH_PERCENTS],
        "failureThreshold": f"{FAILURE_PERCENT}%",
        "autoRollback": True,
    }


def score(image: str) -> dict[str, Any]:
    return {
        "type": "podman",
        "containers": [{"name": "app", "image": image, "command": ["httpd", "-f", "-p", "8000"]}],
    }


def manifest(*, swarm: str) -> dict[str, Any]:
    """Revision 1: every device of the swarm, the rollout policy from the start."""
    return {
        "apiVersion": f"{CRD_GROUP}/{CRD_VERSION}",
        "kind": KIND_DEPLOYMENT,
        "metadata": {"name": DEPLOYMENT, "labels": {SWARM_LABEL: swarm}},
        "spec": {
            "selector": {"matchLabels": {SWARM_LABEL: swarm}},
            "score": score(IMAGE_V1),
            "rollout": policy(),
        },
    }


def image_in(value: bytes | None) -> str | None:
    """The image a desired value runs (None: deleted, or not a score)."""
    if value is None:
        return None
    try:
        return image_of(decode_score(value))
    except ContractError:
        return None


def batches(targets: Iterable[str]) -> list[list[str]]:
    """The rollout's batches of ``targets``, the last one the rest."""
    ranked = sorted(targets, key=lambda d: rank(DEPLOYMENT, DeviceId.try_new(d)))
    total, out = len(ranked), []
    for percent in BATCH_PERCENTS:
        size = math.ceil(percent * total / 100)
        out.append(ranked[:size])
        ranked = ranked[size:]
    out.append(ranked)
    return out


class Prediction(NamedTuple):
    outcome: str  # "RolledBack", "Complete", or "Stuck" (cannot halt, cannot complete)
    batch: int  # 1-based: the batch it ends in (the last one when Complete)
    failed: int  # failing online devices in the batches reached
    reached: int  # devices in the batches reached
    limit: int  # failureThreshold as a count of ``reached``

    def render(self) -> str:
        if self.outcome == "Complete":
            return f"Complete: no online device of any batch fails ({self.reached} devices)"
        verb = "halts and rolls back" if self.outcome == "RolledBack" else "is stuck"
        return (
            f"{self.outcome}: {verb} in batch {self.batch}: {self.failed} failing online "
            f"device(s) of {self.reached} reached, failureThreshold {FAILURE_PERCENT}% = "
            f"{self.limit}"
        )


def predict(
    members: list[list[str]], *, failing: Collection[str], offline: Collection[str]
) -> Prediction:
    """What the rollout must do, given who fails the new image and who is offline."""
    reached = failed = 0
    for index, batch in enumerate(members):
        reached += len(batch)
        here = sum(1 for d in batch if d in failing and d not in offline)
        failed += here
        limit = max(1, math.ceil(FAILURE_PERCENT * reached / 100))
        if failed >= limit:
            return Prediction("RolledBack", index + 1, failed, reached, limit)
        if here:
            return Prediction("Stuck", index + 1, failed, reached, limit)
    return Prediction("Complete", len(members), 0, reached, 0)
