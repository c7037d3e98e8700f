"""The gateway agent's two calls with the team's gateway token: config (which marks the
gateway seen) and report; the team always comes from the token."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from apps.audit.models import AuditEntry
from apps.balancing import selectors
from apps.balancing.members import Member
from apps.balancing.models import Gateway, GatewayReport
from apps.balancing.render import nginx_binary
from apps.balancing.services import gateway_create
from apps.toggles.services import gateway_token_create, gateway_token_revoke
from tests.factories.inventory import DeploymentFactory
from tests.servers import binary_or_skip

pytestmark = pytest.mark.django_db

GATEWAYS = "/api/v1/balancing/gateways/"
REPORT = {"version": "b" * 64, "result": "applied", "applied_at": "2026-11-29T12:00:00Z"}


@pytest.fixture
def edge(roster: Any, monkeypatch: pytest.MonkeyPatch) -> Gateway:
    members = [Member(name="chat-0", address="10.0.0.1", port=8000)]
    monkeypatch.setattr(selectors, "deployment_members", lambda deployment: members)
    chat = DeploymentFactory(team=roster.team, name="chat")
    return gateway_create(team=roster.team, name="edge", deployments=[chat], actor=None)


def gateway_client(team: Any, name: str = "edge-host") -> tuple[APIClient, Any]:
    token, secret = gateway_token_create(team=team, name=name, actor=None)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client, token


def test_config__gateway_token_of_the_team__200_then_304_and_last_seen_set(
    roster: Any, edge: Gateway
) -> None:
    binary_or_skip(nginx_binary(), "nginx", "nginx-light")
    client, _ = gateway_client(roster.team)
    assert edge.last_seen_at is None
    before = timezone.now()
    response = client.get(f"{GATEWAYS}edge/config")
    assert response.status_code == 200
    assert "server 10.0.0.1:8000" in response.content.decode()
    edge.refresh_from_db()
    first_seen = edge.last_seen_at
    assert first_seen is not None
    assert first_seen >= before
    again = client.get(f"{GATEWAYS}edge/config", HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304
    edge.refresh_from_db()
    assert edge.last_seen_at is not None
    assert edge.last_seen_at >= first_seen


def test_config__unchanged_poll__seen_without_an_audit_entry(roster: Any, edge: Gateway) -> None:
    binary_or_skip(nginx_binary(), "nginx", "nginx-light")
    client, _ = gateway_client(roster.team)
    etag = client.get(f"{GATEWAYS}edge/config")["ETag"]
    entries = AuditEntry.objects.count()
    assert client.get(f"{GATEWAYS}edge/config", HTTP_IF_NONE_MATCH=etag).status_code == 304
    assert AuditEntry.objects.count() == entries


def test_config_and_report__gateway_token_of_another_team__404_nothing_stored(
    roster: Any, edge: Gateway
) -> None:
    client, _ = gateway_client(roster.other_team)
    assert client.get(f"{GATEWAYS}edge/config").status_code == 404
    response = client.post(f"{GATEWAYS}edge/report", REPORT, format="json")
    assert response.status_code == 404
    assert "detail" in response.json()
    edge.refresh_from_db()
    assert edge.last_seen_at is None
    assert not GatewayReport.objects.exists()


def test_report__gateway_token_of_the_team__recorded_with_its_version(
    roster: Any, edge: Gateway
) -> None:
    client, _ = gateway_client(roster.team)
    response = client.post(f"{GATEWAYS}edge/report", REPORT, format="json")
    assert response.status_code == 201, response.json()
    report = GatewayReport.objects.get(gateway=edge)
    assert (report.version, report.result) == ("b" * 64, "applied")


def test_config__revoked_or_unknown_gateway_token__401_json(roster: Any, edge: Gateway) -> None:
    client, token = gateway_client(roster.team)
    gateway_token_revoke(token=token, actor=None)
    response = client.get(f"{GATEWAYS}edge/config")
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION="Bearer lcpg_not-a-token")
    assert stranger.get(f"{GATEWAYS}edge/config").status_code == 401


def test_gateway_token__other_balancing_endpoints__not_accepted(roster: Any, edge: Gateway) -> None:
    client, _ = gateway_client(roster.team)
    assert client.get(GATEWAYS).status_code == 401
    assert client.patch(f"{GATEWAYS}{edge.pk}/", {"listen_port": 9}).status_code == 401


def test_schema__config_and_report__gateway_token_or_api_token() -> None:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    assert schema["components"]["securitySchemes"]["gatewayToken"]["scheme"] == "bearer"
    for path, method in [
        ("/api/v1/balancing/gateways/{name}/config", "get"),
        ("/api/v1/balancing/gateways/{name}/report", "post"),
    ]:
        security = schema["paths"][path][method]["security"]
        assert {"gatewayToken": []} in security
        assert {"apiToken": []} in security
    assert "304" in schema["paths"]["/api/v1/balancing/gateways/{name}/config"]["get"]["responses"]
