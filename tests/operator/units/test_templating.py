"""The per-device template language: what it renders, and every way out it refuses."""

from __future__ import annotations

import time

import pytest

from fleet.actors.operator.templating import (
    MAX_RENDERED_CHARS,
    MAX_TEMPLATE_CHARS,
    RenderError,
    Template,
    TemplateRefused,
)

LABELS = {"site": "Paris", "tier": "edge", "items": "label-items", "app.kubernetes.io/name": "cam"}


def render(source: str, labels: dict[str, str] | None = None, device: str = "pi-01") -> str:
    return Template(source).render(device=device, labels=LABELS if labels is None else labels)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ device.id }}", "pi-01"),
        ("site={{ device.labels.site }}", "site=Paris"),
        ('{{ device.labels["app.kubernetes.io/name"] }}', "cam"),
        ("{{ device.labels.items }}", "label-items"),  # a label, not the dict method
        ('{{ device.labels.region | default("lab") }}', "lab"),
        ("{{ device.labels.site | default('lab') }}", "Paris"),
        ("{{ device.labels.site | lower }}-{{ device.labels.tier | upper }}", "paris-EDGE"),
        ('{{ device.id | replace("-", "_") }}', "pi_01"),
        ('{{ "  x " | trim }}', "x"),
        (
            '{{ device.labels.region | default(device.id) ~ "/" ~ device.labels.tier }}',
            "pi-01/edge",
        ),
        ("{{ '{{' }} literal", "{{ literal"),
        ("{% raw %}{{ not a template }}{% endraw %}", "{{ not a template }}"),
        ("a{# a comment #}b", "ab"),
        ("no template at all", "no template at all"),
    ],
)
def test_renders_the_device_values(source: str, expected: str) -> None:
    assert render(source) == expected


def test_a_missing_label_is_a_render_error_naming_it() -> None:
    template = Template("{{ device.labels.region }}")
    with pytest.raises(RenderError, match="device has no label 'region'"):
        template.render(device="pi-01", labels={})
    with pytest.raises(RenderError, match="no label 'region'"):
        Template("{{ device.labels.region | upper }}").render(device="pi-01", labels={})
    assert template.render(device="pi-01", labels={"region": "eu"}) == "eu"


@pytest.mark.parametrize(
    ("source", "refusal"),
    [
        ("{{ ''.__class__.__mro__ }}", "constant '' has no attributes"),
        ("{{ device.__class__ }}", "unknown variable 'device.__class__'"),
        ("{{ device.labels.__class__.__init__ }}", "unknown variable"),
        ("{{ device.id.__class__ }}", "unknown variable 'device.id.__class__'"),
        ("{{ self }}", "unknown variable 'self'"),
        ("{{ self._TemplateReference__context }}", "unknown variable 'self'"),
        ("{{ cycler }}", "unknown variable 'cycler'"),
        ("{{ cycler.__init__.__globals__ }}", "unknown variable 'cycler'"),
        ("{{ lipsum() }}", "a call is not part"),
        ("{{ range(10) | join }}", "unknown filter 'join'"),
        ("{{ device.id.upper() }}", "a call is not part"),
        ("{{ 'x' * 10**9 }}", "the operator '\\*'"),
        ("{{ 'x' ** 10 }}", "the operator '\\*\\*'"),
        ("{{ 'a' + 'b' }}", "the operator '\\+'"),
        ("{% for i in range(1000000000) %}x{% endfor %}", "a {% for %} loop is not part"),
        ("{% set x = 1 %}", r"{% set %} is not part"),
        ("{% if device.id %}x{% endif %}", r"an {% if %} block is not part"),
        ("{% macro m() %}x{% endmacro %}", "a macro is not part"),
        ('{% include "x" %}', "{% include %} is not part"),
        ("{{ device }}", "device is not a string"),
        ("{{ device.labels }}", "device.labels is not a string"),
        ("{{ device.labels | default('x') }}", "device.labels is not a string"),
        ("{{ 'x' | replace(device, 'y') }}", "device is not a string"),
        ("{{ device.name }}", "unknown variable 'device.name'"),
        ("{{ device.labels.a.b }}", "unknown variable 'device.labels.a.b'"),
        ("{{ device.labels[device.id] }}", "an index must be a constant string"),
        ("{{ device.id | title }}", "unknown filter 'title'"),
        ("{{ device.id | replace('a') }}", "takes 2..3 arguments"),
        ("{{ device.id | default(boolean=true) }}", "only positional arguments"),
        ("{{ device.id is defined }}", "the test 'defined'"),
        ("{{ [1, 2] }}", "List"),
        ("{{ device.id", "does not parse"),
        ("{{ }}", "does not parse"),
        ("{% endfor %}", "does not parse"),
    ],
)
def test_what_the_language_lacks_is_refused_at_compile_time(source: str, refusal: str) -> None:
    with pytest.raises(TemplateRefused, match=refusal):
        Template(source)


def test_a_template_over_its_size_is_refused() -> None:
    with pytest.raises(TemplateRefused, match=f"at most {MAX_TEMPLATE_CHARS}"):
        Template("{{ device.id }}" + "x" * MAX_TEMPLATE_CHARS)


def test_huge_output_is_refused_before_it_is_made() -> None:
    # each replace of "" multiplies the length; twelve of them would be ~10**13 characters
    source = "{{ device.id" + ' | replace("", "xxxxxxxxxx")' * 12 + " }}"
    template = Template(source)
    started = time.monotonic()
    with pytest.raises(RenderError, match=f"at most {MAX_RENDERED_CHARS}"):
        template.render(device="pi-01", labels={})
    assert time.monotonic() - started < 10  # refused on the way, never built (generous)
    with pytest.raises(RenderError, match=f"at most {MAX_RENDERED_CHARS}"):
        render("{{ device.labels.big }}", {"big": "y" * (MAX_RENDERED_CHARS + 1)})
    with pytest.raises(RenderError, match=f"at most {MAX_RENDERED_CHARS}"):
        render("{{ device.id ~ device.id }}" * 30, device="d" * 200)


def test_only_the_device_is_reachable() -> None:
    # the sandbox's getattr/getitem give nothing but labels and id
    template = Template("{{ device.labels.get }}/{{ device.labels.values }}")
    assert template.render(device="x", labels={"get": "1", "values": "2"}) == "1/2"
    with pytest.raises(RenderError, match="no label 'values'"):
        template.render(device="x", labels={"get": "1"})


@pytest.mark.parametrize(
    "source",
    [
        "{{ device.id" + "|lower" * 600 + " }}",
        "{{ " + "(" * 2000 + "device.id" + ")" * 2000 + " }}",
        "{{ device.id" + "|default(device.id" * 200 + ")" * 200 + " }}",
    ],
    ids=["600-filters", "2000-parentheses", "200-nested-defaults"],
)
def test_deep_nesting_is_refused_not_recursed_into(source: str) -> None:
    with pytest.raises(TemplateRefused, match="nests too deep"):
        Template(source)
