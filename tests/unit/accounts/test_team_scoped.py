"""accounts.selectors.team_scoped: the one team filter of the API, the admin and selectors."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from apps.accounts.models import Role, Team
from apps.accounts.selectors import team_scoped
from apps.audit.models import AuditEntry
from apps.inventory.models import Deployment
from tests.factories.audit import AuditEntryFactory
from tests.factories.inventory import DeploymentFactory

pytestmark = pytest.mark.django_db


def _ids(queryset):
    return set(queryset.values_list("pk", flat=True))


def test_members_see_their_teams_rows__superusers_all__anonymous_none(roster):
    mine = DeploymentFactory(team=roster.team)
    theirs = DeploymentFactory(team=roster.other_team)
    rows = Deployment.objects.all()

    assert _ids(team_scoped(rows, user=roster.viewer)) == {mine.pk}
    assert _ids(team_scoped(rows, user=roster.outsider)) == {theirs.pk}
    assert _ids(team_scoped(rows, user=roster.superuser)) == {mine.pk, theirs.pk}
    assert _ids(team_scoped(rows, user=AnonymousUser())) == set()


def test_role__rows_of_teams_where_the_user_holds_at_least_that_role(roster):
    mine = DeploymentFactory(team=roster.team)
    rows = Deployment.objects.all()

    assert _ids(team_scoped(rows, user=roster.viewer, role=Role.OPERATOR)) == set()
    assert _ids(team_scoped(rows, user=roster.operator, role=Role.OPERATOR)) == {mine.pk}
    assert _ids(team_scoped(rows, user=roster.operator, role=Role.ADMIN)) == set()


def test_team_field__empty_for_the_team_model__a_path_through_relations(roster):
    DeploymentFactory(team=roster.team)
    assert _ids(team_scoped(Team.objects.all(), user=roster.viewer, team_field="")) == {
        roster.team.pk
    }
    # A path through a relation: the deployment's cluster's team.
    other = DeploymentFactory(team=roster.other_team)
    scoped = team_scoped(Deployment.objects.all(), user=roster.outsider, team_field="cluster__team")
    assert other.pk in _ids(scoped)
    assert all(row.cluster.team_id == roster.other_team.pk for row in scoped)


def test_include_global__admits_rows_of_no_team(roster):
    own = AuditEntryFactory(team=roster.team)
    global_ = AuditEntryFactory(team=None)
    AuditEntryFactory(team=roster.other_team)
    rows = AuditEntry.objects.all()

    assert _ids(team_scoped(rows, user=roster.viewer)) == {own.pk}
    assert _ids(team_scoped(rows, user=roster.viewer, include_global=True)) == {
        own.pk,
        global_.pk,
    }


def test_user_field__admits_the_users_own_rows_of_any_team__never_for_anonymous(roster):
    own_team = AuditEntryFactory(team=roster.team)
    own_action = AuditEntryFactory(team=roster.other_team, actor=roster.viewer)
    AuditEntryFactory(team=roster.other_team)
    AuditEntryFactory(team=None, actor=None)  # a system entry: no actor
    rows = AuditEntry.objects.all()

    assert _ids(team_scoped(rows, user=roster.viewer, user_field="actor_id")) == {
        own_team.pk,
        own_action.pk,
    }
    assert _ids(team_scoped(rows, user=AnonymousUser(), user_field="actor_id")) == set()
