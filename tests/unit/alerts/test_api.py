"""The alerts API: the Alertmanager receiver's authentication and validation, and bad input
on silences, channels and routes answered 400 with nothing stored."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import Role
from apps.alerts.models import Alert, AlertGroup, Channel, Receiver, Route, Silence
from apps.alerts.services import receiver_create
from apps.audit.models import AuditEntry
from tests.assertions import nothing_stored
from tests.factories.accounts import MembershipFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db

HOOK = "/api/v1/alerts/webhook/alertmanager/"


@pytest.fixture
def team_and_token():
    team = TeamFactory(slug="llm")
    receiver, token = receiver_create(team=team, name="am-prod", actor=None)
    return team, receiver, token


def _am(*alerts):
    return {
        "version": "4",
        "status": "firing",
        "receiver": "controlplane",
        "groupLabels": {},
        "alerts": list(alerts)
        or [
            {
                "status": "firing",
                "labels": {"alertname": "GPUHot", "gpu": "0"},
                "annotations": {"summary": "hot"},
                "startsAt": "2026-11-23T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
            }
        ],
    }


def test_webhook__bearer_token__stored_for_the_receivers_team(team_and_token):
    team, receiver, token = team_and_token
    client = APIClient()
    response = client.post(HOOK, _am(), format="json", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    assert response.json() == {"received": 1, "created": 1, "updated": 0, "resolved": 0}
    alert = Alert.objects.get()
    assert (alert.team, alert.source, alert.name) == (team, "alertmanager", "GPUHot")
    receiver.refresh_from_db()
    assert receiver.last_used_at is not None


def test_webhook__basic_auth_with_receiver_name__accepted(team_and_token):
    _, _, token = team_and_token
    basic = base64.b64encode(f"am-prod:{token}".encode()).decode()
    response = APIClient().post(HOOK, _am(), format="json", HTTP_AUTHORIZATION=f"Basic {basic}")
    assert response.status_code == 200


@pytest.mark.parametrize(
    "header",
    ["", "Bearer lcpr_wrong", "Basic " + base64.b64encode(b"other:x").decode(), "Basic !!"],
)
def test_webhook__missing_or_wrong_credentials__4xx_nothing_stored(team_and_token, header):
    kwargs = {"HTTP_AUTHORIZATION": header} if header else {}
    response = APIClient().post(HOOK, _am(), format="json", **kwargs)
    assert response.status_code in (401, 403)
    assert "receiver" in response.json()["detail"].lower() or "basic" in response.json()["detail"]
    assert not Alert.objects.exists()


def test_webhook__basic_auth_right_token_wrong_name__refused(team_and_token):
    _, _, token = team_and_token
    basic = base64.b64encode(f"someone-else:{token}".encode()).decode()
    with nothing_stored():
        response = APIClient().post(HOOK, _am(), format="json", HTTP_AUTHORIZATION=f"Basic {basic}")
    assert response.status_code in (401, 403)


def test_webhook__revoked_receiver__refused(team_and_token, client_for):
    team, receiver, token = team_and_token
    admin = UserFactory()
    MembershipFactory(user=admin, team=team, role=Role.ADMIN)
    assert client_for(admin).delete(f"/api/v1/alerts/receivers/{receiver.pk}/").status_code == 204
    with nothing_stored():
        response = APIClient().post(
            HOOK, _am(), format="json", HTTP_AUTHORIZATION=f"Bearer {token}"
        )
    assert response.status_code in (401, 403)


def test_webhook__one_bad_alert_in_batch__400_with_path_and_nothing_stored(team_and_token):
    _, _, token = team_and_token
    good = _am()["alerts"][0]
    bad = {**good, "labels": {"alertname": 5}}
    with nothing_stored():
        response = APIClient().post(
            HOOK, _am(good, bad), format="json", HTTP_AUTHORIZATION=f"Bearer {token}"
        )
    assert response.status_code == 400
    assert "alerts[1].labels.alertname" in str(response.json()["errors"]["payload"])
    assert not Alert.objects.exists()


def test_webhook__not_json__400(team_and_token):
    _, _, token = team_and_token
    with nothing_stored():
        response = APIClient().post(
            HOOK, "{oops", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
        )
    assert response.status_code == 400


@pytest.fixture
def operator(client_for):
    team = TeamFactory()
    user = UserFactory()
    MembershipFactory(user=user, team=team, role=Role.OPERATOR)
    return team, user, client_for(user)


def test_receiver__created_by_team_admin__token_shown_once_stored_hashed(client_for):
    team = TeamFactory()
    admin = UserFactory()
    MembershipFactory(user=admin, team=team, role=Role.ADMIN)
    client = client_for(admin)
    response = client.post("/api/v1/alerts/receivers/", {"team": team.pk, "name": "am"})
    assert response.status_code == 201, response.content
    token = response.json()["token"]
    assert token.startswith("lcpr_")
    listed = client.get("/api/v1/alerts/receivers/").json()["results"][0]
    assert "token" not in listed
    assert token not in str(Receiver.objects.values_list("token_hash", flat=True)[0])


def _post_silence(client: Any, team: Any, **fields: Any) -> Any:
    """POST a silence of ``team`` for the next hour; ``fields`` replace the defaults."""
    now = timezone.now()
    data = {
        "team": team.pk,
        "matchers": '{alertname="X"}',
        "starts_at": now.isoformat(),
        "ends_at": (now + timedelta(hours=1)).isoformat(),
        "comment": "deploy",
        **fields,
    }
    return client.post("/api/v1/alerts/silences/", data, format="json")


def test_silence__invalid_regex__400_naming_field_nothing_stored(operator):
    team, _, client = operator
    response = _post_silence(client, team, matchers='{deployment=~"chat-("}')
    assert response.status_code == 400
    assert "invalid regular expression" in str(response.json()["errors"]["matchers"])
    assert not Silence.objects.exists()


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({"matchers": '{team=~".*"}'}, "matchers", "must not match the empty string"),
        ({"comment": ""}, "comment", "blank"),
        ({"ends_at": "2020-01-01T00:00:00Z"}, "ends_at", "after starts_at"),
    ],
)
def test_silence__bad_fields__400(operator, body, field, fragment):
    team, _, client = operator
    with nothing_stored():
        response = _post_silence(client, team, **body)
    assert response.status_code == 400, response.content
    assert fragment in str(response.json()["errors"][field])


def test_silence__created_then_expired__audited_and_inactive(operator):
    team, user, client = operator
    created = _post_silence(
        client,
        team,
        matchers=[{"name": "alertname", "op": "=", "value": "X"}],
        comment="maintenance",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["active"] is True
    assert body["created_by"] == user.username
    expired = client.post(f"/api/v1/alerts/silences/{body['id']}/expire/")
    assert expired.status_code == 200
    assert expired.json()["active"] is False
    assert AuditEntry.objects.filter(object_type="alerts.silence").count() == 2


def test_channel__unknown_kind__400_nothing_stored(operator):
    team, _, client = operator
    response = client.post(
        "/api/v1/alerts/channels/",
        {"team": team.pk, "name": "x", "kind": "pager", "config": {"webhook_url": "https://x"}},
        format="json",
    )
    assert response.status_code == 400
    assert "kind" in response.json()["errors"]
    assert not Channel.objects.exists()


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({}, "webhook_url is required"),
        ({"webhook_url": "ftp://x"}, "http"),
        ({"webhook_url": "https://oapi.dingtalk.com/robot/send"}, "access_token"),
        ({"webhook_url": "https://x/?access_token=1", "colour": "red"}, "unknown"),
    ],
)
def test_channel__bad_config__400_naming_the_problem(operator, config, fragment):
    team, _, client = operator
    with nothing_stored():
        response = client.post(
            "/api/v1/alerts/channels/",
            {"team": team.pk, "name": "dt", "kind": "dingtalk", "config": config},
            format="json",
        )
    assert response.status_code == 400
    assert fragment in str(response.json()["errors"]["config"])


def test_channel__secrets__write_only_encrypted_at_rest_and_not_audited(operator):
    team, _, client = operator
    secret = "SEC" + "s" * 40
    response = client.post(
        "/api/v1/alerts/channels/",
        {
            "team": team.pk,
            "name": "dt",
            "kind": "dingtalk",
            "language": "zh",
            "config": {
                "webhook_url": "https://oapi.dingtalk.com/robot/send?access_token=abc123",
                "secret": secret,
            },
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    assert "config" not in response.json()
    assert response.json()["configured"] is True
    channel = Channel.objects.get()
    assert channel.config["secret"] == secret
    with connection.cursor() as cursor:
        cursor.execute("SELECT config FROM alerts_channel WHERE id = %s", [channel.pk])
        raw = cursor.fetchone()[0]
    assert raw.startswith("fernet:")
    assert secret not in raw
    assert "abc123" not in raw
    assert secret not in str(list(AuditEntry.objects.values_list("changes", flat=True)))


def test_channel__bad_template_override__400(operator):
    team, _, client = operator
    with nothing_stored():
        response = client.post(
            "/api/v1/alerts/channels/",
            {
                "team": team.pk,
                "name": "wh",
                "kind": "webhook",
                "config": {"webhook_url": "https://example.invalid/hook", "secret": "s3cret"},
                "body_template": "{% if %}",
            },
            format="json",
        )
    assert response.status_code == 400
    assert "body_template" in response.json()["errors"]


def test_route__channel_of_another_team__400(operator):
    team, _, client = operator
    foreign = Channel.objects.create(
        team=TeamFactory(),
        name="x",
        kind="webhook",
        config={"webhook_url": "https://x/h", "secret": "s"},
    )
    response = client.post(
        "/api/v1/alerts/routes/",
        {"team": team.pk, "name": "r", "channels": [foreign.pk], "matchers": '{severity="x"}'},
        format="json",
    )
    assert response.status_code == 400
    assert not Route.objects.exists()


def test_route__bad_matchers_or_group_by__400(operator):
    team, _, client = operator
    for body, field in (
        ({"matchers": "{severity=}"}, "matchers"),
        ({"group_by": "alertname"}, "group_by"),
        ({"group_interval_s": 0}, "group_interval_s"),
    ):
        with nothing_stored():
            response = client.post(
                "/api/v1/alerts/routes/",
                {"team": team.pk, "name": "r", "channels": [], **body},
                format="json",
            )
        assert response.status_code == 400, (body, response.content)
        assert field in response.json()["errors"], response.json()


def test_alert__acknowledge__operator_only_and_recorded(team_and_token, client_for):
    team, _, token = team_and_token
    APIClient().post(HOOK, _am(), format="json", HTTP_AUTHORIZATION=f"Bearer {token}")
    alert = Alert.objects.get()
    viewer, operator = UserFactory(), UserFactory()
    MembershipFactory(user=viewer, team=team, role=Role.VIEWER)
    MembershipFactory(user=operator, team=team, role=Role.OPERATOR)
    url = f"/api/v1/alerts/{alert.pk}/acknowledge/"
    assert client_for(viewer).post(url, {"comment": "x"}).status_code == 403
    response = client_for(operator).post(url, {"comment": "looking"})
    assert response.status_code == 200
    assert response.json()["ack_comment"] == "looking"
    listed = client_for(viewer).get("/api/v1/alerts/?status=firing").json()
    assert listed["count"] == 1
    other = UserFactory()
    assert client_for(other).get("/api/v1/alerts/").json()["count"] == 0
    assert not AlertGroup.objects.exists()  # no route: stored, not grouped


def test_silence__patch__operator_edits_own_but_cannot_make_it_global(operator, client_for):
    team, _, client = operator
    created = _post_silence(client, team)
    url = f"/api/v1/alerts/silences/{created.json()['id']}/"
    edited = client.patch(url, {"comment": "longer deploy"}, format="json")
    assert edited.status_code == 200, edited.content
    assert edited.json()["comment"] == "longer deploy"
    assert client.patch(url, {"team": None}, format="json").status_code == 403
    viewer = UserFactory()
    MembershipFactory(user=viewer, team=team, role=Role.VIEWER)
    assert client_for(viewer).patch(url, {"comment": "x"}, format="json").status_code == 403
    assert Silence.objects.get().team == team
    assert Silence.objects.get().comment == "longer deploy"


def test_alert_list__silenced_alert__names_its_silence_for_members_and_superusers(
    team_and_token, client_for
):
    team, _, token = team_and_token
    APIClient().post(HOOK, _am(), format="json", HTTP_AUTHORIZATION=f"Bearer {token}")
    now = timezone.now()
    silence = Silence.objects.create(
        team=team,
        matchers=[{"name": "alertname", "op": "=", "value": "GPUHot"}],
        starts_at=now - timedelta(minutes=1),
        ends_at=now + timedelta(hours=1),
        comment="maintenance",
    )
    member = UserFactory()
    MembershipFactory(user=member, team=team, role=Role.VIEWER)
    for user in (member, UserFactory(is_superuser=True)):
        (row,) = client_for(user).get("/api/v1/alerts/").json()["results"]
        assert row["silenced_by"] == silence.pk


def test_webhook__receiver_token_guessed_past_limit__429_even_for_the_right_token(
    team_and_token, settings
):
    settings.API_TOKEN_FAILURE_LIMIT = 3
    _, _, token = team_and_token
    client = APIClient()
    for n in range(3):
        wrong = client.post(HOOK, _am(), format="json", HTTP_AUTHORIZATION=f"Bearer lcpr_x{n}")
        assert wrong.status_code == 401
    locked = client.post(HOOK, _am(), format="json", HTTP_AUTHORIZATION="Bearer lcpr_x9")
    assert locked.status_code == 429
    assert locked["Content-Type"].startswith("application/json")
    assert "receiver token" in locked.json()["detail"]
    assert int(locked["Retry-After"]) >= 1
    # While the address is locked out, the right token is refused too and nothing stored.
    right = client.post(HOOK, _am(), format="json", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert right.status_code == 429
    assert not Alert.objects.exists()
    other = client.post(
        HOOK, _am(), format="json", HTTP_AUTHORIZATION=f"Bearer {token}", REMOTE_ADDR="198.51.100.4"
    )
    assert other.status_code == 200
