"""Gateway tokens: created by team operators and admins through the API (the secret shown
once, only its hash stored), listed per team, revoked and deleted (reads then answer 401),
audited."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from apps.accounts.services import token_hash
from apps.audit.models import AuditEntry
from apps.toggles.models import GatewayToken

pytestmark = pytest.mark.django_db

URL = "/api/v1/toggles/gateway-tokens/"
SNAPSHOT = "/toggles/v1/snapshot"


def _reads(secret: str) -> int:
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}").get(SNAPSHOT).status_code


def _create(client: Any, team: Any, name: str = "edge") -> Any:
    return client.post(URL, {"team": team.pk, "name": name}, format="json")


def test_create__operator__201_secret_once_hash_stored_audited(roster, client_for):
    response = _create(client_for(roster.operator), roster.team)
    assert response.status_code == 201, response.content
    secret = response.json()["token"]
    assert secret.startswith("lcpg_")
    stored = GatewayToken.objects.get()
    assert stored.token_hash == token_hash(secret)
    assert secret not in str(list(GatewayToken.objects.values()))
    assert stored.token_prefix == secret[: len(stored.token_prefix)]
    assert _reads(secret) == 200
    [row] = client_for(roster.viewer).get(URL).json()["results"]
    assert "token" not in row
    assert (row["name"], row["team"]) == ("edge", roster.team.pk)
    entry = AuditEntry.objects.get(object_type="toggles.gatewaytoken")
    assert (entry.action, entry.team_id) == ("create", roster.team.pk)


def test_create__viewer__403_nothing_created(roster, client_for):
    assert _create(client_for(roster.viewer), roster.team).status_code == 403
    assert not GatewayToken.objects.exists()


def test_create__other_team__refused(roster, client_for):
    assert _create(client_for(roster.outsider), roster.team).status_code in (400, 403)
    assert not GatewayToken.objects.exists()


@pytest.mark.parametrize("name", ["", "has space", "x" * 65])
def test_create__bad_name__400(roster, client_for, name):
    response = _create(client_for(roster.admin), roster.team, name)
    assert response.status_code == 400
    assert "name" in str(response.json())


def test_create__same_name_twice__400(roster, client_for):
    client = client_for(roster.admin)
    assert _create(client, roster.team).status_code == 201
    assert _create(client, roster.team).status_code == 400
    assert GatewayToken.objects.count() == 1


def test_list__other_teams_tokens__not_visible(roster, client_for):
    _create(client_for(roster.admin), roster.team)
    assert client_for(roster.outsider).get(URL).json()["results"] == []


def test_revoke__operator__reads_401_listed_revoked(
    roster, client_for, django_capture_on_commit_callbacks
):
    client = client_for(roster.operator)
    created = _create(client, roster.team).json()
    assert _reads(created["token"]) == 200  # now known to this process
    assert client_for(roster.viewer).post(f"{URL}{created['id']}/revoke/").status_code == 403
    assert _reads(created["token"]) == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{URL}{created['id']}/revoke/")
    assert response.status_code == 200
    assert response.json()["revoked_at"] is not None
    assert _reads(created["token"]) == 401
    assert client.get(f"{URL}{created['id']}/").status_code == 200


def test_delete__admin__reads_401_then_404(roster, client_for, django_capture_on_commit_callbacks):
    client = client_for(roster.admin)
    created = _create(client, roster.team).json()
    assert _reads(created["token"]) == 200
    with django_capture_on_commit_callbacks(execute=True):
        assert client.delete(f"{URL}{created['id']}/").status_code == 204
    assert _reads(created["token"]) == 401
    assert client.get(f"{URL}{created['id']}/").status_code == 404
    assert client.delete(f"{URL}{created['id']}/").status_code == 404
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"create", "update", "delete"} <= actions


def test_gateway_token__rest_api__401(roster, client_for):
    secret = _create(client_for(roster.admin), roster.team).json()["token"]
    response = Client(HTTP_AUTHORIZATION=f"Bearer {secret}").get("/api/v1/deployments/")
    assert response.status_code == 401


def test_revoke_and_delete__other_team__404_token_still_reads(
    roster, client_for, django_capture_on_commit_callbacks
):
    created = _create(client_for(roster.admin), roster.team).json()
    outsider = client_for(roster.outsider)
    with django_capture_on_commit_callbacks(execute=True):
        assert outsider.post(f"{URL}{created['id']}/revoke/").status_code == 404
        assert outsider.delete(f"{URL}{created['id']}/").status_code == 404
    token = GatewayToken.objects.get(pk=created["id"])
    assert token.revoked_at is None
    assert _reads(created["token"]) == 200
