"""Ingest tokens: created by team operators and admins through the API and the admin (the
secret shown once, only its hash stored), revoked, audited."""

from __future__ import annotations

import re
from typing import Any

from django.test import Client

from apps.accounts.services import token_hash
from apps.audit.models import AuditEntry
from apps.logs.models import IngestToken
from apps.logs.selectors import ingest_token_authenticate

URL = "/api/v1/logs/ingest-tokens/"


def test_create__operator__201_secret_once_hash_stored_audited(
    roster: Any, client_for: Any
) -> None:
    response = client_for(roster.operator).post(
        URL, {"team": roster.team.pk, "name": "promtail"}, format="json"
    )
    assert response.status_code == 201, response.content
    secret = response.json()["token"]
    assert secret.startswith("lcpl_")
    stored = IngestToken.objects.get()
    assert stored.token_hash == token_hash(secret)
    assert secret not in str(list(IngestToken.objects.values()))
    assert stored.token_prefix == secret[: len(stored.token_prefix)]
    assert ingest_token_authenticate(token=secret) == stored
    listed = client_for(roster.operator).get(URL).json()
    [row] = listed["results"] if isinstance(listed, dict) else listed
    assert "token" not in row
    assert row["name"] == "promtail"
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.team_id) == ("create", roster.team.pk)


def test_create__viewer__403_nothing_created(roster: Any, client_for: Any) -> None:
    response = client_for(roster.viewer).post(
        URL, {"team": roster.team.pk, "name": "promtail"}, format="json"
    )
    assert response.status_code == 403
    assert not IngestToken.objects.exists()


def test_create__other_team__refused(roster: Any, client_for: Any) -> None:
    response = client_for(roster.outsider).post(
        URL, {"team": roster.team.pk, "name": "promtail"}, format="json"
    )
    assert response.status_code in (400, 403)
    assert not IngestToken.objects.exists()


def test_create__same_name_twice_in_team__400(roster: Any, client_for: Any) -> None:
    client = client_for(roster.admin)
    assert client.post(URL, {"team": roster.team.pk, "name": "a"}, format="json").status_code == 201
    response = client.post(URL, {"team": roster.team.pk, "name": "a"}, format="json")
    assert response.status_code == 400
    assert "unique" in str(response.json()["errors"])
    assert IngestToken.objects.count() == 1


def test_list__other_teams_tokens__not_visible(roster: Any, client_for: Any) -> None:
    client_for(roster.admin).post(URL, {"team": roster.team.pk, "name": "a"}, format="json")
    listed = client_for(roster.outsider).get(URL).json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    assert rows == []


def test_revoke__operator__unusable_listed_revoked_audited(roster: Any, client_for: Any) -> None:
    client = client_for(roster.operator)
    created = client.post(URL, {"team": roster.team.pk, "name": "a"}, format="json").json()
    viewer = client_for(roster.viewer).post(f"{URL}{created['id']}/revoke/")
    assert viewer.status_code == 403
    assert ingest_token_authenticate(token=created["token"]) is not None

    response = client.post(f"{URL}{created['id']}/revoke/")

    assert response.status_code == 200
    assert response.json()["revoked_at"] is not None
    assert ingest_token_authenticate(token=created["token"]) is None
    assert client.get(f"{URL}{created['id']}/").json()["revoked_at"] is not None
    assert list(AuditEntry.objects.order_by("id").values_list("action", flat=True)) == [
        "create",
        "update",
    ]


def test_delete__operator__unusable_then_404_audited(roster: Any, client_for: Any) -> None:
    client = client_for(roster.operator)
    created = client.post(URL, {"team": roster.team.pk, "name": "a"}, format="json").json()
    viewer = client_for(roster.viewer).delete(f"{URL}{created['id']}/")
    assert viewer.status_code == 403
    assert ingest_token_authenticate(token=created["token"]) is not None

    response = client.delete(f"{URL}{created['id']}/")

    assert response.status_code == 204
    assert ingest_token_authenticate(token=created["token"]) is None
    assert client.get(f"{URL}{created['id']}/").status_code == 404
    assert list(AuditEntry.objects.order_by("id").values_list("action", flat=True)) == [
        "create",
        "update",
        "delete",
    ]


def test_admin_add__secret_shown_once_in_message(roster: Any) -> None:
    browser = Client()
    browser.force_login(roster.superuser)
    response = browser.post(
        "/admin/logs/ingesttoken/add/",
        {"team": roster.team.pk, "name": "fluent-bit", "_save": "Save"},
        follow=True,
    )
    assert response.status_code == 200
    page = response.content.decode()
    [secret] = re.findall(r"lcpl_[A-Za-z0-9_-]{20,}", page)
    token = IngestToken.objects.get()
    assert token.token_hash == token_hash(secret)
    assert AuditEntry.objects.get().action == "create"
    again = browser.get(f"/admin/logs/ingesttoken/{token.pk}/change/").content.decode()
    assert secret not in again


def test_admin_revoke_action__token_unusable(roster: Any) -> None:
    browser = Client()
    browser.force_login(roster.superuser)
    browser.post(
        "/admin/logs/ingesttoken/add/", {"team": roster.team.pk, "name": "x", "_save": "Save"}
    )
    token = IngestToken.objects.get()
    response = browser.post(
        "/admin/logs/ingesttoken/",
        {"action": "revoke", "_selected_action": [token.pk]},
    )
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
