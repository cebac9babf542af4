"""The load swarm's mix of device kinds: which runtimes each simulated device lists.

Why it exists: issue 17's load swarm "can simulate devices of each kind". ``loadtest/run
--runtime-mix podman=8,kvm=1,kubernetes=1`` gives each device the runtimes of one kind,
drawn by weight from a hash of its id (the same id, the same kind, in every process and
every run); a kind may list several (``podman+kvm=1``). The run then applies a Deployment
per score type of the mix (:func:`score_types`, :func:`score_of`), and the checker reads
each device's runtimes back from its device-info (it never asks this module).

Pure. What it must never do: draw a kind from anything but the device's id.
"""

from __future__ import annotations

import zlib
from typing import Any, Final

SCORE_TYPES: Final = ("podman", "kvm", "kubernetes")
Mix = tuple[tuple[tuple[str, ...], int], ...]
"""``((runtimes, weight), ...)``: a kind's runtimes and its weight."""
PODMAN_ONLY: Final[Mix] = ((("podman",), 1),)


def parse_mix(text: str) -> Mix:
    """``"podman=8,kvm=1,podman+kvm=1"``; ``ValueError`` naming the bad part. Empty:
    podman only."""
    if not text.strip():
        return PODMAN_ONLY
    out: list[tuple[tuple[str, ...], int]] = []
    for part in text.split(","):
        kind, sep, weight = part.strip().partition("=")
        runtimes = tuple(r.strip() for r in kind.split("+") if r.strip())
        if not sep or not runtimes:
            raise ValueError(f"--runtime-mix: {part!r} is not runtimes=weight")
        unknown = [r for r in runtimes if r not in SCORE_TYPES]
        if unknown or len(set(runtimes)) != len(runtimes):
            raise ValueError(
                f"--runtime-mix: {kind!r}: each of {', '.join(SCORE_TYPES)} at most once"
            )
        if not weight.strip().isdigit() or int(weight) < 1:
            raise ValueError(f"--runtime-mix: {part!r}: the weight must be an integer >= 1")
        out.append((runtimes, int(weight)))
    if len({r for r, _ in out}) != len(out):
        raise ValueError("--runtime-mix: a kind is listed twice")
    return tuple(out)


def render_mix(mix: Mix) -> str:
    return ",".join(f"{'+'.join(r)}={w}" for r, w in mix)


def runtimes_for(device_id: str, mix: Mix) -> tuple[str, ...]:
    """The runtimes ``device_id`` lists: a kind drawn by weight from a hash of its id."""
    if len(mix) == 1:
        return mix[0][0]
    point = zlib.crc32(device_id.encode()) % sum(w for _, w in mix)
    for runtimes, weight in mix:
        if point < weight:
            return runtimes
        point -= weight
    raise AssertionError("unreachable: point < total weight")  # pragma: no cover


def score_types(mix: Mix) -> tuple[str, ...]:
    """The score types the mix's devices run, in :data:`SCORE_TYPES` order."""
    present = {r for runtimes, _ in mix for r in runtimes}
    return tuple(t for t in SCORE_TYPES if t in present)


def score_of(kind: str, index: int) -> dict[str, Any]:
    """The ``index``-th Deployment's score of type ``kind`` (each Deployment its own)."""
    if kind == "kvm":
        return {
            "type": "kvm",
            "name": "vm",
            "disk": {"url": f"https://images.load.invalid/tiny-{index}.qcow2"},
            "memory_mib": 64,
            "ports": [{"host_port": 10000 + index, "guest_port": 22}],
        }
    if kind == "kubernetes":
        return {
            "type": "kubernetes",
            "namespace": f"load-{index}",
            "manifests": [{
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "app"},
                "spec": {"replicas": 1, "template": {"spec": {"containers": [
                    {"name": "app", "image": f"registry.local/load/app:{index}"}
                ]}}},
            }],
        }  # fmt: skip
    return {
        "type": "podman",
        "containers": [
            {
                "name": "app",
                "image": f"registry.local/load/app:{index}",
                "command": ["httpd", "-f", "-p", str(8000 + index)],
                "env": {"LOAD_INDEX": str(index)},
            }
        ],
    }
