"""The data step of inventory 0002: clusters from before team-owned credentials keep their
fields; the control plane's identity stays approved only where the audit trail shows that
superusers alone chose it."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps

from apps.audit.models import AuditEntry
from apps.autoscaling.actuators import ActuatorError
from apps.autoscaling.actuators.factory import actuator_for
from apps.inventory.models import Cluster
from tests.factories.inventory import ClusterFactory, DeploymentFactory

pytestmark = pytest.mark.django_db

migration = importlib.import_module("apps.inventory.migrations.0002_cluster_team_credentials")


def _legacy(roster, name: str, **fields) -> Cluster:
    return ClusterFactory(
        team=roster.team,
        name=name,
        **{"credentials": {}, "kubeconfig_path": "/etc/controlplane/kubeconfig", **fields},
    )


def _audit(cluster: Cluster, actor, action: str, changes: dict) -> None:
    AuditEntry.objects.create(
        actor=actor,
        actor_repr=actor.username,
        action=action,
        object_type="inventory.cluster",
        object_id=str(cluster.pk),
        object_repr=cluster.name,
        changes=changes,
        source="api",
    )


def test_migration__legacy_clusters__approved_only_when_superusers_chose_credentials(roster):
    by_root = _legacy(roster, "by-root")
    _audit(by_root, roster.superuser, "create", {"kubeconfig_path": [None, "/etc/x"]})
    _audit(by_root, roster.operator, "update", {"description": ["", "notes"]})
    by_operator = _legacy(roster, "by-operator", in_cluster=True, kubeconfig_path="")
    _audit(by_operator, roster.operator, "create", {"in_cluster": [None, True]})
    changed_by_operator = _legacy(roster, "changed-by-operator")
    _audit(changed_by_operator, roster.superuser, "create", {})
    _audit(changed_by_operator, roster.operator, "update", {"kubeconfig_path": ["/a", "/b"]})
    untracked = _legacy(
        roster, "untracked", kind="aws", kubeconfig_path="", kube_context="", aws_region="us-east-1"
    )

    migration.approve_from_audit_trail(apps, None)

    approved = dict(Cluster.objects.values_list("name", "process_identity_approved"))
    assert approved == {
        "by-root": True,
        "by-operator": False,
        "changed-by-operator": False,
        "untracked": False,
    }
    untracked.refresh_from_db()
    assert untracked.aws_credentials_source == "default-chain"
    by_root.refresh_from_db()
    assert by_root.kubeconfig_path == "/etc/controlplane/kubeconfig"


def test_migration__unapproved_legacy_cluster__kept_and_actuator_refuses_with_reason(roster):
    cluster = _legacy(roster, "old")
    deployment = DeploymentFactory(team=roster.team, cluster=cluster)

    migration.approve_from_audit_trail(apps, None)

    cluster.refresh_from_db()
    assert cluster.kubeconfig_path == "/etc/controlplane/kubeconfig"
    with pytest.raises(ActuatorError) as info:
        actuator_for(deployment)
    assert info.value.permanent_reason == "credentials-refused"
    assert "no superuser approved" in info.value.message
