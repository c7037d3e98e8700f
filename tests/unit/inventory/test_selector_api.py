"""``prometheus_selector`` through the API: stored so that it means what the user wrote, and
what Prometheus would refuse answered 400 on the field."""

from __future__ import annotations

import pytest

from apps.inventory.label_matchers import parse_matchers
from apps.inventory.models import Deployment
from tests.factories.inventory import deployment_payload

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(roster, client_for):
    return client_for(roster.operator)


def _deployment(team, selector):
    return deployment_payload(team, prometheus_selector=selector)


@pytest.mark.parametrize(
    ("typed", "stored", "value"),
    [
        (r'{deployment="caf\u00e9"}', '{deployment="café"}', "café"),
        (r'{deployment="\x41\102C"}', '{deployment="ABC"}', "ABC"),
        (r"{deployment='it\'s'}", """{deployment="it's"}""", "it's"),
        ("{deployment=`a\\b`}", r'{deployment="a\\b"}', "a\\b"),
        (r'{deployment=~"chat-\\d+"}', r'{deployment=~"chat-\\d+"}', r"chat-\d+"),
        ("{deployment=~`chat-\\d+`}", r'{deployment=~"chat-\\d+"}', r"chat-\d+"),
    ],
)
def test_deployment__selector_with_escapes__stored_with_the_same_meaning(
    roster, operator, typed, stored, value
):
    response = operator.post("/api/v1/deployments/", _deployment(roster.team, typed), format="json")
    assert response.status_code == 201, response.content
    assert response.json()["prometheus_selector"] == stored
    saved = Deployment.objects.get().prometheus_selector
    assert saved == stored
    assert parse_matchers(saved)[0].value == value == parse_matchers(typed)[0].value


@pytest.mark.parametrize(
    ("selector", "fragment"),
    [
        (r'{deployment=~"(?<=x)chat"}', "lookbehind assertions are not supported"),
        (r'{deployment=~"chat(?!-x)"}', "negative lookahead assertions are not supported"),
        (r'{deployment=~"(c)\\1hat"}', "backreferences are not supported"),
        (r'{deployment=~"c*+hat"}', "possessive quantifiers are not supported"),
        (r'{deployment=~"chat-\d+"}', r"unknown escape sequence \d"),
        (r'{deployment="caf\u00g9"}', r"\u takes 4 hexadecimal digits"),
        (r'{deployment="\ud800"}', "not a valid Unicode code point"),
    ],
)
def test_deployment__selector_prometheus_refuses__400_on_prometheus_selector(
    roster, operator, selector, fragment
):
    response = operator.post(
        "/api/v1/deployments/", _deployment(roster.team, selector), format="json"
    )
    assert response.status_code == 400, response.content
    messages = response.json()["errors"]["prometheus_selector"]
    assert fragment in " ".join(messages)
    assert not Deployment.objects.exists()
