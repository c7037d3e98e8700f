"""List endpoints run a fixed number of queries however many rows they return (no N+1).

The pinned numbers are: the caller's team roles, the page count, the page itself.
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.accounts.services import api_token_create
from tests.factories.accounts import MembershipFactory
from tests.factories.audit import AuditEntryFactory
from tests.factories.inventory import DeploymentFactory, DeploymentReadinessFactory

pytestmark = pytest.mark.django_db

LIST_QUERIES = {
    "/api/v1/deployments/": 3,
    "/api/v1/clusters/": 3,
    "/api/v1/models/": 3,
    "/api/v1/memberships/": 3,
    "/api/v1/audit/": 3,
    "/api/v1/teams/": 3,
}


def _populate(roster, n: int) -> None:
    """n deployments (each with its own cluster, model and readiness row changed by a user),
    n more members and n audit entries, in the caller's team."""
    for _ in range(n):
        deployment = DeploymentFactory(team=roster.team)
        DeploymentReadinessFactory(deployment=deployment, updated_by=roster.admin)
        MembershipFactory(team=roster.team)
        AuditEntryFactory(team=roster.team, actor=roster.operator, actor_repr="alpha-operator")


@pytest.mark.parametrize("rows", [3, 15])
@pytest.mark.parametrize("path", sorted(LIST_QUERIES))
def test_list__few_or_many_rows__pinned_query_count(
    roster, client_for, django_assert_num_queries, path, rows
):
    _populate(roster, rows)
    client = client_for(roster.operator)
    with django_assert_num_queries(LIST_QUERIES[path]):
        response = client.get(path)
    assert response.status_code == 200
    assert len(response.json()["results"]) >= min(rows, 1)


def test_deployment_list__rows_carry_related_data_fetched_in_the_same_query(
    roster, client_for, django_assert_num_queries
):
    _populate(roster, 15)
    with django_assert_num_queries(3):
        rows = client_for(roster.operator).get("/api/v1/deployments/").json()["results"]
    assert len(rows) == 15
    assert {row["readiness"]["updated_by"] for row in rows} == {"alpha-admin"}
    assert all(row["cluster"] and row["model"] for row in rows)


@pytest.mark.parametrize("rows", [3, 15])
def test_deployment_list__bearer_token__token_query_brings_the_team_roles(
    roster, django_assert_num_queries, rows
):
    """The token, its user and the user's team roles come in one query: a token-authenticated
    list runs the same 3 queries as a session-authenticated one."""
    _populate(roster, rows)
    issued = api_token_create(user=roster.operator, name="dashboards")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
    client.get("/api/v1/me/")  # first use records last_used_at; later uses within a minute do not
    with django_assert_num_queries(3):
        response = client.get("/api/v1/deployments/")
    assert response.json()["count"] == rows
