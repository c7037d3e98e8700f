"""The console's alerts page: alerts in their delivery groups, team scoping (another team's
alert, silence or channel is a 404), what a viewer may do, acknowledging, silencing from an
alert's labels with a preview that matches what the silence mutes, expiring, a channel's
test message, and a query count that does not grow with the number of alerts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import Role
from apps.alerts.labels import fingerprint
from apps.alerts.models import Alert, AlertSource, AlertStatus, Delivery, DeliveryStatus, Silence
from apps.alerts.services import (
    alert_acknowledge,
    alert_groups_flush,
    alert_raise,
    silence_create,
)
from apps.audit.models import AuditAction, AuditEntry
from apps.console import selectors
from tests.assertions import nothing_stored
from tests.factories.accounts import MembershipFactory, TeamFactory
from tests.factories.alerts import AlertFactory, ChannelFactory, DeliveryFactory, RouteFactory
from tests.factories.inventory import DeploymentFactory
from tests.servers import RecordingServer

pytestmark = pytest.mark.django_db

PAGE = "/console/alerts/"


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _raise(team: Any, **labels: str) -> Alert:
    """A firing alert of ``team`` stored by the ingest service (so it joins its groups)."""
    labels = {"severity": "warning", **labels}
    alert_raise(labels=labels, annotations={"summary": f"{labels}"}, source=AlertSource.API,
                team=team)  # fmt: skip
    return Alert.objects.get(team=team, fingerprint=fingerprint(labels))


@pytest.fixture
def team() -> Any:
    team = TeamFactory(slug="llm")
    DeploymentFactory(team=team, name="chat-a")
    DeploymentFactory(team=team, name="chat-b")
    return team


@pytest.fixture
def operator(team: Any) -> Any:
    return MembershipFactory(team=team, role=Role.OPERATOR).user


@pytest.fixture
def viewer(team: Any) -> Any:
    return MembershipFactory(team=team, role=Role.VIEWER).user


@pytest.fixture
def fleet(team: Any) -> dict[str, Alert]:
    """Three firing alerts of ``team`` routed to one channel, grouped by alert name."""
    RouteFactory(team=team, channels=[ChannelFactory(team=team, name="oncall")])
    return {
        "queue-a": _raise(team, alertname="HighQueue", deployment="chat-a"),
        "queue-b": _raise(team, alertname="HighQueue", deployment="chat-b"),
        "ttft-a": _raise(team, alertname="SlowTTFT", deployment="chat-a"),
    }


def _silence(team: Any, **labels: str) -> Silence:
    """A silence of ``team`` (None: every team) for the next hour, stored directly."""
    now = timezone.now()
    matchers = [{"name": k, "op": "=", "value": v} for k, v in labels.items()]
    return Silence.objects.create(
        team=team, matchers=matchers, comment="x", starts_at=now, ends_at=now + timedelta(hours=1)
    )


def _silence_data(alert: Alert, **changes: str) -> dict[str, str]:
    """The silence form as the page fills it from ``alert``'s labels (sorted), plus an
    empty extra row; ``changes`` replace fields (``m-1-value``, ``comment``, ...)."""
    labels = sorted(alert.labels.items())
    data = {
        "m-TOTAL_FORMS": str(len(labels) + 1),
        "m-INITIAL_FORMS": str(len(labels)),
        "m-MIN_NUM_FORMS": "0",
        "m-MAX_NUM_FORMS": "50",
        "duration": "2h",
        "comment": "rollout of chat",
        f"m-{len(labels)}-op": "=",
    }
    for i, (name, value) in enumerate(labels):
        data |= {f"m-{i}-name": name, f"m-{i}-op": "=", f"m-{i}-value": value}
    return data | changes


# --------------------------------------------------------------------------- the page


def test_alerts_page__grouped_as_notified__the_stored_groups_with_their_state(fleet, operator):
    alert_groups_flush(now=timezone.now() + timedelta(seconds=1))
    response = _client(operator).get(PAGE)
    assert response.status_code == 200
    groups = response.context["groups"]
    assert sorted(g.title for g in groups) == ['alertname="HighQueue"', 'alertname="SlowTTFT"']
    for group in groups:
        assert group.state is not None
        stored = set(group.state.alerts.values_list("pk", flat=True))
        assert {row.alert.pk for row in group.rows} == stored
        assert group.state.last_notified_at is not None
    body = response.content.decode()
    assert "Route <strong>" in body
    assert "oncall" in body
    assert "last notified" in body


def test_alerts_page__no_route__listed_as_not_routed(team, operator):
    alert = _raise(team, alertname="Lonely")
    (group,) = _client(operator).get(PAGE).context["groups"]
    assert group.route is None
    assert [row.alert.pk for row in group.rows] == [alert.pk]


def test_alerts_page__filters__narrow_and_htmx_gets_the_groups_partial(fleet, operator, team):
    deployment = team.deployments.get(name="chat-b")
    client = _client(operator)
    body = client.get(
        f"{PAGE}?deployment={deployment.pk}&state=firing", HTTP_HX_REQUEST="true"
    ).content.decode()
    assert '<section id="alert-groups"' in body
    assert "<html" not in body
    assert f'id="alert-{fleet["queue-b"].pk}"' in body
    assert f'id="alert-{fleet["queue-a"].pk}"' not in body
    resolved = client.get(f"{PAGE}?state=resolved").context["groups"]
    assert resolved == []


def test_alerts_page__old_resolved_alert__not_shown(team, operator):
    old = timezone.now() - timedelta(days=3)
    AlertFactory(team=team, status=AlertStatus.RESOLVED, starts_at=old, ends_at=old)
    recent = AlertFactory(team=team, status=AlertStatus.RESOLVED, ends_at=timezone.now())
    groups = _client(operator).get(PAGE).context["groups"]
    assert [row.alert.pk for g in groups for row in g.rows] == [recent.pk]


def test_alerts_page__5_vs_50_alerts__same_query_count(team, operator):
    channel = ChannelFactory(team=team)
    RouteFactory(team=team, channels=[channel])
    _silence(team, n="1")

    def queries(n: int) -> int:
        for i in range(Alert.objects.count(), Alert.objects.count() + n):
            alert = _raise(team, alertname=f"A{i % 7}", n=str(i), deployment=f"chat-{'ab'[i % 2]}")
            if i % 3 == 0:
                alert_acknowledge(alert=alert, actor=operator, comment="on it")
            DeliveryFactory(channel=channel)
        alert_groups_flush(now=timezone.now() + timedelta(seconds=1))  # group deliveries
        client = _client(type(operator).objects.get(pk=operator.pk))
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(PAGE)
        assert response.status_code == 200
        return len(ctx.captured_queries)

    small = queries(5)
    large = queries(45)
    assert Alert.objects.count() == 50
    assert small == large, (small, large)


# --------------------------------------------------------------------------- scoping


def _every_write_refused(client: Client, alert: Any, silence: Any, channel: Any, status: int):
    """Acknowledge, silence, expire and test message, each answered ``status``; no row
    changes anywhere."""
    with nothing_stored():
        for url, data in (
            (f"{PAGE}{alert.pk}/acknowledge/", {"comment": "x"}),
            (f"{PAGE}{alert.pk}/silence/", _silence_data(alert)),
            (f"{PAGE}silences/{silence.pk}/expire/", {}),
            (f"{PAGE}channels/{channel.pk}/test/", {}),
        ):
            assert client.post(url, data).status_code == status, url


def test_other_team__alert_silence_channel__404_and_nothing_stored(fleet, operator):
    other = TeamFactory()
    alert = _raise(other, alertname="HighQueue", deployment="chat-a")
    silence = _silence(other, alertname="X")
    channel = ChannelFactory(team=other, name="their-channel")
    client = _client(operator)
    body = client.get(PAGE).content.decode()
    assert f'id="alert-{alert.pk}"' not in body
    assert f'id="silence-{silence.pk}"' not in body
    assert "their-channel" not in body
    assert client.get(f"{PAGE}{alert.pk}/silence/").status_code == 404
    _every_write_refused(client, alert, silence, channel, status=404)
    silence.refresh_from_db()
    assert silence.ends_at > timezone.now()


def test_viewer__no_write_control__posts_403_and_nothing_stored(fleet, viewer, team):
    alert = fleet["queue-a"]
    silence = _silence(team, alertname="X")
    channel = team.alert_channels.get()
    client = _client(viewer)
    body = client.get(PAGE).content.decode()
    assert f'id="alert-{alert.pk}"' in body
    assert f'id="silence-{silence.pk}"' in body
    assert "oncall" in body
    for control in ("/acknowledge/", "/silence/", "/expire/", "/test/", "Send test message"):
        assert control not in body, control
    assert client.get(f"{PAGE}{alert.pk}/silence/").status_code == 403
    _every_write_refused(client, alert, silence, channel, status=403)
    alert.refresh_from_db()
    assert alert.acknowledged_at is None


def test_silence_for_every_team__operator_sees_it_but_cannot_expire(fleet, operator):
    silence = _silence(None, alertname="X")
    client = _client(operator)
    body = client.get(PAGE).content.decode()
    assert f'id="silence-{silence.pk}"' in body
    assert f"/silences/{silence.pk}/expire/" not in body
    with nothing_stored():
        assert client.post(f"{PAGE}silences/{silence.pk}/expire/").status_code == 403


# --------------------------------------------------------------------------- acknowledge


def test_acknowledge__operator__through_the_service_audited_with_comment(fleet, operator):
    alert = fleet["ttft-a"]
    client = _client(operator)
    response = client.post(f"{PAGE}{alert.pk}/acknowledge/", {"comment": "looking at it"})
    assert response.status_code == 302
    assert response["Location"] == f"{PAGE}#alert-{alert.pk}"
    alert.refresh_from_db()
    assert alert.acknowledged_by == operator
    assert alert.ack_comment == "looking at it"
    entry = AuditEntry.objects.get(verb="acknowledge")
    assert (entry.actor, entry.object_id, entry.team_id) == (operator, str(alert.pk), alert.team_id)
    assert entry.changes["comment"] == "looking at it"
    body = client.get(PAGE).content.decode()
    assert f"acknowledged by {operator.username}" in body
    assert f"/alerts/{alert.pk}/acknowledge/" not in body  # done: no second button


def test_acknowledge__comment_too_long__error_nothing_stored(fleet, operator):
    alert = fleet["ttft-a"]
    with nothing_stored():
        response = _client(operator).post(
            f"{PAGE}{alert.pk}/acknowledge/", {"comment": "x" * 501}, follow=True
        )
    errors = [m.message for m in response.context["messages"] if m.level_tag == "error"]
    assert errors
    assert "comment" in errors[0]
    alert.refresh_from_db()
    assert alert.acknowledged_at is None


# --------------------------------------------------------------------------- silences


def test_silence_form__prefilled_with_the_alerts_labels(fleet, operator):
    alert = fleet["queue-a"]
    response = _client(operator).get(f"{PAGE}{alert.pk}/silence/")
    assert response.status_code == 200
    forms = response.context["form"].matchers.forms
    initial = [(f.initial["name"], f.initial["op"], f.initial["value"]) for f in forms[:-1]]
    assert initial == [("alertname", "=", "HighQueue"), ("deployment", "=", "chat-a"),
                       ("severity", "=", "warning")]  # fmt: skip
    assert [a.pk for a in response.context["preview"]] == [alert.pk]


def _silenced_by_per_api(user: Any) -> dict[int, int | None]:
    """alert id → the silence the API says mutes it now."""
    client = APIClient()
    client.force_authenticate(user)
    body = client.get("/api/v1/alerts/", {"status": "firing"}).json()
    return {row["id"]: row["silenced_by"] for row in body["results"]}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        # deployment=~"chat-.*" (anchored RE2), severity removed: both HighQueue alerts.
        ({"m-1-op": "=~", "m-1-value": "chat-.*", "m-2-DELETE": "on"}, {"queue-a", "queue-b"}),
        # "chat" alone does not match "chat-a": patterns match the whole value.
        ({"m-1-op": "=~", "m-1-value": "chat"}, set()),
        # alertname removed, deployment != chat-b: the two alerts of chat-a.
        ({"m-0-DELETE": "on", "m-1-op": "!=", "m-1-value": "chat-b"}, {"queue-a", "ttft-a"}),
        # an added matcher on a label no alert has, with !~: matches as "".
        ({"m-0-DELETE": "on", "m-1-DELETE": "on", "m-3-name": "region", "m-3-op": "!~",
          "m-3-value": "eu-.+"}, {"queue-a", "queue-b", "ttft-a"}),
    ],
    ids=["regex", "regex-anchored", "not-equal", "added-negative-regex"],
)  # fmt: skip
def test_silence_preview__lists_exactly_what_the_created_silence_mutes(
    fleet, operator, changes, expected
):
    alert = fleet["queue-a"]
    data = _silence_data(alert, **changes)
    client = _client(operator)
    preview = client.get(f"{PAGE}{alert.pk}/silence/", data, HTTP_HX_REQUEST="true")
    assert preview.status_code == 200
    assert preview.content.decode().lstrip().startswith('<section id="silence-preview"')
    names = {v.pk: k for k, v in fleet.items()}
    previewed = {names[a.pk] for a in preview.context["preview"]}
    assert previewed == expected
    assert preview.context["matched"] == len(expected)

    response = client.post(f"{PAGE}{alert.pk}/silence/", data)
    assert response.status_code == 302, response.content.decode()[-2000:]
    silence = Silence.objects.get()
    muted = {names[pk] for pk, by in _silenced_by_per_api(operator).items() if by == silence.pk}
    assert muted == previewed


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"m-1-op": "=~", "m-1-value": "chat-("}, "invalid regular expression"),
        ({"m-1-name": "not a label"}, "matcher"),
        ({"m-0-DELETE": "on", "m-1-DELETE": "on", "m-2-DELETE": "on"}, "at least one matcher"),
        ({"m-0-DELETE": "on", "m-1-DELETE": "on", "m-2-op": "=~", "m-2-value": ".*"},
         "must not match the empty string"),
        ({"m-1-op": "~="}, "op"),
    ],
    ids=["bad-regex", "bad-name", "no-matcher", "matches-everything", "unknown-operator"],
)  # fmt: skip
def test_silence__bad_matchers__form_error_in_preview_and_post_nothing_stored(
    fleet, operator, changes, error
):
    alert = fleet["queue-a"]
    data = _silence_data(alert, **changes)
    client = _client(operator)
    preview = client.get(f"{PAGE}{alert.pk}/silence/", data, HTTP_HX_REQUEST="true")
    assert preview.status_code == 200
    assert error in preview.content.decode()
    assert preview.context["preview"] == []
    with nothing_stored():
        response = client.post(f"{PAGE}{alert.pk}/silence/", data)
    assert response.status_code == 200
    assert error in response.content.decode()


def test_silence__no_comment__form_error_nothing_stored(fleet, operator):
    alert = fleet["queue-a"]
    with nothing_stored():
        response = _client(operator).post(
            f"{PAGE}{alert.pk}/silence/", _silence_data(alert, comment="  ")
        )
    assert response.status_code == 200
    assert response.context["form"].errors["comment"]


def test_silence__created_listed_then_expired__through_the_services_audited(fleet, operator):
    alert = fleet["queue-a"]
    client = _client(operator)
    before = timezone.now()
    response = client.post(f"{PAGE}{alert.pk}/silence/", _silence_data(alert, duration="4h"))
    silence = Silence.objects.get()
    assert response["Location"] == f"{PAGE}#silence-{silence.pk}"
    assert silence.team_id == alert.team_id
    assert silence.created_by == operator
    assert silence.comment == "rollout of chat"
    assert timedelta(hours=4) <= silence.ends_at - before < timedelta(hours=4, minutes=1)
    assert silence.matchers == [
        {"name": "alertname", "op": "=", "value": "HighQueue"},
        {"name": "deployment", "op": "=", "value": "chat-a"},
        {"name": "severity", "op": "=", "value": "warning"},
    ]
    created = AuditEntry.objects.get(object_type="alerts.silence")
    assert (created.action, created.actor) == (AuditAction.CREATE, operator)

    page = client.get(PAGE)
    rows = {row.alert.pk: row for g in page.context["groups"] for row in g.rows}
    assert rows[alert.pk].silenced_by == silence
    assert rows[fleet["queue-b"].pk].silenced_by is None
    assert f"silenced by {silence.pk}" in page.content.decode()

    client.post(f"{PAGE}silences/{silence.pk}/expire/")
    silence.refresh_from_db()
    assert silence.ends_at <= timezone.now()
    assert AuditEntry.objects.filter(object_type="alerts.silence", verb="expire").count() == 1
    rows = {row.alert.pk: row for g in client.get(PAGE).context["groups"] for row in g.rows}
    assert rows[alert.pk].silenced_by is None


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"matchers": '{deployment=~"chat-("}'}, "matchers"),
        ({"matchers": [{"name": "x", "op": "=~", "value": ".*"}]}, "matchers"),
        ({"comment": " "}, "comment"),
        ({"ends_at": timezone.now() - timedelta(hours=1)}, "ends_at"),
    ],
    ids=["bad-regex", "matches-everything", "no-comment", "ends-before-start"],
)
def test_silence_create__invalid__validation_error_nothing_stored(team, operator, fields, field):
    """The service checks what the console's form and the API's serializer check, for any
    other caller."""
    now = timezone.now()
    given = {
        "matchers": [{"name": "alertname", "op": "=", "value": "X"}],
        "comment": "deploy",
        "ends_at": now + timedelta(hours=1),
        **fields,
    }
    with nothing_stored(), pytest.raises(ValidationError) as caught:
        silence_create(team=team, starts_at=now, actor=operator, **given)
    assert field in caught.value.message_dict


# --------------------------------------------------------------------------- channels


@pytest.fixture
def receiver(allow_loopback_outbound: None) -> Iterator[RecordingServer]:
    server = RecordingServer()
    yield server
    server.stop()


def test_channel_test__operator__sent_recorded_and_listed(team, operator, receiver):
    channel = ChannelFactory(team=team, name="hook", webhook_url=receiver.url + "/hook")
    client = _client(operator)
    response = client.post(f"{PAGE}channels/{channel.pk}/test/", follow=True)
    assert receiver.hits == ["/hook"]
    delivery = Delivery.objects.get(channel=channel)
    assert delivery.idempotency_key.startswith("test-")
    assert (delivery.status, delivery.attempts, delivery.status_code) == (
        DeliveryStatus.SUCCEEDED, 1, 200,
    )  # fmt: skip
    assert "Test message sent to hook (HTTP 200)" in response.content.decode()
    (item,) = response.context["channels"]
    assert [row.what for row in item.deliveries] == ["test message"]


def test_channel_test__receiver_refuses__failed_delivery_with_the_error(team, operator, receiver):
    receiver.respond = lambda request: (500, {}, b"broken")
    channel = ChannelFactory(team=team, name="hook", webhook_url=receiver.url)
    response = _client(operator).post(f"{PAGE}channels/{channel.pk}/test/", follow=True)
    delivery = Delivery.objects.get(channel=channel)
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.error
    errors = [m.message for m in response.context["messages"] if m.level_tag == "error"]
    assert errors == [f"Test message to hook failed: {delivery.error}"]


def test_channel_deliveries__latest_per_channel_newest_first(team, operator):
    busy, quiet = ChannelFactory(team=team, name="a-busy"), ChannelFactory(team=team, name="b")
    made = [DeliveryFactory(channel=busy) for _ in range(selectors.DELIVERIES_PER_CHANNEL + 3)]
    DeliveryFactory(channel=quiet, status=DeliveryStatus.FAILED, error="410 gone")
    items = selectors.channel_deliveries(user=operator)
    assert [i.channel.name for i in items] == ["a-busy", "b"]
    shown = [row.delivery.pk for row in items[0].deliveries]
    assert shown == [d.pk for d in reversed(made)][: selectors.DELIVERIES_PER_CHANNEL]
    assert [row.delivery.error for row in items[1].deliveries] == ["410 gone"]


# --------------------------------------------------------------------------- links


def test_deployment_page__alert_row_links_to_the_alerts_page(fleet, operator, team):
    deployment = team.deployments.get(name="chat-a")
    alert = fleet["queue-a"]
    assert alert.deployment == deployment  # from its labels
    body = _client(operator).get(f"/console/deployments/{deployment.pk}/").content.decode()
    assert f'href="{PAGE}?deployment={deployment.pk}#alert-{alert.pk}"' in body
