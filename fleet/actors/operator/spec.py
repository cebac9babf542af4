"""A Deployment resource's spec, validated: its selector and the desired-state bytes.

Why it exists: the operator must refuse a bad spec with a reason a person can act on
(condition ``Ready=False``, reason ``InvalidSpec``) and write nothing for it. The
desired-state value is encoded once here (``encode_score``: deterministic bytes), so
"write only when the content changes" is a byte comparison. A score with per-device
templates (:mod:`.rendering`) is encoded as written, its templates compiled here: one
that does not parse or uses what the language lacks is ``InvalidSpec`` naming the field.

Bounded and total: the spec's size (:data:`MAX_SPEC_BYTES`) and nesting depth are checked
before it is parsed, and any bytes end as a spec or a :class:`SpecError` (a spec nested
1,000 deep, 1 MB of it, or a string where an object belongs all become ``InvalidSpec``).
Pure: no I/O, no actors.

What it must never do: accept a spec it could not write, or raise anything but
``SpecError`` on bad input.
"""

from __future__ import annotations

import logging
from typing import Final

import msgspec

from fleet.contracts import DeploymentName
from fleet.contracts.limits import MAX_DESIRED_DEPTH, check_json_bounds
from fleet.contracts.score_template import encode_template_score
from fleet.contracts.scores import SCORE_TYPES
from fleet.contracts.unknown import unknown_score_field
from fleet.errors import ContractError, SpecError

from .privileges import check_privileges, parse_privileges
from .rendering import ScoreTemplate, compile_score
from .rollout_spec import HISTORY_DEFAULT, RolloutPolicy, parse_history_limit, parse_rollout
from .selectors import LabelSelector, parse_selector, shown
from .templating import TemplateRefused

logger = logging.getLogger(__name__)

MAX_SPEC_BYTES: Final = 256 * 1024
"""A Deployment's spec, JSON-encoded: a score (at most 64 KB) and its selector."""


class DeploymentSpec(msgspec.Struct, frozen=True, kw_only=True):
    name: DeploymentName
    selector: LabelSelector
    desired: bytes  # the desired-state value every targeted device gets (once rolled out)
    # its per-device templates (None: none, ``desired`` is every device's value as is)
    template: ScoreTemplate | None = None
    rollout: RolloutPolicy | None = None  # None: every target at once
    history_limit: int = HISTORY_DEFAULT  # revisions kept (spec.revisionHistoryLimit)


OTHER_VARIANTS_FIELDS: Final = frozenset(
    field for variant in SCORE_TYPES for field in variant.__struct_encode_fields__
)
"""Score-level fields of any variant: left over by a merge patch that changed ``type``."""


def parse_spec(
    *, name: str, spec_json: bytes, privileges_forbidden_in: str | None = None
) -> DeploymentSpec:
    """Validate a Deployment's name and spec; :class:`SpecError` says what is wrong.

    ``privileges_forbidden_in``: the Deployment's namespace when the operator's cluster
    admin does not let Deployments there be granted privileges
    (``--privileged-namespaces``): then any grant in ``spec.privileges`` is refused."""
    try:
        deployment = DeploymentName.try_new(name)
    except ContractError as exc:
        raise SpecError(f"metadata.name: {exc} (it is a key token on the wire)") from exc
    try:
        # the score sits one level inside the spec
        check_json_bounds(
            spec_json, what="spec", max_bytes=MAX_SPEC_BYTES, max_depth=MAX_DESIRED_DEPTH + 1
        )
    except ContractError as exc:
        raise SpecError(str(exc)) from exc
    try:
        spec = msgspec.json.decode(spec_json)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise SpecError(f"spec is not valid JSON: {exc}") from exc
    if not isinstance(spec, dict):
        raise SpecError(f"spec must be an object, got {shown(spec)}")
    selector = parse_selector(spec.get("selector"))
    if "score" not in spec:
        raise SpecError("spec.score is missing")
    unknown = unknown_score_field(spec["score"])
    # a field re-encoding would drop changes what runs: refuse it instead
    # (docs/workloads.md); but another type's score-level field (a leftover after a merge
    # patch changed the type) changes nothing and is dropped, as before
    if unknown is not None and unknown not in OTHER_VARIANTS_FIELDS:
        raise SpecError(
            f"spec.score.{unknown}: unknown field; this operator cannot honour it (a newer "
            "release's field, or a typo)"
        )
    try:
        desired, fields = encode_template_score(spec["score"])
    except ContractError as exc:
        where = f"spec.score.{exc.field}" if "templated strings" in str(exc) else "spec.score"
        raise SpecError(f"{where}: {exc}") from exc
    allowed = parse_privileges(spec.get("privileges"))
    if allowed and privileges_forbidden_in is not None:
        raise SpecError(
            f"spec.privileges: Deployments in namespace {privileges_forbidden_in!r} may not be "
            "granted privileges (the operator's --privileged-namespaces does not list it)"
        )
    check_privileges(spec["score"], allowed)
    try:
        template = compile_score(desired, fields) if fields else None
    except TemplateRefused as exc:
        raise SpecError(str(exc)) from exc
    return DeploymentSpec(
        name=deployment,
        selector=selector,
        desired=desired,
        template=template,
        rollout=parse_rollout(spec.get("rollout")),
        history_limit=parse_history_limit(spec.get("revisionHistoryLimit")),
    )


class SpecReading(msgspec.Struct, frozen=True, kw_only=True):
    """A Deployment's spec read: valid (``spec``) or not (``error``), and its name as a
    deployment name when it is one (an invalid spec still claims its name)."""

    spec: DeploymentSpec | None
    error: str | None
    name: DeploymentName | None


def read_spec(
    *, name: str, spec_json: bytes, where: str = "", privileges_forbidden_in: str | None = None
) -> SpecReading:
    """:func:`parse_spec`, total: any failure becomes the reason a user sees (and a
    warning naming the resource, ``where``)."""
    where = where or name
    try:
        spec = parse_spec(
            name=name, spec_json=spec_json, privileges_forbidden_in=privileges_forbidden_in
        )
    except Exception as exc:  # SpecError; anything else is a bug, never a dead index
        if not isinstance(exc, SpecError):
            logger.exception("Deployment %s: parsing its spec failed", where)
        try:
            deployment: DeploymentName | None = DeploymentName.try_new(name)
        except ContractError:
            deployment = None
        error = str(exc) or type(exc).__name__
        logger.warning("Deployment %s: invalid spec: %s", where, error)
        return SpecReading(spec=None, error=error, name=deployment)
    return SpecReading(spec=spec, error=None, name=spec.name)
