"""What a simulated device reports for one desired entry: the phases and their messages.

Why it exists: the load swarm's devices, the operator benchmark's and the tests' play the
same part of ``fleet-agent``, and must tell the same story. A desired entry is read as
the agent reads it (its key, then its value as a score) and becomes:

* deleted: ``Removed``;
* a value that is not a valid score: ``Failed`` with the agent's own message, which names
  the offending field (:func:`fleet.actors.agent.reporting.malformed_message`);
* a score of a type the device does not run (its ``runtimes``): ``Failed`` with the
  agent's own message naming ``type`` (the runtime registry's ``unsupported_message``);
* a score: ``Pending -> Pulling ("pulling <image>", as the agent says) -> Starting ->
  Running``, or, when the device was told to fail it, ``Failed`` naming the image
  instead of ``Running``. What is "pulled" is the type's first artifact: a podman
  score's first image, a kvm score's disk (or boot kernel) URL; a kubernetes score
  pulls nothing (``Pending -> Starting -> Running``, its "image" the namespace's first
  object, which is what a failure names). A device is told to fail a rollout by chance
  (its behaviour's ``failure_rate``), or because it fails a given image
  (:func:`told_to_fail`: decided by a hash of the device and the image, so that whoever
  checks a run can tell which devices fail it without asking them).

Every step echoes the entry's revision (``desired_revision``).

What it must never do: I/O or waiting (the device decides when each step is written), or
report a phase or a message the agent would not.
"""

from __future__ import annotations

import functools
import hashlib
from typing import NamedTuple

from fleet.actors.agent.reporting import malformed_message
from fleet.actors.agent.runtimes.registry import unsupported_message
from fleet.contracts import (
    DeploymentName,
    DeviceId,
    KubernetesScore,
    KvmScore,
    Phase,
    ReconcileScore,
    decode_score,
    parse_desired_state_key,
)
from fleet.errors import ContractError
from fleet.runtime.nats.kv import KvEntry


class Step(NamedTuple):
    phase: Phase
    message: str | None = None


class Rollout(NamedTuple):
    """One desired entry as a device reads it, and the reports it makes of it."""

    device: DeviceId
    deployment: DeploymentName
    revision: int
    steps: tuple[Step, ...]  # in order, the last one final; four at most (see Behaviour)
    image: str | None  # what a valid score pulls first; None: nothing runs (one final step)


def image_of(score: ReconcileScore) -> str:
    """What a score fetches first (what ``Pulling`` and a simulated failure name)."""
    if isinstance(score, KvmScore):
        if score.disk is not None:
            return score.disk.url
        return score.boot.kernel.url if score.boot is not None else "(no disk)"
    if isinstance(score, KubernetesScore):
        first = score.manifests[0]
        return f"{score.namespace}/{first['kind']}/{first['metadata']['name']}"
    return score.containers[0].image if score.containers else "(no container)"


_PENDING, _STARTING, _RUNNING = Step(Phase.PENDING), Step(Phase.STARTING), Step(Phase.RUNNING)


@functools.lru_cache(maxsize=1024)  # a swarm rolls out the same few images by the thousand
def steps_to_running(image: str, pulls: bool = True) -> tuple[Step, ...]:
    """A rollout of ``image`` that succeeds: Pending, Pulling, Starting, Running (without
    Pulling when nothing is fetched: a kubernetes score)."""
    if not pulls:
        return (_PENDING, _STARTING, _RUNNING)
    return (_PENDING, Step(Phase.PULLING, f"pulling {image}"), _STARTING, _RUNNING)


def simulated_failure(image: str) -> Step:
    """The final step of a rollout the device was told to fail."""
    return Step(
        Phase.FAILED, f"simulated failure: {image} exited with code 1 (loadtest failure rate)"
    )


def told_to_fail(device: str, image: str, rate: float) -> bool:
    """Whether ``device`` fails ``image`` when a share ``rate`` of devices does: the same
    answer for the same device and image, everywhere, every time."""
    digest = hashlib.blake2b(f"{image}/{device}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < rate * 2**64


def score_type(score: ReconcileScore) -> str:
    return str(type(score).__struct_config__.tag)


def rollout_of(entry: KvEntry, runs: tuple[str, ...] = ("podman",)) -> Rollout | None:
    """What ``entry`` becomes for a device running ``runs``; ``None`` for a key that is
    no desired-state key."""
    try:
        device, deployment = parse_desired_state_key(entry.key)
    except ContractError:
        return None
    if entry.deleted:
        return Rollout(device, deployment, entry.revision, (Step(Phase.REMOVED),), None)
    try:
        score = decode_score(entry.value)
    except ContractError as exc:
        failed = Step(Phase.FAILED, malformed_message(deployment, exc))
        return Rollout(device, deployment, entry.revision, (failed,), None)
    kind = score_type(score)
    if kind not in runs:
        failed = Step(Phase.FAILED, unsupported_message(deployment, kind, runs))
        return Rollout(device, deployment, entry.revision, (failed,), None)
    image = image_of(score)
    steps = steps_to_running(image, not isinstance(score, KubernetesScore))
    return Rollout(device, deployment, entry.revision, steps, image)
