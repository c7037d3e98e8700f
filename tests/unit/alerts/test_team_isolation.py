"""Alerts are identified per team: a receiver token of one team, sending another team's
label set or naming another team's deployment, changes and reveals nothing of that team's."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.alerts.labels import fingerprint
from apps.alerts.models import Alert, AlertGroup, AlertStatus, Channel, InhibitRule, Route
from apps.alerts.payloads import IncomingAlert
from apps.alerts.services import alert_groups_flush, alerts_ingest, receiver_create
from tests.factories.accounts import TeamFactory
from tests.factories.alerts import AlertFactory, RouteFactory
from tests.factories.inventory import DeploymentFactory

pytestmark = pytest.mark.django_db

HOOK = "/api/v1/alerts/webhook/alertmanager/"
LABELS = {"alertname": "HighTTFT", "deployment": "chat", "severity": "critical"}
RUNBOOK = {"summary": "TTFT p95 above 1 s", "runbook_url": "https://runbooks.example/ttft"}


def _post(token: str, *alerts: dict) -> dict:
    response = APIClient().post(
        HOOK,
        {"version": "4", "status": "firing", "receiver": "cp", "alerts": list(alerts)},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 200, response.content
    return response.json()


def _firing(labels=LABELS, annotations=RUNBOOK) -> dict:
    return {
        "status": "firing",
        "labels": labels,
        "annotations": annotations,
        "startsAt": "2026-11-23T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
    }


def _resolved(labels=LABELS) -> dict:
    return {
        "status": "resolved",
        "labels": labels,
        "annotations": {"summary": "fixed", "runbook_url": "https://attacker.example/"},
        "startsAt": "2026-11-23T10:00:00Z",
        "endsAt": "2026-11-23T10:05:00Z",
    }


@pytest.fixture
def two_teams():
    team_a, team_b = TeamFactory(slug="team-a"), TeamFactory(slug="team-b")
    _, token_a = receiver_create(team=team_a, name="am-a", actor=None)
    _, token_b = receiver_create(team=team_b, name="am-b", actor=None)
    return team_a, token_a, team_b, token_b


def test_webhook__other_teams_label_set_resolved_with_new_annotations__theirs_untouched_own_created(
    two_teams,
):
    team_a, token_a, team_b, token_b = two_teams
    _post(token_b, _firing())
    b_alert = Alert.objects.get(team=team_b)

    reply = _post(token_a, _resolved())

    b_alert.refresh_from_db()
    assert b_alert.status == AlertStatus.FIRING
    assert b_alert.annotations == RUNBOOK
    assert b_alert.ends_at is None
    a_alert = Alert.objects.get(team=team_a)
    assert a_alert.pk != b_alert.pk
    assert a_alert.fingerprint == b_alert.fingerprint == fingerprint(LABELS)
    assert a_alert.status == AlertStatus.RESOLVED
    assert a_alert.annotations["runbook_url"] == "https://attacker.example/"
    # The same answer as for a team alone in the world: B's alert is not revealed.
    assert reply == {"received": 1, "created": 1, "updated": 0, "resolved": 1}


def test_webhook__other_teams_label_set_firing__counts_as_if_they_did_not_exist(two_teams):
    _, token_a, team_b, token_b = two_teams
    _post(token_b, _firing())
    first = _post(token_a, _firing(annotations={"summary": "mine"}))
    again = _post(token_a, _resolved())
    assert first == {"received": 1, "created": 1, "updated": 0, "resolved": 0}
    assert again == {"received": 1, "created": 0, "updated": 1, "resolved": 1}
    assert Alert.objects.get(team=team_b).status == AlertStatus.FIRING
    assert Alert.objects.get(team=team_b).annotations == RUNBOOK
    assert Alert.objects.filter(fingerprint=fingerprint(LABELS)).count() == 2


def test_webhook__deployment_label_of_other_teams_deployment__not_attached(two_teams):
    team_a, token_a, team_b, _ = two_teams
    DeploymentFactory(team=team_b, name="chat", target_namespace="llm")
    _post(token_a, _firing(labels={**LABELS, "namespace": "llm"}))
    a_alert = Alert.objects.get(team=team_a)
    assert a_alert.deployment is None


def test_webhook__deployment_label_with_same_name_in_both_teams__own_attached(two_teams):
    team_a, token_a, team_b, _ = two_teams
    DeploymentFactory(team=team_b, name="chat", target_namespace="llm")
    own = DeploymentFactory(team=team_a, name="chat", target_namespace="llm")
    _post(token_a, _firing(labels={**LABELS, "namespace": "llm"}))
    assert Alert.objects.get(team=team_a).deployment == own


def test_ingest__other_teams_firing_alert__neither_inhibits_nor_joins_own_groups(two_teams):
    team_a, _, team_b, _ = two_teams
    channel = Channel.objects.create(
        team=team_a, name="ops", kind="webhook", config={"webhook_url": "http://127.0.0.1:9/h"}
    )
    route = Route.objects.create(team=team_a, name="all", group_by=["alertname"], group_wait_s=0)
    route.channels.add(channel)
    InhibitRule.objects.create(
        team=team_a,
        name="cluster down mutes the rest",
        source_matchers=[{"name": "alertname", "op": "=", "value": "ClusterDown"}],
        target_matchers=[{"name": "alertname", "op": "=", "value": "HighTTFT"}],
    )
    now = timezone.now()
    down = {"alertname": "ClusterDown"}

    def item(labels: dict) -> IncomingAlert:
        return IncomingAlert(
            labels, {}, "firing", now - timedelta(minutes=1), None, "", fingerprint(labels)
        )

    alerts_ingest(alerts=[item(down)], source="api", team=team_b, now=now)
    alerts_ingest(alerts=[item(LABELS)], source="api", team=team_a, now=now)
    group = AlertGroup.objects.get()
    assert list(group.alerts.values_list("team", flat=True)) == [team_a.pk]
    report = alert_groups_flush(now=now + timedelta(seconds=1))
    assert report.notified == 1  # B's ClusterDown does not mute A's alert


def test_webhook__team_label_naming_other_team__stays_the_senders_alert(two_teams):
    team_a, token_a, team_b, _ = two_teams
    _post(token_a, _firing(labels={**LABELS, "team": "team-b"}))
    assert list(Alert.objects.values_list("team", flat=True)) == [team_a.pk]
    assert not Alert.objects.filter(team=team_b).exists()


def test_acknowledge__other_teams_alert_with_same_fingerprint__404_and_untouched(
    two_teams, client_for
):
    from apps.accounts.models import Role
    from tests.factories.accounts import MembershipFactory, UserFactory

    team_a, token_a, team_b, token_b = two_teams
    _post(token_a, _firing())
    _post(token_b, _firing())
    b_alert = Alert.objects.get(team=team_b)
    user = UserFactory()
    MembershipFactory(user=user, team=team_a, role=Role.OPERATOR)
    client = client_for(user)
    response = client.post(f"/api/v1/alerts/{b_alert.pk}/acknowledge/", {}, format="json")
    assert response.status_code == 404
    mine = Alert.objects.get(team=team_a)
    assert client.post(f"/api/v1/alerts/{mine.pk}/acknowledge/", {}).status_code == 200
    b_alert.refresh_from_db()
    assert b_alert.acknowledged_at is None
    listed = client.get("/api/v1/alerts/", {"fingerprint": b_alert.fingerprint}).json()
    assert [a["id"] for a in listed["results"]] == [mine.pk]


def test_rule_sources__other_team_copies_a_rules_label_set__each_team_resolves_its_own():
    """A team's threshold rule whose extra labels reproduce another team's rule alert (same
    label set, same fingerprint) keeps nothing of the other team's firing."""
    import time as _time

    from apps.alerts.models import AlertRule
    from apps.alerts.sources import alert_sources_evaluate
    from apps.metrics.collection import Observation
    from apps.metrics.services import metrics_store

    team_a, team_b = TeamFactory(slug="team-a"), TeamFactory(slug="team-b")
    dep_a = DeploymentFactory(team=team_a, name="chat", target_namespace="llm")
    dep_b = DeploymentFactory(team=team_b, name="chat", target_namespace="llm")

    def queue_rule(deployment: Any, **labels: str) -> AlertRule:
        """The same queue-length rule for either team's deployment."""
        return AlertRule.objects.create(
            team=deployment.team,
            name="QueueTooLong",
            deployment=deployment,
            signal="queue_length",
            threshold=10,
            for_s=0,
            summary="queue",
            labels=labels,
        )

    rule_b = queue_rule(dep_b)
    queue_rule(dep_a, team="team-b", rule_id=str(rule_b.pk))

    def observe(a: float, b: float) -> None:
        now_s = _time.time()
        metrics_store(
            observations={
                dep_a.pk: {"queue_length": Observation(a, now_s, "ok", "")},
                dep_b.pk: {"queue_length": Observation(b, now_s, "ok", "")},
            }
        )

    t0 = timezone.now()
    observe(50, 50)
    alert_sources_evaluate(now=t0)
    a_alert, b_alert = Alert.objects.get(team=team_a), Alert.objects.get(team=team_b)
    assert a_alert.fingerprint == b_alert.fingerprint
    assert (a_alert.deployment, b_alert.deployment) == (dep_a, dep_b)
    observe(50, 1)  # B's queue is fine again; A's still is not
    alert_sources_evaluate(now=t0 + timedelta(seconds=30))
    assert Alert.objects.get(team=team_b).status == AlertStatus.RESOLVED
    assert Alert.objects.get(team=team_a).status == AlertStatus.FIRING


def test_migration__alerts_linked_across_teams_before__links_and_memberships_cleared():
    import importlib

    from django.apps import apps

    migration = importlib.import_module("apps.alerts.migrations.0002_alert_identity_per_team")
    team_a, team_b = TeamFactory(slug="team-a"), TeamFactory(slug="team-b")
    dep_b = DeploymentFactory(team=team_b, name="chat")
    now = timezone.now()
    # What the former ingestion could store: A's alert on B's deployment, in B's group.
    linked = AlertFactory(team=team_a, deployment=dep_b, labels={"alertname": "X"})
    own = AlertFactory(team=team_b, deployment=dep_b, labels={"alertname": "Y"})
    route_b = RouteFactory(team=team_b)
    group = AlertGroup.objects.create(
        route=route_b, key_hash="k", created_at=now, next_flush_at=now
    )
    group.alerts.add(linked, own)
    migration._detach_cross_team(apps, None)
    linked.refresh_from_db()
    own.refresh_from_db()
    assert (linked.deployment, own.deployment) == (None, dep_b)
    assert list(group.alerts.all()) == [own]
