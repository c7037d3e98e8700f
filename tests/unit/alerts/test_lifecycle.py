"""Alerts through ingestion, grouping, muting and flushing into deliveries (database)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.alerts.labels import fingerprint
from apps.alerts.models import (
    Alert,
    AlertGroup,
    AlertStatus,
    Channel,
    Delivery,
    InhibitRule,
    Route,
    Silence,
)
from apps.alerts.payloads import IncomingAlert
from apps.alerts.services import alert_acknowledge, alert_groups_flush, alerts_ingest
from tests.factories.accounts import TeamFactory, UserFactory
from tests.factories.inventory import DeploymentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup():
    team = TeamFactory(slug="llm")
    channel = Channel.objects.create(
        team=team, name="ops", kind="webhook", config={"webhook_url": "http://127.0.0.1:9/hook"}
    )
    route = Route.objects.create(
        team=team,
        name="all",
        group_by=["alertname", "deployment"],
        group_wait_s=30,
        group_interval_s=300,
        repeat_interval_s=3600,
    )
    route.channels.add(channel)
    return team, route, channel


def _alert(status="firing", starts=None, ends=None, **labels):
    labels = {"alertname": "HighTTFT", "deployment": "chat", **labels}
    now = timezone.now()
    return IncomingAlert(
        labels,
        {"summary": f"{labels}"},
        status,
        starts or now - timedelta(minutes=1),
        ends,
        "",
        fingerprint(labels),
    )


def _flush(at):
    return alert_groups_flush(now=at).deliveries


def test_ingest__same_alert_twice__one_row_one_group_membership(setup):
    team, _, _ = setup
    now = timezone.now()
    alerts_ingest(alerts=[_alert(pod="a"), _alert(pod="a")], source="api", team=team, now=now)
    report = alerts_ingest(alerts=[_alert(pod="a")], source="api", team=team, now=now)
    assert (report.created, report.updated) == (0, 1)
    assert Alert.objects.count() == 1
    group = AlertGroup.objects.get()
    assert group.alerts.count() == 1
    assert group.labels == {"alertname": "HighTTFT", "deployment": "chat"}


def test_flush__group_wait_then_one_notification_listing_the_group(setup):
    team, _, channel = setup
    t0 = timezone.now()
    alerts_ingest(alerts=[_alert(pod="a"), _alert(pod="b")], source="api", team=team, now=t0)
    alerts_ingest(alerts=[_alert(deployment="embed")], source="api", team=team, now=t0)
    assert _flush(t0 + timedelta(seconds=10)) == []
    created = _flush(t0 + timedelta(seconds=31))
    assert len(created) == 2  # one per group (chat, embed)
    chat = Delivery.objects.get(notification__group_labels__deployment="chat")
    assert chat.channel == channel
    assert chat.notification["firing_count"] == 2
    assert sorted(chat.fingerprints) == sorted(
        fingerprint({"alertname": "HighTTFT", "deployment": "chat", "pod": p}) for p in "ab"
    )


def test_flush__enqueue_given__each_channel_queued_after_its_group_commits(
    setup, django_capture_on_commit_callbacks
):
    team, _, channel = setup
    t0 = timezone.now()
    alerts_ingest(alerts=[_alert(pod="a")], source="api", team=team, now=t0)
    queued: list[int] = []
    with django_capture_on_commit_callbacks() as callbacks:
        created = alert_groups_flush(now=t0 + timedelta(seconds=31), enqueue=queued.append)
    assert len(created.deliveries) == 1
    assert queued == []  # a sender started before the commit would find nothing to send
    for callback in callbacks:
        callback()
    assert queued == [channel.pk]


def test_flush__new_alert_waits_group_interval__unchanged_waits_repeat(setup):
    team, _, _ = setup
    t0 = timezone.now()
    alerts_ingest(alerts=[_alert(pod="a")], source="api", team=team, now=t0)
    assert len(_flush(t0 + timedelta(seconds=31))) == 1
    alerts_ingest(alerts=[_alert(pod="b")], source="api", team=team, now=t0 + timedelta(seconds=40))
    assert _flush(t0 + timedelta(seconds=200)) == []  # next look at 31 + 300 s
    (second,) = _flush(t0 + timedelta(seconds=332))
    assert Delivery.objects.get(pk=second).notification["firing_count"] == 2
    # Nothing changes: looked at every 5 minutes, resent only after the repeat interval.
    assert _flush(t0 + timedelta(seconds=640)) == []
    assert len(_flush(t0 + timedelta(seconds=332 + 3600 + 300))) == 1


def test_flush__acknowledged__no_repeat_but_changes_still_notified(setup):
    team, _, _ = setup
    t0 = timezone.now()
    alerts_ingest(alerts=[_alert(pod="a")], source="api", team=team, now=t0)
    _flush(t0 + timedelta(seconds=31))
    alert_acknowledge(alert=Alert.objects.get(), actor=UserFactory(), comment="on it")
    assert _flush(t0 + timedelta(seconds=31 + 3600 + 300)) == []
    alerts_ingest(alerts=[_alert(pod="b")], source="api", team=team, now=t0 + timedelta(hours=2))
    assert len(_flush(t0 + timedelta(hours=3))) == 1


def test_flush__resolution__notified_once_then_group_removed(setup):
    team, _, _ = setup
    t0 = timezone.now()
    alerts_ingest(alerts=[_alert(pod="a")], source="api", team=team, now=t0)
    _flush(t0 + timedelta(seconds=31))
    t1 = t0 + timedelta(seconds=100)
    alerts_ingest(alerts=[_alert("resolved", ends=t1, pod="a")], source="api", team=team, now=t1)
    assert Alert.objects.get().status == AlertStatus.RESOLVED
    (done,) = _flush(t0 + timedelta(seconds=332))
    notification = Delivery.objects.get(pk=done).notification
    assert notification["status"] == "resolved"
    assert notification["resolved_count"] == 1
    assert not AlertGroup.objects.exists()


def test_flush__silenced__not_notified_until_the_silence_ends(setup):
    team, _, _ = setup
    t0 = timezone.now()
    silence = Silence(
        team=team,
        matchers='{deployment="chat"}',
        starts_at=t0 - timedelta(minutes=1),
        ends_at=t0 + timedelta(minutes=10),
        comment="maintenance",
    )
    silence.full_clean()
    silence.save()
    alerts_ingest(alerts=[_alert(pod="a")], source="api", team=team, now=t0)
    assert _flush(t0 + timedelta(seconds=31)) == []
    assert AlertGroup.objects.exists()  # kept: it notifies once the silence is over
    assert len(_flush(t0 + timedelta(minutes=11))) == 1


def test_flush__cluster_alert__inhibits_deployment_alerts_with_equal_cluster(setup):
    team, _, _ = setup
    InhibitRule.objects.create(
        team=team,
        name="cluster down mutes its deployments",
        source_matchers=[{"name": "alertname", "op": "=", "value": "ClusterDown"}],
        target_matchers=[{"name": "deployment", "op": "!=", "value": ""}],
        equal=["cluster"],
    )
    t0 = timezone.now()
    alerts_ingest(
        alerts=[
            _alert(cluster="eu", pod="a"),
            _alert(cluster="us", pod="b"),
            IncomingAlert(
                {"alertname": "ClusterDown", "cluster": "eu"},
                {},
                "firing",
                t0,
                None,
                "",
                fingerprint({"alertname": "ClusterDown", "cluster": "eu"}),
            ),
        ],
        source="api",
        team=team,
        now=t0,
    )
    created = _flush(t0 + timedelta(seconds=31))
    listed = [fp for d in Delivery.objects.filter(pk__in=created) for fp in d.fingerprints]
    assert fingerprint({"alertname": "ClusterDown", "cluster": "eu"}) in listed
    assert _alert(cluster="us", pod="b").fingerprint in listed
    assert _alert(cluster="eu", pod="a").fingerprint not in listed


def test_ingest__labels__link_deployment_and_team_and_route_by_matchers(setup):
    team, route, _ = setup
    route.matchers = [{"name": "severity", "op": "=", "value": "critical"}]
    route.save()
    deployment = DeploymentFactory(name="chat", target_namespace="llm", team=team)
    other = TeamFactory(slug="other")
    now = timezone.now()
    alerts_ingest(
        alerts=[
            _alert(namespace="llm", severity="critical"),
            _alert(severity="info", team="other"),
        ],
        source="api",
        now=now,
    )
    critical = Alert.objects.get(severity="critical")
    assert critical.deployment == deployment
    assert critical.team == team  # from the deployment
    assert Alert.objects.get(severity="info").team == other  # from the team label
    assert AlertGroup.objects.get().alerts.get() == critical  # info did not match the route


def test_prune__old_resolved_and_finished__removed_recent_and_firing_kept(setup):
    from apps.alerts.services import alerts_prune

    team, _, channel = setup
    old = timezone.now() - timedelta(days=40)
    alerts_ingest(
        alerts=[_alert("resolved", starts=old, ends=old, pod="old"), _alert(pod="live")],
        source="api",
        team=team,
    )
    Delivery.objects.create(
        channel=channel,
        idempotency_key="d1",
        notification={},
        next_attempt_at=old,
        status="succeeded",
    )
    Delivery.objects.filter(idempotency_key="d1").update(created_at=old)
    assert alerts_prune(older_than_days=30) == 2
    assert list(Alert.objects.values_list("labels__pod", flat=True)) == ["live"]
    assert not Delivery.objects.exists()


def test_flush__all_resolved_without_send_resolved__no_empty_message(setup):
    team, route, _ = setup
    route.send_resolved = False
    route.save()
    t0 = timezone.now()
    alerts_ingest(alerts=[_alert(pod="a")], source="api", team=team, now=t0)
    assert len(_flush(t0 + timedelta(seconds=31))) == 1
    t1 = t0 + timedelta(seconds=60)
    alerts_ingest(alerts=[_alert("resolved", ends=t1, pod="a")], source="api", team=team, now=t1)
    assert _flush(t0 + timedelta(seconds=332)) == []
    assert not AlertGroup.objects.exists()
