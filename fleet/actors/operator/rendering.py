"""Each targeted device's own desired value, rendered from a templated score.

Why it exists: a score may hold per-device templates (:mod:`.templating`); the bytes a
revision holds (the spec's score as written: its identity, what a rollout compares) are
then not what a device gets. A Deployment actor's :class:`Renderer` keeps its targets'
labels and turns a score's bytes into each device's value:

* a score without templates is its own value for every device: no copy, no work (the
  same bytes for every device, as before templates existed);
* a templated one is rendered with the device's id and labels, then validated and
  encoded as a score (its value); a device it cannot be rendered for (a label it lacks,
  a rendered image that is not an image) gets no value (None) and is listed in
  :meth:`unrenderable` with the reason, until a relabel fixes it;
* renderings are kept per device and score until its labels change, so asking again
  (every plan, every status) costs a dict lookup.

:meth:`Renderer.wrap` turns a rollout's rule (which speaks revision bytes) into one that
speaks entries: the entry a device has is read back as the revision it renders, so the
rollout compares revisions, not renderings.

Plain and synchronous. What it must never do: give a device a value rendered from
another device's labels, or an unvalidated one.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, Final

import msgspec

from fleet.contracts import DeviceId, convert_score, encode_score
from fleet.contracts.score_template import (
    FieldPath,
    field_name,
    may_hold_templates,
    put_field,
    templated_fields,
)
from fleet.errors import ContractError

from .file_sources import Unresolvable, has_references, may_reference
from .templating import RenderError, Template, TemplateRefused

UNRENDERABLE_MAX: Final = 10
REASON_MAX: Final = 256
_CACHED_SCORES: Final = 8  # the current score, the stable one, the one before: plenty

Resolve = Callable[[DeviceId, dict[str, Any]], dict[str, Any]]
"""A score's file references resolved for one device (:mod:`.file_sources`)."""
Want = Callable[[DeviceId, bytes | None], bytes | None]
""":data:`fleet.actors.operator.desired.Want` (not imported: desired -> messages -> spec
-> here would be a circle)."""


class ScoreTemplate:
    """A score's bytes with its templated strings, compiled (an error: refused)."""

    __slots__ = ("error", "fields", "references", "source")

    def __init__(self, source: bytes, fields: list[tuple[FieldPath, Template]]) -> None:
        self.source = source
        self.fields = fields
        self.error: str | None = None
        # files naming a ConfigMap or Secret: resolved per device (sealed to its key)
        self.references = False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ScoreTemplate) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)

    def render(
        self, *, device: DeviceId, labels: Mapping[str, str], resolve: Resolve | None = None
    ) -> bytes:
        """The device's value; :class:`RenderError` naming the field if it cannot be."""
        if self.error is not None:
            raise RenderError(self.error)
        tree = msgspec.json.decode(self.source)
        for path, template in self.fields:
            try:
                text = template.render(device=str(device), labels=labels)
            except RenderError as exc:
                raise RenderError(f"spec.score.{field_name(path)}: {exc}") from exc
            put_field(tree, path, text)
        if self.references:
            if resolve is None:
                raise RenderError("spec.score: files name ConfigMaps or Secrets, which this "
                                  "operator does not read")  # fmt: skip
            try:
                tree = resolve(device, tree)
            except Unresolvable as exc:
                raise RenderError(str(exc)) from None
        try:
            return encode_score(convert_score(tree))
        except ContractError as exc:
            raise RenderError(f"spec.score (rendered): {exc}") from exc


def compile_score(source: bytes, fields: Iterable[tuple[FieldPath, str]]) -> ScoreTemplate:
    """A :class:`ScoreTemplate`; :class:`TemplateRefused` naming the first bad field."""
    compiled: list[tuple[FieldPath, Template]] = []
    for path, text in fields:
        try:
            compiled.append((path, Template(text)))
        except TemplateRefused as exc:
            raise TemplateRefused(f"spec.score.{field_name(path)}: {exc}") from exc
    return ScoreTemplate(source, compiled)


def score_template(source: bytes) -> ScoreTemplate | None:
    """The template of a score's bytes (a revision's); None when it has no template.
    Total: bytes it cannot read make a template every rendering of fails."""
    refs = may_reference(source)
    if not may_hold_templates(source) and not refs:
        return None
    try:
        tree = msgspec.json.decode(source)
        fields = templated_fields(tree)
        references = refs and has_references(tree)
        if not fields and not references:
            return None
        template = compile_score(source, fields)
        template.references = references
        return template
    except (msgspec.MsgspecError, ContractError, TemplateRefused, RecursionError) as exc:
        refused = ScoreTemplate(source, [])
        refused.error = str(exc)[:REASON_MAX]
        return refused


class Renderer:
    def __init__(self, resolve: Resolve | None = None) -> None:
        self._resolve = resolve
        self._labels: dict[DeviceId, Mapping[str, str]] = {}
        self._templates: dict[bytes, ScoreTemplate | None] = {}
        # device -> {score bytes: its value, or the reason it has none}
        self._values: dict[DeviceId, dict[bytes, bytes | str]] = {}
        # device -> {a value it was given: the score bytes it was rendered from}; kept
        # across relabels, so an entry rendered from older labels is still known
        self._origins: dict[DeviceId, dict[bytes, bytes]] = {}
        self._current: bytes | None = None
        self._failing: dict[DeviceId, str] = {}  # the current score's unrenderable targets

    # -- inputs ----------------------------------------------------------------------

    def targets(
        self, labels: Mapping[DeviceId, Mapping[str, str]], removed: Iterable[DeviceId] = ()
    ) -> list[DeviceId]:
        """Targets added or relabelled, and removed: those whose value may have changed."""
        for device in removed:
            self._labels.pop(device, None)
            self._values.pop(device, None)
            self._origins.pop(device, None)
            self._failing.pop(device, None)
        changed = []
        for device, device_labels in labels.items():
            if self._labels.get(device) != device_labels:
                changed.append(device)
                self._values.pop(device, None)
            self._labels[device] = device_labels
        if self._current is not None:
            for device in changed:
                self.value(device, self._current)  # refresh its place in unrenderable
        return changed

    def seed(self, template: ScoreTemplate | None, source: bytes) -> None:
        """The current spec's score (its template compiled by the spec reader)."""
        if template is None or may_reference(source):
            template = score_template(source)  # file references make one, too
        if source != self._current:
            self._current = source
            self._failing.clear()
            self._remember(source, template)
            if template is not None:
                for device in self._labels:
                    self.value(device, source)

    @property
    def templated(self) -> bool:
        """The current score holds templates."""
        current = self._current
        return current is not None and self._template(current) is not None

    def has_templates(self, source: bytes) -> bool:
        return self._template(source) is not None

    # -- values ----------------------------------------------------------------------

    def value(self, device: DeviceId, source: bytes | None) -> bytes | None:
        """``device``'s value of the score ``source`` (None: none, or not renderable)."""
        if source is None:
            return None
        template = self._template(source)
        if template is None:
            return source
        cache = self._values.setdefault(device, {})
        got = cache.get(source)
        if got is None:
            try:
                got = template.render(
                    device=device, labels=self._labels.get(device, {}), resolve=self._resolve
                )
            except RenderError as exc:
                got = str(exc)[:REASON_MAX] or "cannot be rendered"
            if len(cache) >= _CACHED_SCORES:
                cache.clear()
            cache[source] = got
            if isinstance(got, bytes):
                origins = self._origins.setdefault(device, {})
                if len(origins) >= 2 * _CACHED_SCORES:
                    origins.clear()
                origins[got] = source
        if source == self._current:
            if isinstance(got, str):
                if device in self._labels:
                    self._failing[device] = got
            else:
                self._failing.pop(device, None)
        return got if isinstance(got, bytes) else None

    def wrap(self, want: Want, *, revisions: Iterable[bytes | None]) -> Want:
        """A rollout's rule over revision bytes as a rule over entries: an entry is read
        as the revision (of ``revisions``) whose rendering it is (with the device's
        labels now, or those it was rendered with), and a revision the rule gives is
        rendered with the device's labels now."""
        known = [r for r in revisions if r is not None and self.has_templates(r)]
        if not known:
            return want  # no template anywhere: entries are the revisions' bytes
        value, origins = self.value, self._origins

        def wrapped(device: DeviceId, entry: bytes | None) -> bytes | None:
            source = entry
            if entry is not None:
                origin = origins.get(device, {}).get(entry)
                if origin is not None and origin in known:
                    source = origin
                else:
                    for revision in known:
                        if value(device, revision) == entry:
                            source = revision
                            break
            chosen = want(device, source)
            if chosen is None:
                return None
            if chosen is entry:
                return entry  # kept as it is: an entry of no template revision
            return value(device, chosen)  # a revision's bytes: rendered for it now

        return wrapped

    def invalidate(self, devices: Collection[DeviceId] | None = None) -> None:
        """What the score's files name changed (a ConfigMap, a Secret: ``devices`` None),
        or these devices' keys did: render those targets again (the values of older
        scores too, when asked)."""
        if devices is None:
            self._values.clear()
            devices = list(self._labels)
        else:
            for device in devices:
                self._values.pop(device, None)
        if self._current is not None and self._template(self._current) is not None:
            for device in devices:
                if device in self._labels:
                    self.value(device, self._current)

    # -- what the status shows -------------------------------------------------------

    def unrenderable(self) -> list[dict[str, str]]:
        """At most :data:`UNRENDERABLE_MAX` targets the current score cannot be rendered
        for (by id), with the reason."""
        failing = self._failing
        return [
            {"device": str(d), "reason": failing[d]}
            for d in heapq.nsmallest(UNRENDERABLE_MAX, failing)
        ]

    @property
    def unrenderable_count(self) -> int:
        return len(self._failing)

    def _template(self, source: bytes) -> ScoreTemplate | None:
        if source in self._templates:
            return self._templates[source]
        template = score_template(source)
        self._remember(source, template)
        return template

    def _remember(self, source: bytes, template: ScoreTemplate | None) -> None:
        if len(self._templates) >= _CACHED_SCORES and source not in self._templates:
            current = self._current
            kept = self._templates.get(current) if current is not None else None
            self._templates.clear()
            if current is not None:
                self._templates[current] = kept
        self._templates[source] = template
