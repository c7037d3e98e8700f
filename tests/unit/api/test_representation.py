"""Compiled row rendering gives exactly what DRF's own rendering gives."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from rest_framework import serializers
from rest_framework.test import APIClient

from apps.alerts.models import Alert, AlertSource, AlertStatus, Silence
from apps.alerts.selectors import silences_active
from apps.alerts.serializers import AlertSerializer
from apps.api.representation import fast_representation
from apps.audit.api import AuditEntrySerializer
from apps.audit.models import AuditEntry
from apps.autoscaling.models import DecisionRecord
from apps.autoscaling.serializers import DecisionRecordSerializer
from apps.inventory.models import Cluster, Deployment
from apps.inventory.serializers import ClusterSerializer, DeploymentSerializer
from tests.factories.audit import AuditEntryFactory
from tests.factories.inventory import (
    DeploymentFactory,
    DeploymentReadinessFactory,
    SimulatedDeploymentFactory,
)

pytestmark = pytest.mark.django_db


def _both(serializer_class, rows, **context):
    drf = serializer_class(rows, many=True, context=context).data
    fast = serializer_class(rows, many=True, context=context)
    fast_representation(fast)
    return [dict(r) for r in drf], [dict(r) for r in fast.data]


def _deployments(roster):
    with_readiness = DeploymentFactory(team=roster.team, labels={"tier": "gold"})
    DeploymentReadinessFactory(deployment=with_readiness, updated_by=roster.admin)
    SimulatedDeploymentFactory(team=roster.team, description="no cluster, no readiness")
    return list(Deployment.objects.select_related("readiness__updated_by").order_by("id"))


def test_fast_representation__deployments_and_clusters__same_as_drf(roster):
    rows = _deployments(roster)
    drf, fast = _both(DeploymentSerializer, rows)
    assert fast == drf
    assert fast[1]["cluster"] is None
    assert fast[1]["readiness"]["ready"] is False
    clusters = [d.cluster for d in rows if d.cluster is not None]
    assert _both(ClusterSerializer, clusters)[1] == _both(ClusterSerializer, clusters)[0]


def test_fast_representation__decisions_alerts_audit__same_as_drf(roster):
    deployment = DeploymentFactory(team=roster.team)
    now = timezone.now()
    DecisionRecord.objects.create(
        deployment=deployment,
        at=now.replace(microsecond=0),
        current_replicas=1,
        desired_replicas=3,
        rule="target",
        reason="queue above target",
        proposals=[{"target": "queue_length", "desired": 3}],
        inputs={"observations": {"queue_length": 7.5}},
        dry_run=True,
    )
    for n, status in enumerate((AlertStatus.FIRING, AlertStatus.RESOLVED)):
        Alert.objects.create(
            fingerprint=f"{n:016x}",
            team=roster.team,
            deployment=deployment if n else None,
            source=AlertSource.choices[0][0],
            name="HighQueueDepth",
            labels={"alertname": "HighQueueDepth", "n": str(n)},
            status=status,
            starts_at=now - timedelta(minutes=5),
            ends_at=now if n else None,
            received_at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        )
    Silence.objects.create(
        team=roster.team,
        matchers=[{"name": "n", "op": "=", "value": "0"}],
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=1),
        comment="maintenance",
    )
    AuditEntryFactory(team=roster.team, actor=roster.operator)
    drf, fast = _both(DecisionRecordSerializer, list(DecisionRecord.objects.all()))
    assert fast == drf
    silences = silences_active(team_ids=[roster.team.pk], now=now)
    drf, fast = _both(AlertSerializer, list(Alert.objects.order_by("id")), active_silences=silences)
    assert fast == drf
    assert fast[0]["silenced_by"] is not None
    assert fast[1]["received_at"].endswith(".678901Z")
    drf, fast = _both(AuditEntrySerializer, list(AuditEntry.objects.all()))
    assert fast == drf


def test_deployment_list__api_answer__same_as_drf_rendering(roster, client_for):
    rows = _deployments(roster)
    response = client_for(roster.viewer).get("/api/v1/deployments/?ordering=name")
    expected = DeploymentSerializer(sorted(rows, key=lambda d: d.name), many=True).data
    assert response.json()["results"] == [dict(r) for r in expected]


def test_list__no_filter_parameter_vs_unknown_filter_value__unfiltered_vs_400(roster):
    from apps.accounts.services import api_token_create

    _deployments(roster)
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=roster.viewer, name='t').secret}"
    )
    assert client.get("/api/v1/deployments/?limit=1").json()["count"] == 2
    assert client.get("/api/v1/deployments/?status=no-such-status").status_code == 400
    assert client.get("/api/v1/autoscaling/decisions/?deployment=abc").status_code == 400


def test_fast_representation__list_of_a_planned_class__serializer_builds_no_fields(roster):
    """Classes whose fields render from the row alone render from a plan made once per
    class: a request's serializer does not copy (deep-copy) its fields any more."""
    rows = _deployments(roster)
    for _ in range(2):
        serializer = DeploymentSerializer(rows, many=True)
        fast_representation(serializer)
        data = serializer.data
        assert "fields" not in serializer.child.__dict__
    assert [dict(r) for r in data] == [dict(r) for r in DeploymentSerializer(rows, many=True).data]


def _reachable(root, depth=6):
    """Objects reachable from ``root`` through closures, bound methods, containers and
    the attributes of DRF fields."""
    seen, todo = {}, [(root, 0)]
    while todo:
        obj, level = todo.pop()
        if id(obj) in seen or level > depth:
            continue
        seen[id(obj)] = obj
        if isinstance(obj, (tuple, list)):
            children = list(obj)
        elif isinstance(obj, dict):
            children = list(obj.values())
        elif inspect.ismethod(obj):
            children = [obj.__self__, obj.__func__]
        elif inspect.isfunction(obj):
            children = [c.cell_contents for c in obj.__closure__ or ()]
        elif isinstance(obj, serializers.Field):
            children = list(vars(obj).values())
        else:
            children = []
        todo.extend((child, level + 1) for child in children)
    return list(seen.values())


def test_fast_representation__plan_made_during_a_request__keeps_nothing_of_it(roster):
    from apps.api import representation
    from apps.inventory.serializers import ReadinessSerializer

    rows = _deployments(roster)
    representation._plans.pop(DeploymentSerializer, None)
    representation._plans.pop(ReadinessSerializer, None)
    marker = object()
    serializer = DeploymentSerializer(rows, many=True, context={"request": marker})
    fast_representation(serializer)
    serializer.data  # noqa: B018 - renders, building the plans (the readiness one nested)
    for cls in (DeploymentSerializer, ReadinessSerializer):
        plan = representation._plans[cls]
        assert plan is not None
        reachable = _reachable(plan)
        assert any(isinstance(obj, serializers.Field) for obj in reachable)
        assert not any(obj is marker or obj is serializer for obj in reachable)
        assert not any(obj is serializer.child for obj in reachable)


class _ContextEcho(serializers.Field):
    """Renders something of the request, not of the row."""

    def to_representation(self, value):
        return self.context["tag"]


class _EchoingClusterSerializer(serializers.ModelSerializer):
    tag = _ContextEcho(source="name", read_only=True)

    class Meta:
        model = Cluster
        fields = ["id", "name", "created_at", "tag"]


def test_fast_representation__field_reading_the_context__each_request_its_own(roster):
    rows = [d.cluster for d in _deployments(roster) if d.cluster is not None]
    for tag in ("first", "second"):
        serializer = _EchoingClusterSerializer(rows, many=True, context={"tag": tag})
        fast_representation(serializer)
        assert [r["tag"] for r in serializer.data] == [tag] * len(rows)
        plain = _EchoingClusterSerializer(rows, many=True, context={"tag": tag}).data
        assert [dict(r) for r in serializer.data] == [dict(r) for r in plain]
