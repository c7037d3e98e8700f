"""A channel's own templates are validated when saved: what the sandbox refuses, or what
goes over its limits, is a 400 naming the field and the problem — never a 500, never a
slow save."""

from __future__ import annotations

import pytest

from apps.alerts.models import Channel

pytestmark = pytest.mark.django_db

NESTED_LOOPS = (
    "{% for a in alerts %}{% for b in alerts %}{% for c in alerts %}{% for d in alerts %}"
    "{% for e in range(1000) %}{{ a.name }}{{ b.name }}{{ c.name }}{{ d.name }}"
    "{% endfor %}{% endfor %}{% endfor %}{% endfor %}{% endfor %}"
)
FOUR_RANGES = (
    "{% for a in range(100) %}{% for b in range(100) %}{% for c in range(100) %}"
    "{% for d in range(100) %}{% endfor %}{% endfor %}{% endfor %}{% endfor %}"
)


def _create(operator, **templates):
    team, client = operator
    return client.post(
        "/api/v1/alerts/channels/",
        {
            "team": team.pk,
            "name": "wh",
            "kind": "webhook",
            "config": {"webhook_url": "https://example.invalid/hook", "secret": "s3cret"},
            **templates,
        },
        format="json",
    )


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        (FOUR_RANGES, "steps"),
        (NESTED_LOOPS, "over its limits"),
        ('{{ title|ljust:"5000000" }}', "line 1"),
        ("{{ title|ljust(5000000) }}", "No filter named 'ljust'"),
        ("{{ title.ljust(5000000) }}", "65,536"),
        ("{{ title|center(5000000) }}", "65,536"),
        ("{{ title * 5000000 }}", "65,536"),
        ("{{ '{:>999999999}'.format(title) }}", "unsafe"),
        ("{{ '%0999999999d'|format(1) }}", "width"),
        ('{% include "../x" %}', "{% include %} is not available"),
        ('{% import "x" as x %}', "{% import %} is not available"),
        ('{% extends "base.txt" %}', "{% extends %} is not available"),
        ("{% for i in range(5000) %}x{% endfor %}", "range()"),
        ("{% for i in range(1000) %}{{ title * 60 }}{% endfor %}", "65,536 characters"),
        ("line one\n{% if %}", "line 2"),
    ],
)
def test_channel__body_template_refused_by_sandbox_or_over_limits__400_naming_it(
    operator, template, fragment
):
    response = _create(operator, body_template=template)
    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    assert set(errors) == {"body_template"}
    assert fragment in errors["body_template"][0]
    assert not Channel.objects.exists()


def test_channel__title_template_with_include__400_not_500(operator):
    response = _create(operator, title_template='{% include "../../etc/passwd" %}')
    assert response.status_code == 400
    assert "include" in response.json()["errors"]["title_template"][0]


def test_channel__jinja_template_within_limits__saved(operator):
    body = (
        "{% for a in alerts %}{{ loop.index }}. {{ a.name }} ({{ a.severity_label }})"
        "{% for kv in a.labels %} {{ kv[0] }}={{ kv[1] }}{% endfor %}\n{% endfor %}"
        "{{ omitted }} more alert{{ omitted|pluralize }}"
    )
    response = _create(operator, body_template=body, title_template="{{ title|upper }}")
    assert response.status_code == 201, response.content
    assert Channel.objects.get().body_template == body


def test_migration_to_jinja__django_overrides__converted_or_left_for_the_fallback(operator):
    import importlib

    from django.apps import apps

    from apps.integrations.chat import sample_notification, transport_for
    from tests.unit.integrations.chat.conftest import CONFIGS

    migration = importlib.import_module("apps.alerts.migrations.0003_channel_templates_to_jinja")
    team, _ = operator
    mechanical = Channel.objects.create(
        team=team,
        name="mechanical",
        kind="webhook",
        config={},
        body_template="{% for a in alerts %}{{ a.name }}{% if not forloop.last %}, {% endif %}"
        '{% empty %}none{% endfor %} [{{ group_labels|join:"; " }}]',
    )
    hopeless = Channel.objects.create(
        team=team, name="hopeless", kind="webhook", config={}, body_template="{% url 'x' %}"
    )
    migration._to_jinja(apps, None)
    mechanical.refresh_from_db()
    hopeless.refresh_from_db()
    assert "loop.last" in mechanical.body_template
    assert hopeless.body_template == "{% url 'x' %}"
    text = (
        transport_for("webhook", CONFIGS["webhook"], body_template=mechanical.body_template)
        .render(sample_notification())
        .text
    )
    assert text.startswith("LLMHighTimeToFirstToken, LLMHighTimeToFirstToken [")
