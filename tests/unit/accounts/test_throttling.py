"""Failed API-token attempts and admin logins are throttled per client and per key."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.accounts.services import api_token_create

pytestmark = pytest.mark.django_db

WRONG = "lcp_AAAAAAAA" + "x" * 35


@pytest.fixture
def limits(settings):
    settings.API_TOKEN_FAILURE_LIMIT = 3
    settings.API_TOKEN_FAILURE_WINDOW_S = 300
    settings.LOGIN_FAILURE_LIMIT = 3
    settings.LOGIN_FAILURE_WINDOW_S = 600


def _get(token: str, ip: str = "203.0.113.7"):
    return APIClient().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {token}", REMOTE_ADDR=ip)


def test_api_token__failures_past_limit__429_json_with_retry_after(limits, roster):
    for _ in range(3):
        assert _get(WRONG + "1").status_code == 401
    response = _get(WRONG + "2")
    assert response.status_code == 429
    assert response["Content-Type"].startswith("application/json")
    assert "Too many failed API token attempts" in response.json()["detail"]
    assert 1 <= int(response["Retry-After"]) <= 300


def test_api_token__address_locked_out__valid_token_refused_too_other_address_served(
    limits, roster
):
    secret = api_token_create(user=roster.viewer, name="ci").secret
    for _ in range(3):
        _get(f"lcp_garbage{_}")
    assert _get(secret).status_code == 429
    assert _get(secret, ip="198.51.100.9").status_code == 200


def test_api_token__one_prefix_guessed_from_many_addresses__429(limits, roster):
    for n in range(3):
        assert _get(WRONG + str(n), ip=f"198.51.100.{n}").status_code == 401
    assert _get(WRONG + "9", ip="198.51.100.50").status_code == 429
    # Another prefix from a fresh address is not affected.
    assert _get("lcp_BBBBBBBB" + "y" * 35, ip="198.51.100.51").status_code == 401


def test_api_token__successful_uses__never_throttled(limits, roster):
    secret = api_token_create(user=roster.viewer, name="ci").secret
    assert [_get(secret).status_code for _ in range(10)] == [200] * 10


def test_api_token__limit_zero__never_throttled(settings, roster):
    settings.API_TOKEN_FAILURE_LIMIT = 0
    assert {_get(WRONG).status_code for _ in range(30)} == {401}


ADMIN_LOGIN = "/admin/login/?next=/admin/"


def _login(client, username: str, password: str, ip: str = "203.0.113.7", path=ADMIN_LOGIN):
    return client.post(
        path,
        {"username": username, "password": password},
        REMOTE_ADDR=ip,
    )


@pytest.mark.parametrize("path", [ADMIN_LOGIN, "/console/login/"])
def test_admin_login__failures_past_limit__429_and_right_password_refused(limits, roster, path):
    from django.test import Client

    client = Client()
    for _ in range(3):
        response = _login(client, "root", "wrong", path=path)
        assert response.status_code == 200  # the form again, with its error
    response = _login(client, "root", "correct-horse-battery", path=path)
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 600
    assert "_auth_user_id" not in client.session


def test_admin_login__username_guessed_from_many_addresses__locked_for_that_user(limits, roster):
    from django.test import Client

    for n in range(3):
        _login(Client(), "root", "wrong", ip=f"198.51.100.{n}")
    assert _login(Client(), "root", "correct-horse-battery", ip="198.51.100.99").status_code == 429
    # The same address may still log in as someone else.
    assert _login(Client(), "alpha-admin", "x", ip="198.51.100.99").status_code == 200


def test_login_backend__locked_out__authenticate_refuses_right_password(limits, roster, rf):
    from django.contrib.auth import authenticate

    request = rf.post("/admin/login/", REMOTE_ADDR="203.0.113.8")
    for _ in range(3):
        assert authenticate(request, username="root", password="wrong") is None
    assert authenticate(request, username="root", password="correct-horse-battery") is None
    other = rf.post("/admin/login/", REMOTE_ADDR="203.0.113.9")
    assert authenticate(other, username="alpha-viewer", password="correct-horse-battery")
