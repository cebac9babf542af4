"""A Deployment resource's spec, validated: its selector and the desired-state bytes.

Why it exists: the operator must refuse a bad spec with a reason a person can act on
(condition ``Ready=False``, reason ``InvalidSpec``) and write nothing for it. The
desired-state value is encoded once here (``encode_score``: deterministic bytes), so
"write only when the content changes" is a byte comparison.
Pure: no I/O, no actors.
"""

from __future__ import annotations

import msgspec

from fleet.contracts import DeploymentName, convert_score, encode_score
from fleet.errors import ContractError, SpecError

from .selectors import LabelSelector, parse_selector


class DeploymentSpec(msgspec.Struct, frozen=True, kw_only=True):
    name: DeploymentName
    selector: LabelSelector
    desired: bytes  # the desired-state value every targeted device gets


def parse_spec(*, name: str, spec_json: bytes) -> DeploymentSpec:
    """Validate a Deployment's name and spec; :class:`SpecError` says what is wrong."""
    try:
        deployment = DeploymentName.try_new(name)
    except ContractError as exc:
        raise SpecError(f"metadata.name: {exc} (it is a key token on the wire)") from exc
    try:
        spec = msgspec.json.decode(spec_json)
    except msgspec.DecodeError as exc:
        raise SpecError(f"spec is not valid JSON: {exc}") from exc
    if not isinstance(spec, dict):
        raise SpecError(f"spec must be an object, got {spec!r}")
    selector = parse_selector(spec.get("selector"))
    if "score" not in spec:
        raise SpecError("spec.score is missing")
    try:
        score = convert_score(spec["score"])
    except ContractError as exc:
        raise SpecError(f"spec.score: {exc}") from exc
    return DeploymentSpec(name=deployment, selector=selector, desired=encode_score(score))
