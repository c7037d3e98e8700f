"""The gateway read path: OFREP evaluation (single and bulk), snapshots with ETags, the
change stream, its errors (all JSON), and no database query when nothing changed."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.toggles import readcache
from apps.toggles.models import Toggle
from apps.toggles.services import toggle_override_set, toggle_update
from tests.factories.accounts import TeamFactory
from tests.factories.inventory import DeploymentFactory
from tests.factories.toggles_read import gateway_secret, sample_toggles, waiting_soon

pytestmark = pytest.mark.django_db

FLAGS = "/ofrep/v1/evaluate/flags"
SNAPSHOT = "/toggles/v1/snapshot"
CHANGES = "/toggles/v1/changes"


@pytest.fixture
def team() -> Any:
    team = TeamFactory(slug="gw")
    sample_toggles(team, deployment=DeploymentFactory(team=team, name="chat"))
    return team


@pytest.fixture
def gateway(team: Any) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {gateway_secret(team)}")


def _post(client: Client, path: str, body: Any, **headers: Any) -> Any:
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.post(path, data=data, content_type="application/json", **headers)


# --------------------------------------------------------------------------- OFREP single


@pytest.mark.parametrize(
    ("key", "context", "value", "reason", "variant"),
    [
        ("streaming", {}, True, "DEFAULT", "default"),
        ("streaming", {"tier": "free"}, False, "TARGETING_MATCH", "free-tier"),
        ("max_output_tokens", {"priority": "batch"}, 128, "TARGETING_MATCH", "rule-1"),
        ("max_output_tokens", {"deployment": "chat"}, 64, "STATIC", "default"),
        ("banner", {}, "all good", "STATIC", "default"),
        ("limits", {}, {"rpm": 60, "models": ["small"]}, "STATIC", "default"),
    ],
)
def test_ofrep_flag__context__value_reason_variant(gateway, key, context, value, reason, variant):
    response = _post(gateway, f"{FLAGS}/{key}", {"context": {"targetingKey": "u1", **context}})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["key"], body["value"], body["reason"], body["variant"]) == (
        key, value, reason, variant,
    )  # fmt: skip
    assert body["metadata"]["preset"] in ("custom", "max_output_tokens")


def test_ofrep_flag__split__same_key_same_variant(gateway):
    answers = {
        _post(gateway, f"{FLAGS}/model_size", {"context": {"targetingKey": "user-7"}}).json()[
            "variant"
        ]
        for _ in range(3)
    }
    assert len(answers) == 1
    assert answers <= {"small", "large"}


def test_ofrep_flag__split_without_targeting_key__400_targeting_key_missing(gateway):
    response = _post(gateway, f"{FLAGS}/model_size", {"context": {}})
    assert response.status_code == 400
    body = response.json()
    assert (body["key"], body["errorCode"]) == ("model_size", "TARGETING_KEY_MISSING")
    assert body["errorDetails"]


def test_ofrep_flag__override__level_served_to_all(
    gateway, team, django_capture_on_commit_callbacks
):
    toggle = Toggle.objects.get(team=team, deployment=None, key="max_output_tokens")
    with django_capture_on_commit_callbacks(execute=True):
        toggle_override_set(toggle=toggle, value=256, level=2, source="policy:gpu", reason="x")
    body = _post(gateway, f"{FLAGS}/max_output_tokens", {"context": {"priority": "low"}}).json()
    assert (body["value"], body["variant"], body["reason"]) == (256, "level-2", "STATIC")
    assert body["metadata"]["degradationLevel"] == 2


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "PARSE_ERROR"),
        (b"[1, 2]", "PARSE_ERROR"),
        (b"\xff\xfe", "PARSE_ERROR"),
        (b"[" * 100_000, "PARSE_ERROR"),
        ({"context": "tier=free"}, "INVALID_CONTEXT"),
        ({"context": [1]}, "INVALID_CONTEXT"),
        ({"context": {"targetingKey": 42}}, "INVALID_CONTEXT"),
        ({"context": {"deployment": ["chat"]}}, "INVALID_CONTEXT"),
    ],
)
def test_ofrep_flag__bad_body__400_json_error_code(gateway, body, code):
    response = _post(gateway, f"{FLAGS}/streaming", body)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    payload = response.json()
    assert (payload["key"], payload["errorCode"]) == ("streaming", code)
    assert payload["errorDetails"]


def test_ofrep_flag__empty_body__evaluated_with_empty_context(gateway):
    response = _post(gateway, f"{FLAGS}/banner", b"")
    assert response.status_code == 200
    assert response.json()["value"] == "all good"


def test_ofrep_flag__unknown_key__404_flag_not_found(gateway):
    response = _post(gateway, f"{FLAGS}/nope", {"context": {}})
    assert response.status_code == 404
    body = response.json()
    assert (body["key"], body["errorCode"]) == ("nope", "FLAG_NOT_FOUND")
    assert "nope" in body["errorDetails"]


def test_ofrep_flag__get__405_json(gateway):
    response = gateway.get(f"{FLAGS}/streaming")
    assert response.status_code == 405
    assert response.json()["errorCode"] == "GENERAL"


@pytest.mark.parametrize("header", ["", "Bearer lcpg_wrong", "Basic dXNlcjpwYXNz", "Bearer"])
def test_ofrep_flag__missing_or_wrong_token__401_json(team, header):
    client = Client(HTTP_AUTHORIZATION=header) if header else Client()
    response = _post(client, f"{FLAGS}/streaming", {"context": {}})
    assert response.status_code == 401
    assert response.json()["errorCode"] == "GENERAL"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_ofrep_flag__api_token__401(team, roster):
    from apps.accounts.services import api_token_create

    issued = api_token_create(user=roster.admin, name="debug")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
    assert _post(client, f"{FLAGS}/streaming", {}).status_code == 401


def test_ofrep_flag__other_teams_token__cannot_see_this_team(team):
    other = TeamFactory(slug="gw-other")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {gateway_secret(other)}")
    response = _post(client, f"{FLAGS}/streaming", {"context": {"team": "gw"}})
    assert response.status_code == 404
    assert _post(client, FLAGS, {}).json() == {"flags": []}


def test_ofrep_flag__many_wrong_tokens__429_retry_after(team, settings):
    settings.API_TOKEN_FAILURE_LIMIT = 3
    client = Client(HTTP_AUTHORIZATION="Bearer lcpg_guess")
    statuses = [_post(client, f"{FLAGS}/streaming", {}).status_code for _ in range(5)]
    assert statuses[:3] == [401, 401, 401]
    last = _post(client, f"{FLAGS}/streaming", {})
    assert last.status_code == 429
    assert int(last["Retry-After"]) >= 1
    assert last.json()["errorCode"] == "GENERAL"


# --------------------------------------------------------------------------- OFREP bulk


def test_ofrep_bulk__all_flags_errors_inline_etag(gateway):
    response = _post(gateway, FLAGS, {"context": {"tier": "free"}})
    assert response.status_code == 200
    flags = {flag["key"]: flag for flag in response.json()["flags"]}
    assert set(flags) == {"streaming", "max_output_tokens", "banner", "limits", "model_size"}
    assert flags["streaming"]["value"] is False
    assert flags["model_size"]["errorCode"] == "TARGETING_KEY_MISSING"
    assert "value" not in flags["model_size"]
    assert response["ETag"].startswith('"')


def test_ofrep_bulk__deployment_context__deployment_toggle_wins(gateway):
    body = _post(gateway, FLAGS, {"context": {"targetingKey": "u", "deployment": "chat"}}).json()
    flags = {flag["key"]: flag for flag in body["flags"]}
    assert flags["max_output_tokens"]["value"] == 64
    assert flags["max_output_tokens"]["metadata"]["deployment"] == "chat"


def test_ofrep_bulk__if_none_match__304_until_change(
    gateway, team, django_capture_on_commit_callbacks
):
    request = {"context": {"targetingKey": "u"}}
    first = _post(gateway, FLAGS, request)
    etag = first["ETag"]
    again = _post(gateway, FLAGS, request, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert again["ETag"] == etag
    assert again.content == b""
    other_context = _post(
        gateway, FLAGS, {"context": {"targetingKey": "v"}}, HTTP_IF_NONE_MATCH=etag
    )
    assert other_context.status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        toggle_update(toggle=Toggle.objects.get(key="banner"), actor=None, value="degraded")
    changed = _post(gateway, FLAGS, request, HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200
    assert changed["ETag"] != etag
    assert {f["key"]: f.get("value") for f in changed.json()["flags"]}["banner"] == "degraded"


@pytest.mark.parametrize(
    ("body", "code"),
    [(b"{", "PARSE_ERROR"), (b'"x"', "PARSE_ERROR"), ({"context": 3}, "INVALID_CONTEXT")],
)
def test_ofrep_bulk__bad_body__400_json(gateway, body, code):
    response = _post(gateway, FLAGS, body)
    assert response.status_code == 400
    assert response.json()["errorCode"] == code


# --------------------------------------------------------------------------- no database


def test_read_path__second_request_unchanged__no_database_query(gateway, django_assert_num_queries):
    request = {"context": {"targetingKey": "u", "deployment": "chat"}}
    assert _post(gateway, FLAGS, request).status_code == 200
    assert gateway.get(SNAPSHOT).status_code == 200
    with django_assert_num_queries(0):
        assert _post(gateway, FLAGS, request).status_code == 200
        assert _post(gateway, f"{FLAGS}/streaming", request).status_code == 200
        snapshot = gateway.get(SNAPSHOT)
        assert gateway.get(SNAPSHOT, HTTP_IF_NONE_MATCH=snapshot["ETag"]).status_code == 304
        assert gateway.get(CHANGES, {"version": 10**6, "wait": 0}).status_code == 304


def test_read_path__change__reread_once(gateway, team, django_capture_on_commit_callbacks):
    assert gateway.get(SNAPSHOT).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        toggle_update(toggle=Toggle.objects.get(key="banner"), actor=None, value="degraded")
    with CaptureQueriesContext(connection) as queries:
        body = gateway.get(SNAPSHOT).json()
    assert 0 < len(queries) <= 3
    assert {t["key"]: t["value"] for t in body["toggles"]}["banner"] == "degraded"


def test_read_path__version_missing_in_cache__read_from_database(gateway, team):
    first = gateway.get(SNAPSHOT)
    readcache.forget()  # the shared cache lost every key; process memory too
    again = gateway.get(SNAPSHOT, HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304


def test_read_path__revoked_token__401_on_next_request(
    gateway, team, django_capture_on_commit_callbacks
):
    from apps.toggles.models import GatewayToken
    from apps.toggles.services import gateway_token_revoke

    assert gateway.get(SNAPSHOT).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        gateway_token_revoke(token=GatewayToken.objects.get(team=team), actor=None)
    assert gateway.get(SNAPSHOT).status_code == 401


# --------------------------------------------------------------------------- snapshot


def test_snapshot__team__values_levels_rules_strong_etag(gateway, team):
    response = gateway.get(SNAPSHOT)
    assert response.status_code == 200
    body = response.json()
    assert body["deployment"] is None
    assert body["version"] == team.toggle_version.version
    toggles = {t["key"]: t for t in body["toggles"]}
    assert toggles["max_output_tokens"]["value"] == 512
    assert toggles["max_output_tokens"]["deployment"] is None
    assert toggles["streaming"]["rules"][0]["conditions"] == [
        {"attribute": "tier", "op": "eq", "value": "free"}
    ]
    assert toggles["model_size"]["rules"][0]["split"][0] == {
        "variant": "small", "value": "small", "weight": 70.0,
    }  # fmt: skip
    etag = response["ETag"]
    assert etag.startswith('"')  # strong: no W/
    assert gateway.get(SNAPSHOT, HTTP_IF_NONE_MATCH=etag).status_code == 304
    assert gateway.get(SNAPSHOT, HTTP_IF_NONE_MATCH=f'"x", W/{etag}').status_code == 304


def test_snapshot__deployment__own_toggle_and_own_etag(gateway):
    team_wide = gateway.get(SNAPSHOT)
    response = gateway.get(SNAPSHOT, {"deployment": "chat"})
    toggles = {t["key"]: t for t in response.json()["toggles"]}
    assert toggles["max_output_tokens"]["value"] == 64
    assert toggles["max_output_tokens"]["deployment"] == "chat"
    assert response["ETag"] != team_wide["ETag"]
    stale = gateway.get(SNAPSHOT, {"deployment": "chat"}, HTTP_IF_NONE_MATCH=team_wide["ETag"])
    assert stale.status_code == 200


def test_snapshot__disabled_and_overridden__served_value(
    gateway, team, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        toggle_update(toggle=Toggle.objects.get(key="streaming"), actor=None, enabled=False)
        toggle_override_set(toggle=Toggle.objects.get(key="banner"), value="maintenance",
                            level=3, source="pin:ops", reason="drill")  # fmt: skip
    toggles = {t["key"]: t for t in gateway.get(SNAPSHOT).json()["toggles"]}
    assert (toggles["streaming"]["value"], toggles["streaming"]["reason"]) == (False, "DISABLED")
    assert (toggles["banner"]["value"], toggles["banner"]["level"]) == ("maintenance", 3)
    assert toggles["banner"]["source"] == "pin:ops"


@pytest.mark.parametrize(
    "query",
    [
        {"deployment": "a b"},
        {"deployment": "../x"},
        # "$" matched before a final newline: the name reached the ETag header (500).
        {"deployment": "chat\n"},
    ],
)
def test_snapshot__bad_deployment__400_detail(gateway, query):
    response = gateway.get(SNAPSHOT, query)
    assert response.status_code == 400
    assert "deployment" in response.json()["detail"]


def test_snapshot__no_token__401_detail(team):
    response = Client().get(SNAPSHOT)
    assert response.status_code == 401
    assert "gateway token" in response.json()["detail"]


def test_snapshot__post__405_json(gateway):
    response = gateway.post(SNAPSHOT)
    assert response.status_code == 405
    assert response.json()["detail"]


# --------------------------------------------------------------------------- change stream


@pytest.mark.parametrize(
    "query",
    [{}, {"version": "x"}, {"version": "-1"}, {"version": "1.5"}, {"version": "nan"},
     {"version": "1", "wait": "31"}, {"version": "1", "wait": "inf"}],
)  # fmt: skip
def test_changes__bad_parameters__400_detail(gateway, query):
    response = gateway.get(CHANGES, query)
    assert response.status_code == 400
    assert response.json()["detail"]


def test_changes__behind__snapshot_at_once(gateway, team):
    response = gateway.get(CHANGES, {"version": 0, "wait": 30})
    assert response.status_code == 200
    assert response.json()["version"] == team.toggle_version.version


def test_changes__no_change__304_after_wait(gateway, team):
    version = team.toggle_version.version
    response = gateway.get(CHANGES, {"version": version, "wait": 0.3}, **{"wsgi.multithread": True})
    assert response.status_code == 304


def test_changes__single_threaded_server__503_retry_after(gateway, team):
    version = team.toggle_version.version
    response = gateway.get(CHANGES, {"version": version, "wait": 5}, **{"wsgi.multithread": False})
    assert response.status_code == 503
    assert response["Retry-After"] == "1"


def test_changes__waiters_full__503(gateway, team, settings):
    settings.TOGGLES_CHANGES_WAITERS = 0
    response = gateway.get(
        CHANGES, {"version": team.toggle_version.version, "wait": 5}, **{"wsgi.multithread": True}
    )
    assert response.status_code == 503


@pytest.mark.django_db(transaction=True)
def test_changes__change_while_waiting__answered_with_new_version(team, gateway, settings):
    # Woken by the change: a waiter that is not would hold on for two minutes.
    settings.TOGGLES_CHANGES_MAX_WAIT_S = 120
    version = team.toggle_version.version
    answers: list[Any] = []

    def poll() -> None:
        query = {"version": version, "wait": 120}
        answers.append(gateway.get(CHANGES, query, **{"wsgi.multithread": True}))

    waiter = threading.Thread(target=poll)
    waiter.start()
    assert waiting_soon(), "the request never started waiting"
    toggle_update(toggle=Toggle.objects.get(key="banner"), actor=None, value="degraded")
    waiter.join(timeout=20)
    assert [answer.status_code for answer in answers] == [200]
    body = answers[0].json()
    assert body["version"] == version + 1
    assert {t["key"]: t["value"] for t in body["toggles"]}["banner"] == "degraded"


def test_read_path__revoked_in_another_process__401_soon(gateway, team):
    from django.utils import timezone

    from apps.toggles.models import GatewayToken

    assert gateway.get(SNAPSHOT).status_code == 200  # known to this process now
    # What another process's revocation does: the row, then the epoch and its message.
    GatewayToken.objects.filter(team=team).update(revoked_at=timezone.now())
    cache.add(readcache.epoch_key(), 0, timeout=None)
    cache.incr(readcache.epoch_key())
    client = readcache._redis()
    if client is not None:
        client.publish(cache.make_key(readcache.CHANGES_CHANNEL), "tokens")
    statuses = []
    for _ in range(40):  # the message, or at worst the next confirmation from the cache
        statuses.append(gateway.get(SNAPSHOT).status_code)
        if statuses[-1] == 401:
            break
        time.sleep(0.1)
    assert statuses[-1] == 401, statuses
