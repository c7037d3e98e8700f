"""List endpoints run a fixed number of queries however many rows they return (no N+1).

The pinned numbers are: the caller's team roles and the page itself; a first page shorter
than the limit is the whole list, so it needs no COUNT query. A longer list, or a later page,
adds its COUNT.
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
    "/api/v1/deployments/": 2,
    "/api/v1/clusters/": 2,
    "/api/v1/models/": 2,
    "/api/v1/memberships/": 2,
    "/api/v1/audit/": 2,
    "/api/v1/teams/": 2,
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
    with django_assert_num_queries(2):
        rows = client_for(roster.operator).get("/api/v1/deployments/").json()["results"]
    assert len(rows) == 15
    assert {row["readiness"]["updated_by"] for row in rows} == {"alpha-admin"}
    assert all(row["cluster"] and row["model"] for row in rows)


@pytest.mark.parametrize("rows", [3, 15])
def test_deployment_list__bearer_token__token_query_brings_the_team_roles(
    roster, django_assert_num_queries, rows
):
    """The token, its user and the user's team roles come in one query: a token-authenticated
    list runs the same 2 queries as a session-authenticated one."""
    _populate(roster, rows)
    issued = api_token_create(user=roster.operator, name="dashboards")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
    client.get("/api/v1/me/")  # first use records last_used_at; later uses within a minute do not
    with django_assert_num_queries(2):
        response = client.get("/api/v1/deployments/")
    assert response.json()["count"] == rows


@pytest.mark.parametrize(
    ("rows", "query", "queries", "shown", "more"),
    [
        (4, "limit=5", 2, 4, False),  # shorter than the limit: the page is the whole list
        (5, "limit=5", 3, 5, False),  # as long as the limit: there may be more, so count
        (6, "limit=5", 3, 5, True),
        (6, "limit=5&offset=5", 3, 1, False),  # a later page always counts
        (6, "limit=5&offset=10", 2, 0, False),  # past the end: counted, no page query (DRF)
        (0, "", 2, 0, False),
    ],
)
def test_deployment_list__first_page_shorter_than_the_limit__no_count_query_same_count(
    roster, client_for, django_assert_num_queries, rows, query, queries, shown, more
):
    for _ in range(rows):
        DeploymentFactory(team=roster.team)
    client = client_for(roster.operator)
    with django_assert_num_queries(queries):
        body = client.get(f"/api/v1/deployments/?{query}").json()
    assert body["count"] == rows
    assert len(body["results"]) == shown
    assert (body["next"] is not None) is more
