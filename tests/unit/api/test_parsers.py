"""JSON bodies nested beyond API_JSON_MAX_DEPTH answer 400, never RecursionError (finding 6
of issue 11), for users' tokens and receiver tokens alike."""

from __future__ import annotations

import pytest
from rest_framework.exceptions import ParseError
from rest_framework.test import APIClient

from apps.alerts.models import Alert
from apps.alerts.services import receiver_create
from apps.api.parsers import json_depth_exceeds, json_loads_bounded

HOOK = "/api/v1/alerts/webhook/alertmanager/"


def _nested(depth: int, leaf: str = "1") -> bytes:
    return ("[" * depth + leaf + "]" * depth).encode()


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_body__user_token__400_json(client_for, roster, depth):
    response = client_for(roster.operator).post(
        "/api/v1/deployments/", _nested(depth), content_type="application/json"
    )
    assert response.status_code == 400
    assert "nested deeper than" in response.json()["detail"]


def test_deeply_nested_body__receiver_token__400_nothing_stored(roster):
    _, token = receiver_create(team=roster.team, name="am", actor=roster.admin)
    body = b'{"version": "4", "alerts": ' + _nested(1_000, "{}") + b"}"
    response = APIClient().post(
        HOOK, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert response.status_code == 400
    assert "nested deeper than" in response.json()["detail"]
    assert not Alert.objects.exists()


def test_nesting_within_limit__parsed(settings):
    settings.API_JSON_MAX_DEPTH = 8
    assert json_loads_bounded(_nested(8)) == [[[[[[[[1]]]]]]]]
    with pytest.raises(ParseError):
        json_loads_bounded(_nested(9))


def test_brackets_inside_strings__not_counted():
    text = b'{"a": "' + b"[{" * 500 + b'\\" ]]]", "b": [1, {"c": "]]]["}]}'
    assert not json_depth_exceeds(text, max_depth=3)
    assert json_depth_exceeds(b'{"a": [[[["x"]]]]}', max_depth=3)


@pytest.mark.parametrize("raw", [b"NaN", b'{"a": Infinity}', b"\xff\xfe", b"[1,"])
def test_invalid_json__parse_error(raw):
    with pytest.raises(ParseError):
        json_loads_bounded(raw)
