"""Whether this device runs a desired entry at all: fields it cannot honour, privileges
its owner did not allow.

Why it exists: two rules of issue 14 hold on the device, whatever the bus says.

* **Forward compatibility.** Readers ignore unknown fields (docs/contracts.md), which is
  right for reports but wrong for a score: a container field this agent does not know
  (a newer release's volume, limit or privilege) would be silently dropped, and the
  container would run other than asked. So an entry with a field this agent's contract
  does not have is refused, ``Failed`` naming the field, instead of half-run
  (:mod:`fleet.contracts.unknown`; the operator applies it too). The contract's structs
  stay lenient (no ``forbid_unknown_fields``): fleetctl and every other reader still
  read newer values.
* **Privilege policy.** A privileged container field (:data:`PRIVILEGED_FIELDS`: host
  network, devices, added capabilities, privileged mode, a volume's host path) runs only
  if the agent's own
  config allows it (``[policy] allow``, empty by default). Anyone who can write the
  desired-state bucket could write any entry, so the entry itself can never grant a
  privilege; the operator's check (the Deployment's ``spec.privileges`` and the
  namespace's label) decides who may ask, this one what the device will do.

What it must never do: store or run a refused entry, or trust anything the entry says
about its own permissions.
"""

from __future__ import annotations

from collections.abc import Collection

import msgspec

from fleet.contracts import PRIVILEGED_FIELDS, PodmanScore, ReconcileScore
from fleet.contracts.limits import truncate_message
from fleet.contracts.unknown import unknown_score_field


def refused_field(score: ReconcileScore, *, allowed: Collection[str]) -> str | None:
    """The path of the first privileged field ``score`` sets that ``allowed`` lacks."""
    if not isinstance(score, PodmanScore):
        return None
    for index, container in enumerate(score.containers):
        for name in container.privileges():
            if name.rsplit(".", 1)[-1] not in allowed:
                return f"containers[{index}].{name}"
    return None


def unresolved_field(score: ReconcileScore) -> str | None:
    """The path of the first ConfigMap or Secret reference left in ``score``."""
    if not isinstance(score, PodmanScore):
        return None
    if score.image_pull_secrets:
        return "image_pull_secrets"
    for index, container in enumerate(score.containers):
        for f_index, file in enumerate(container.files or ()):
            if file.reference is not None:
                return f"containers[{index}].files[{f_index}].{file.reference}"
        for name, source in sorted((container.secret_env or {}).items()):
            if source.reference is not None:
                return f"containers[{index}].secret_env.{name}.{source.reference}"
    return None


class Admission:
    """The device's rules for a decoded desired entry (see the module doc)."""

    def __init__(self, *, allow: Collection[str] = ()) -> None:
        self._allow = frozenset(allow) & frozenset(PRIVILEGED_FIELDS)

    def refuse(self, deployment: str, value: bytes, score: ReconcileScore) -> str | None:
        """Why this device will not run ``score`` (the ``Failed`` message), or None."""
        try:
            raw = msgspec.json.decode(value)  # decoded (and bounded) already: valid JSON
        except (msgspec.DecodeError, RecursionError):
            raw = None
        unknown = unknown_score_field(raw)
        if unknown is not None:
            return truncate_message(
                f"the desired state of '{deployment}' sets `{unknown}`, which this agent "
                "does not know: it cannot honour it, so it runs none of it (upgrade the "
                "agent, or leave the field out)"
            )
        unresolved = unresolved_field(score)
        if unresolved is not None:
            return truncate_message(
                f"the desired state of '{deployment}' sets `{unresolved}`, a reference to a "
                "Kubernetes object that the operator resolves (a Secret's value reaches a "
                "device only sealed to its key): nothing of it runs"
            )
        refused = refused_field(score, allowed=self._allow)
        if refused is not None:
            kind = refused.rsplit(".", 1)[1]
            allowed = ", ".join(sorted(self._allow)) or "none"
            return truncate_message(
                f"the desired state of '{deployment}' sets `{refused}`, a privilege this "
                f"device's policy does not allow (its agent config's [policy] allow has "
                f'{allowed}; add "{kind}" there to allow it): nothing of it runs'
            )
        return None
