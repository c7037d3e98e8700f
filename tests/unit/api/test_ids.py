"""Ids read by hand from URLs and query strings: "²" is a digit to ``str.isdigit()`` but
not to ``int()``; it answered 500 (finding 6 of issue 11)."""

from __future__ import annotations

import pytest

from apps.api.ids import parse_id
from tests.factories.inventory import DeploymentFactory

ODD_IDS = ["%C2%B2", "%D9%A1", "%EF%BC%91", "1%C2%B2", "-1", "0x1", "9" * 30]


@pytest.mark.parametrize("odd", ODD_IDS)
@pytest.mark.parametrize(
    ("method", "template"),
    [
        ("get", "/api/v1/autoscaling/control/{}/"),
        ("post", "/api/v1/autoscaling/control/{}/pause/"),
        ("post", "/api/v1/autoscaling/control/{}/pin/"),
        ("post", "/api/v1/autoscaling/control/{}/unpin/"),
        ("get", "/api/v1/metrics/deployments/{}/series/?signal=queue_length"),
    ],
)
def test_deployment_id_in_path__not_ascii_digits__json_404(
    client_for, roster, odd, method, template
):
    DeploymentFactory(team=roster.team, id=1)
    response = getattr(client_for(roster.operator), method)(template.format(odd), {})
    assert response.status_code == 404
    assert response.json()["detail"]


@pytest.mark.parametrize("odd", ODD_IDS)
def test_fleet_summary__team_not_ascii_digits__400(client_for, roster, odd):
    response = client_for(roster.viewer).get(f"/api/v1/metrics/summary/?team={odd}")
    assert response.status_code == 400
    assert "team" in response.json()["errors"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("12", 12), ("²", None), ("\u0661", None), ("", None), (None, None), ("1" * 19, None)],
)
def test_parse_id__cases(raw, expected):
    assert parse_id(raw) == expected


@pytest.mark.parametrize("odd", ["%C2%B2", "9" * 30])
@pytest.mark.parametrize(
    "template",
    [
        "/api/v1/autoscaling/policies/{}/",
        "/api/v1/deployments/{}/",
        "/api/v1/tokens/{}/",
        "/api/v1/alerts/receivers/{}/",
        "/api/v1/logs/ingest-tokens/{}/",
        "/api/v1/metrics/deployments/{}/",
        "/api/v1/autoscaling/decisions/{}/",
    ],
)
@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_detail_route__id_beyond_any_integer__json_404(client_for, roster, odd, template, method):
    # SQLite cannot bind an integer past 2**63 - 1: the lookup raised OverflowError (500).
    response = getattr(client_for(roster.admin), method)(template.format(odd), {}, format="json")
    assert response.status_code in (404, 405)
    assert response.json()["detail"]
