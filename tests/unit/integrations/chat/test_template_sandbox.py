"""Notification templates run in a bounded Jinja2 sandbox: what a template may reach, and
the limits on work, output and value sizes, at validation and at every render."""

from __future__ import annotations

import re

import pytest
from jinja2 import TemplateAssertionError

from apps.integrations.chat import sample_notification, transport_for, validate_template
from apps.integrations.chat.rendering import USER_LIMITS, View, render_text
from apps.integrations.chat.sandbox import (
    Limits,
    NotificationSandbox,
    TemplateLimitError,
    render_bounded,
)

from .conftest import CONFIGS, alert, notification, within_platform_limits

HEAVY = (
    "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}"
    "{% for d in range(1000) %}{% endfor %}{% endfor %}{% endfor %}{% endfor %}"
)


def _render(text: str, limits: Limits = USER_LIMITS, **context: object) -> tuple[str, bool]:
    return render_bounded(NotificationSandbox().from_string(text), dict(context), limits)


def test_sandbox__python_internals__not_reachable() -> None:
    assert _render("{{ ''.__class__.__mro__ }}{{ title.__init__ }}", title="t") == ("", False)
    with pytest.raises(ValueError, match="unsafe"):
        validate_template("{{ alerts.append(1) }}")
    with pytest.raises(ValueError, match="unsafe"):
        validate_template("{{ title.format() }}")


@pytest.mark.parametrize(
    "text",
    [
        '{% include "../x" %}',
        '{% from "x" import y %}',
        '{% import "x" as y %}',
        '{% extends "x" %}',
        "{% for a in alerts recursive %}{{ loop(a) }}{% endfor %}",
    ],
)
def test_validate_template__other_templates_or_recursive_loops__refused_with_line(
    text: str,
) -> None:
    with pytest.raises(ValueError, match=r"line 1: .* not available"):
        validate_template(text)


def test_validate_template__longer_than_source_limit__refused() -> None:
    with pytest.raises(ValueError, match="16,000"):
        validate_template("x" * (USER_LIMITS.source_chars + 1))


def test_render__steps_budget__stops_nested_loops_at_the_same_count_every_time() -> None:
    limits = Limits(steps=500)
    for _ in range(2):
        with pytest.raises(TemplateLimitError, match="500 steps"):
            _render(HEAVY, limits)


def test_render__macro_fan_out__stopped_by_steps() -> None:
    text = (
        "{% macro m(n) %}{% if n %}{{ m(n - 1) }}{{ m(n - 1) }}{% endif %}{% endmacro %}{{ m(60) }}"
    )
    with pytest.raises(TemplateLimitError, match="steps"):
        _render(text, Limits(steps=1_000))


def test_render__output_limit__enforced_while_rendering_text_kept_up_to_it() -> None:
    produced: list[int] = []

    def numbers() -> list[int]:
        produced.append(1)
        return list(range(10))

    text, cut = _render(
        "{% for i in range(1000) %}{{ chunk }}{{ numbers() }}{% endfor %}",
        Limits(output_chars=1_000),
        chunk="y" * 100,
        numbers=numbers,
    )
    assert cut
    assert len(text) <= 1_000
    assert len(produced) < 20  # stopped at the limit, not after 1000 iterations


@pytest.mark.parametrize(
    "text",
    [
        "{% set x %}{% for i in range(1000) %}{{ chunk }}{% endfor %}{% endset %}{{ x|length }}",
        "{% macro m() %}{% for i in range(1000) %}{{ chunk }}{% endfor %}{% endmacro %}{{ 1 }}"
        "{% set y = m() %}",
    ],
)
def test_render__output_captured_in_blocks_and_macros__counted_too(text: str) -> None:
    _, cut = _render(text, Limits(output_chars=10_000), chunk="z" * 100)
    assert cut


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{{ title * 1000000 }}", "repeating"),
        ("{{ [title] * 1000000 }}", "repeating"),
        ("{{ title.ljust(5000000) }}", "ljust"),
        ("{{ title.zfill(5000000) }}", "zfill"),
        ("{{ title|center(5000000) }}", "center"),
        ("{{ title|indent(5000000) }}", "indent"),
        ("{{ (title * 1000).replace('x', title * 1000) }}", "replace"),
        ("{% set a = title * 60000 %}{{ a ~ a }}", "~"),
        ("{% set a = title * 60000 %}{{ [a, a]|join }}", "join"),
        ("{% set a = title * 60000 %}{{ a + a }}", "joining"),
        ("{{ '%099999999d' % 1 }}", "width"),
        ("{{ 7 ** 100000 }}", "power"),
        ("{{ range(100000)|list }}", "range"),
        ("{{ alerts|batch(1000000, 'x')|list }}", "batch"),
        ("{{ range(1000)|join(title * 60000) }}", "join"),
        ("{{ (title * 60000).join(range(1000)|map('string')) }}", "str.join"),
        ("{{ (title * 5000)|wordwrap(1, true, title * 60000) }}", "wordwrap"),
        ("{{ alerts|tojson(indent=1000000) }}", "indent"),
        ("{% set l = [title] * 10000 %}{{ [l, l, l]|sum(start=[]) }}", "sum"),
        ("{% set a = 2 ** 200 %}{{ a * a }}", "bits"),
        ("{{ title|urlize }}", "urlize"),
    ],
)
def test_render__operations_that_would_explode__refused_before_building(
    text: str, fragment: str
) -> None:
    with pytest.raises((TemplateLimitError, TemplateAssertionError), match=re.escape(fragment)):
        _render(text, title="x", alerts=[1, 2])


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_render__stored_template_over_the_step_budget__built_in_used_instead(kind: str) -> None:
    transport = transport_for(kind, CONFIGS[kind], body_template=HEAVY)
    message = transport.render(sample_notification())
    assert "LLMHighTimeToFirstToken" in message.text or kind == "teams"
    assert within_platform_limits(kind, message.payload)


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_render__stored_template_with_huge_output__cut_then_fitted_to_platform(kind: str) -> None:
    big = (
        "{% for i in range(1000) %}{% for a in alerts %}{{ a.name }} {{ a.summary }}\n"
        "{% endfor %}{% endfor %}"
    )
    transport = transport_for(kind, CONFIGS[kind], body_template=big)
    n = notification([alert(i, summary="s" * 200) for i in range(20)])
    message = transport.render(n)
    assert within_platform_limits(kind, message.payload)
    assert message.listed + message.summarised == 20


def test_render_text__override_output_over_the_limit__cut_at_it() -> None:
    from apps.integrations.chat.rendering import compile_template

    body = compile_template("{% for i in range(1000) %}{{ title }}{{ description }}{% endfor %}")
    rendered = render_text(
        sample_notification(), template_name="webhook.txt", view=View(), body_template=body
    )
    assert 0 < len(rendered.body) <= USER_LIMITS.output_chars


def test_render__django_template_stored_before_jinja__built_in_used_channel_kept_working() -> None:
    legacy = (
        "{% for a in alerts %}{{ a.name }}{% if not forloop.last %}, {% endif %}{% endfor %}"
        '{{ x|join:", " }}'
    )
    message = transport_for("webhook", CONFIGS["webhook"], body_template=legacy).render(
        sample_notification()
    )
    assert "LLMHighTimeToFirstToken" in message.text
