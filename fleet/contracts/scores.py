"""The desired-state value: a score, a tagged union on the JSON field ``type``.

Variants: ``"podman"`` (:class:`~.score.PodmanScore`, containers), ``"kvm"``
(:class:`~.kvm_score.KvmScore`, a virtual machine through libvirt) and ``"kubernetes"``
(:class:`~.kube_score.KubernetesScore`, manifests applied into a cluster). A new variant
is a new Struct with its own ``tag``, added to :data:`SCORE_TYPES` and to the
:data:`ReconcileScore` union; decoders of an older version then reject it by its ``type``
with a clear error instead of misreading it, and an agent without a runtime for a type
reports ``Failed`` naming ``type``.

This module must never do I/O.
"""

from __future__ import annotations

from typing import Final, TypeAlias

import msgspec

from .kube_score import KubernetesScore
from .kvm_score import KvmScore
from .score import PodmanScore

ReconcileScore: TypeAlias = PodmanScore | KvmScore | KubernetesScore
"""The desired-state value of one (device, deployment)."""

SCORE_TYPES: Final[tuple[type[msgspec.Struct], ...]] = (PodmanScore, KvmScore, KubernetesScore)
