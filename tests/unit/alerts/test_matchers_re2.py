"""Regexes in silences, routes and inhibit rules are RE2's: what Alertmanager refuses is a
400 naming the field, and a pathological pattern cannot stall the alert listing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.alerts.models import InhibitRule, Route, Silence
from apps.alerts.services import receiver_create

pytestmark = pytest.mark.django_db

HOOK = "/api/v1/alerts/webhook/alertmanager/"

# (selector string, list-of-objects value, what the 400 must say)
REFUSED = [
    ('{alertname=~"(?<=x)y"}', "(?<=x)y", "lookbehind assertions are not supported"),
    ('{alertname=~"(?<!x)y"}', "(?<!x)y", "negative lookbehind assertions are not supported"),
    ('{alertname=~"x(?=y)"}', "x(?=y)", "lookahead assertions are not supported"),
    ('{alertname=~"(x)\\\\1"}', "(x)\\1", "backreferences are not supported"),
    ('{alertname=~"x*+"}', "x*+", "possessive quantifiers are not supported"),
    ('{alertname=~"(?>x)"}', "(?>x)", "atomic groups are not supported"),
    ('{alertname=~"x\\\\Z"}', "x\\Z", "invalid escape sequence"),
    ('{alertname=~"a{1001}"}', "a{1001}", "invalid repetition size"),
]
IDS = ["lookbehind", "negative-lookbehind", "lookahead", "backreference", "possessive", "atomic"]
IDS += ["perl-escape", "repetition"]


def _silence(team, matchers):
    now = timezone.now()
    return {
        "team": team.pk,
        "matchers": matchers,
        "starts_at": now.isoformat(),
        "ends_at": (now + timedelta(hours=1)).isoformat(),
        "comment": "maintenance",
    }


def _errors(response, field):
    assert response.status_code == 400, response.content
    messages = response.json()["errors"][field]
    return " ".join(messages) if isinstance(messages, list) else str(messages)


@pytest.mark.parametrize(("selector", "raw", "fragment"), REFUSED, ids=IDS)
def test_silence__regex_re2_refuses__400_naming_matchers(operator, selector, raw, fragment):
    team, client = operator
    for matchers in (selector, [{"name": "alertname", "op": "=~", "value": raw}]):
        response = client.post("/api/v1/alerts/silences/", _silence(team, matchers), format="json")
        message = _errors(response, "matchers")
        assert "invalid regular expression for 'alertname'" in message
        assert fragment in message
    assert not Silence.objects.exists()


@pytest.mark.parametrize(("selector", "raw", "fragment"), REFUSED, ids=IDS)
def test_route__regex_re2_refuses__400_naming_matchers(operator, selector, raw, fragment):
    team, client = operator
    body = {"team": team.pk, "name": "r", "channels": [], "matchers": selector}
    response = client.post("/api/v1/alerts/routes/", body, format="json")
    assert fragment in _errors(response, "matchers")
    assert not Route.objects.exists()


@pytest.mark.parametrize("field", ["source_matchers", "target_matchers"])
@pytest.mark.parametrize(("selector", "raw", "fragment"), REFUSED, ids=IDS)
def test_inhibit_rule__regex_re2_refuses__400_naming_field(
    operator, selector, raw, fragment, field
):
    team, client = operator
    body = {
        "team": team.pk,
        "name": "cluster down",
        "source_matchers": '{alertname="ClusterDown"}',
        "target_matchers": '{severity="warning"}',
        "equal": ["cluster"],
        field: [{"name": "alertname", "value": raw, "isRegex": True}],
    }
    response = client.post("/api/v1/alerts/inhibit-rules/", body, format="json")
    assert fragment in _errors(response, field)
    assert not InhibitRule.objects.exists()


def test_silence__string_escape_promql_refuses__400_naming_matchers(operator):
    team, client = operator
    response = client.post(
        "/api/v1/alerts/silences/", _silence(team, r'{alertname=~"chat-\d+"}'), format="json"
    )
    message = _errors(response, "matchers")
    assert r"unknown escape sequence \d" in message
    assert "backtick" in message


def test_alert_list__silence_with_nested_quantifier__answers_and_silences_the_right_alerts(
    operator,
):
    """``alertname=~"(a+)+$"`` against an alertname of 5,000 a's and a "!" would need about
    2**5000 steps of a backtracking engine; the listing answers, and answers right."""
    team, client = operator
    created = client.post(
        "/api/v1/alerts/silences/", _silence(team, '{alertname=~"(a+)+$"}'), format="json"
    )
    assert created.status_code == 201, created.content
    _, token = receiver_create(team=team, name="am", actor=None)
    names = ["a" * 5000 + "!", "a" * 5000, "b"]
    alerts = [
        {
            "status": "firing",
            "labels": {"alertname": name},
            "annotations": {},
            "startsAt": "2026-11-23T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
        }
        for name in names
    ]
    hook = APIClient().post(
        HOOK,
        {"version": "4", "status": "firing", "receiver": "cp", "groupLabels": {}, "alerts": alerts},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert hook.status_code == 200, hook.content
    listed = client.get("/api/v1/alerts/?page_size=10")
    assert listed.status_code == 200
    silenced = {a["labels"]["alertname"]: a["silenced_by"] for a in listed.json()["results"]}
    assert silenced == {
        "a" * 5000 + "!": None,
        "a" * 5000: created.json()["id"],
        "b": None,
    }
