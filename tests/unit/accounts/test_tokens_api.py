"""API tokens: issued once, stored hashed, accepted as Bearer until revoked or expired."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import ApiToken
from apps.accounts.services import api_token_create
from apps.audit.models import AuditAction, AuditEntry
from tests.assertions import nothing_stored
from tests.factories.accounts import UserFactory

pytestmark = pytest.mark.django_db


def _bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def _assert_bearer_refused(secret: str, reason: str) -> None:
    response = _bearer(secret).get("/api/v1/me/")
    assert response.status_code == 401
    assert reason in response.json()["detail"]


@pytest.fixture
def issued(client_for):
    """A token created through the API: (owner, its client, response body)."""
    owner = UserFactory(username="owner")
    client = client_for(owner)
    response = client.post("/api/v1/tokens/", {"name": "ci-pipeline", "expires_in_days": 30})
    assert response.status_code == 201, response.json()
    return owner, client, response.json()


def test_create__secret_returned_once__later_reads_never_show_it(issued):
    _, client, body = issued
    assert body["token"].startswith("lcp_")
    assert body["prefix"] == body["token"][:12]
    assert body["is_active"] is True
    detail = client.get(f"/api/v1/tokens/{body['id']}/").json()
    listing = client.get("/api/v1/tokens/").json()
    assert "token" not in detail
    assert [set(row) & {"token", "key_hash"} for row in listing["results"]] == [set()]
    assert body["token"] not in str(detail) + str(listing)


def test_create__stored_row__holds_sha256_of_secret_not_the_secret(issued):
    _, _, body = issued
    row = ApiToken.objects.get(pk=body["id"])
    assert row.key_hash == hashlib.sha256(body["token"].encode()).hexdigest()
    stored = [str(v) for v in ApiToken.objects.filter(pk=body["id"]).values().first().values()]
    assert not any(body["token"] in value for value in stored)


def test_bearer__valid_token__authenticates_as_owner_and_records_use(issued):
    owner, _, body = issued
    response = _bearer(body["token"]).get("/api/v1/me/")
    assert response.status_code == 200
    assert response.json()["username"] == owner.username
    assert ApiToken.objects.get(pk=body["id"]).last_used_at is not None


def test_bearer__token_keyword__accepted_too(issued):
    _, _, body = issued
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {body['token']}")
    assert client.get("/api/v1/me/").status_code == 200


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        ("Bearer lcp_not-a-real-token", "Invalid API token"),
        ("Bearer", "Malformed"),
        ("Bearer a b", "Malformed"),
    ],
)
def test_bearer__bad_header__401_with_reason(db, header, fragment):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/me/")
    assert response.status_code == 401
    assert fragment in response.json()["detail"]


def test_bearer__expired_token__401_says_expired(issued):
    _, _, body = issued
    ApiToken.objects.filter(pk=body["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    _assert_bearer_refused(body["token"], "expired")


def test_bearer__inactive_user__401(issued):
    owner, _, body = issued
    owner.is_active = False
    owner.save(update_fields=["is_active"])
    _assert_bearer_refused(body["token"], "inactive")


def test_bearer__revoked_token__401_says_revoked(issued):
    _, client, body = issued
    url = f"/api/v1/tokens/{body['id']}/"
    assert client.post(f"{url}revoke/").status_code == 200
    assert ApiToken.objects.get(pk=body["id"]).revoked_at is not None
    assert client.get(url).json()["is_active"] is False
    _assert_bearer_refused(body["token"], "revoked")


def test_token_delete__then_get_and_use__404_and_401(issued):
    _, client, body = issued
    url = f"/api/v1/tokens/{body['id']}/"
    assert client.delete(url).status_code == 204
    assert client.get(url).status_code == 404
    assert body["id"] not in [row["id"] for row in client.get("/api/v1/tokens/").json()["results"]]
    assert _bearer(body["token"]).get("/api/v1/me/").status_code == 401
    assert AuditEntry.objects.filter(action=AuditAction.DELETE, object_id=str(body["id"])).exists()


@pytest.mark.parametrize("method", ["get", "delete", "revoke"])
def test_other_users_token__any_access__404(issued, client_for, method):
    _, _, body = issued
    stranger = client_for(UserFactory(username="stranger"))
    url = f"/api/v1/tokens/{body['id']}/"
    if method == "revoke":
        response = stranger.post(f"{url}revoke/")
    else:
        response = getattr(stranger, method)(url)
    assert response.status_code == 404
    assert ApiToken.objects.get(pk=body["id"]).revoked_at is None
    assert stranger.get("/api/v1/tokens/").json()["count"] == 0


def test_list__own_tokens_only(issued, client_for):
    _, client, body = issued
    api_token_create(user=UserFactory(username="someone-else"), name="theirs")
    assert [row["id"] for row in client.get("/api/v1/tokens/").json()["results"]] == [body["id"]]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "x", "expires_at": "2000-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "x", "expires_in_days": 0}, "expires_in_days"),
        (
            {"name": "x", "expires_in_days": 5, "expires_at": "2999-01-01T00:00:00Z"},
            "expires_in_days",
        ),
        ({}, "name"),
    ],
)
def test_create__bad_expiry_or_missing_name__400_with_field_message(client_for, db, payload, field):
    client = client_for(UserFactory())
    with nothing_stored():
        response = client.post("/api/v1/tokens/", payload)
    assert response.status_code == 400
    assert response.json()["errors"][field]
    assert not ApiToken.objects.exists()


def test_token_authenticated_request__writes_follow_owners_roles(roster):
    issued = api_token_create(user=roster.viewer, name="read-only")
    response = _bearer(issued.secret).patch(
        f"/api/v1/teams/{roster.team.pk}/", {"description": "x"}
    )
    assert response.status_code == 403
