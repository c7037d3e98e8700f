"""audit.services.audited: one entry per change made in its block, none for a failed one."""

from __future__ import annotations

import pytest
from django.db import transaction

from apps.accounts.models import Team
from apps.audit.models import AuditAction, AuditEntry
from apps.audit.services import audited
from tests.factories.accounts import TeamFactory
from tests.factories.inventory import DeploymentFactory

pytestmark = pytest.mark.django_db


def test_update__diff_between_entry_and_exit_of_the_block(roster):
    deployment = DeploymentFactory(team=roster.team, max_replicas=4, min_replicas=1)
    with audited(actor=roster.operator, action=AuditAction.UPDATE, instance=deployment):
        deployment.max_replicas = 8
        deployment.save()

    entry = AuditEntry.objects.get()
    assert (entry.action, entry.actor, entry.team) == ("update", roster.operator, roster.team)
    assert entry.changes == {"max_replicas": [4, 8]}


def _update_then_fail(*, actor, deployment) -> None:
    with audited(actor=actor, action=AuditAction.UPDATE, instance=deployment):
        deployment.max_replicas = 8
        deployment.save()
        raise RuntimeError("refused after saving")


def test_block_raises__nothing_recorded(roster):
    deployment = DeploymentFactory(team=roster.team, max_replicas=4)
    with pytest.raises(RuntimeError):
        _update_then_fail(actor=roster.operator, deployment=deployment)
    assert not AuditEntry.objects.exists()


def test_create__instance_set_in_the_block__after_only(roster):
    with audited(actor=roster.superuser, action=AuditAction.CREATE) as change:
        change.instance = TeamFactory(slug="charlie", name="Charlie")

    entry = AuditEntry.objects.get()
    assert entry.action == "create"
    assert entry.changes["slug"] == [None, "charlie"]
    assert entry.object_id == str(change.instance.pk)


def test_delete__recorded_while_the_row_still_exists__before_only(roster):
    team = TeamFactory(slug="doomed")
    team_id = team.pk
    with transaction.atomic():
        with audited(actor=roster.superuser, action=AuditAction.DELETE, instance=team):
            assert AuditEntry.objects.filter(team_id=team_id).count() == 1
            team.delete()

    entry = AuditEntry.objects.get()
    assert (entry.action, entry.object_id) == ("delete", str(team_id))
    assert entry.changes["slug"] == ["doomed", None]
    assert not Team.objects.filter(pk=team_id).exists()


def test_snapshots_off__only_extra(roster):
    deployment = DeploymentFactory(team=roster.team, max_replicas=4)
    with audited(
        actor=roster.operator,
        action=AuditAction.ACTION,
        verb="acknowledge",
        instance=deployment,
        extra={"comment": "on it"},
        snapshots=False,
    ):
        deployment.max_replicas = 8
        deployment.save()

    entry = AuditEntry.objects.get()
    assert (entry.verb, entry.changes) == ("acknowledge", {"comment": "on it"})
