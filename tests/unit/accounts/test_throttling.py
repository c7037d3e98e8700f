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
    assert 1 <= int(response["Retry-After"]) <= 300 + 30


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
    assert 1 <= int(response["Retry-After"]) <= 600 + 60
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


# The window slides: counts per tenth of it, read through the cache at chosen times.


def test_failures__just_before_and_after_a_window_boundary__counted_together(limits):
    from apps.accounts.throttling import failure_record, failures_blocked, login_limit

    rule = login_limit()  # 3 per 600 s
    boundary = 600.0 * 3_000_000
    for t in (boundary - 2, boundary - 1):
        failure_record(rule=rule, keys=["user:root"], now=t)
    assert failures_blocked(rule=rule, keys=["user:root"], now=boundary + 1) == 0
    # Counters per fixed window would have started again from zero at the boundary.
    assert failure_record(rule=rule, keys=["user:root"], now=boundary + 1) == 0
    wait = failures_blocked(rule=rule, keys=["user:root"], now=boundary + 2)
    # Free again once the bucket of the first two drops out of the eleven summed: 660 s
    # after that 60 s bucket began, which was 62 s ago.
    assert wait == 660 - 62
    assert failures_blocked(rule=rule, keys=["user:root"], now=boundary + 2 + wait - 1) > 0
    assert failures_blocked(rule=rule, keys=["user:root"], now=boundary + 2 + wait) == 0


def test_failures__a_failure__counts_for_at_least_the_window(limits):
    from apps.accounts.throttling import failure_record, failures_blocked, login_limit

    rule = login_limit()
    start = 600.0 * 3_000_002
    for t in (start, start + 59.9, start + 60):
        failure_record(rule=rule, keys=["ip:a"], now=t)
    assert failures_blocked(rule=rule, keys=["ip:a"], now=start + 60 + 599) > 0
    assert failures_blocked(rule=rule, keys=["ip:a"], now=start + 660) == 0


def test_failure_record__past_the_limit__wait_until_the_sum_falls_below_it(limits):
    from apps.accounts.throttling import failure_record, login_limit

    rule = login_limit()
    start = 600.0 * 3_000_004
    assert [failure_record(rule=rule, keys=["ip:b"], now=start + 10) for _ in range(3)] == [0] * 3
    # The fourth is over the limit; the three older ones leave when their bucket drops out
    # of the eleven summed, 660 s after it began, and one left alone is under the limit.
    assert failure_record(rule=rule, keys=["ip:b"], now=start + 130) == 530


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ([0] * 11, 0),
        ([1] + [0] * 9 + [1], 0),  # two, under the limit of three
        ([0] * 10 + [3], 7 + 100),  # the current bucket must leave: all ten bucket ends
        ([2] + [0] * 9 + [1], 7),  # the oldest leaves at the next bucket end
        ([1, 0, 2] + [0] * 7 + [1], 7 + 20),  # three bucket ends
        ([0] * 10 + [9], 107),
    ],
)
def test_wait_s__cases(counts, expected):
    from apps.accounts.throttling import wait_s

    assert wait_s(limit=3, counts=counts, bucket_end_s=7.0, width_s=10.0) == expected
