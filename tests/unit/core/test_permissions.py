"""Who may read and change what, for every team-owned resource of the API."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.accounts.models import Membership, Role, Team
from tests.factories.accounts import MembershipFactory, TeamFactory, UserFactory
from tests.factories.inventory import (
    ClusterFactory,
    DeploymentFactory,
    LLMModelFactory,
    deployment_payload,
    kubeconfig_document,
)

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Resource:
    path: str
    make: Callable[[Any], Any]  # roster -> object in roster.team
    create: Callable[[Any], dict[str, Any]]  # roster -> valid POST body for roster.team
    replace: Callable[[Any, Any], dict[str, Any]]  # roster, object -> valid PUT body
    patch: dict[str, Any]


def _deployment_body(team: Team, name: str) -> dict[str, Any]:
    return deployment_payload(
        team,
        name=name,
        gpu_type="l4",
        max_replicas=2,
        prometheus_selector=f'{{deployment="{name}"}}',
    )


RESOURCES = {
    "clusters": Resource(
        path="/api/v1/clusters/",
        make=lambda r: ClusterFactory(team=r.team),
        create=lambda r: {
            "team": r.team.pk,
            "name": "new-cluster",
            "kind": "kubernetes",
            "kubeconfig": kubeconfig_document(context="prod"),
            "kube_context": "prod",
        },
        replace=lambda r, o: {
            "team": r.team.pk,
            "name": o.name,
            "kind": "kubernetes",
            "kubeconfig": kubeconfig_document(context="prod"),
            "kube_context": "prod",
        },
        patch={"description": "changed"},
    ),
    "models": Resource(
        path="/api/v1/models/",
        make=lambda r: LLMModelFactory(team=r.team),
        create=lambda r: {"team": r.team.pk, "name": "org/new", "version": "v1"},
        replace=lambda r, o: {"team": r.team.pk, "name": o.name, "version": "v9"},
        patch={"description": "changed"},
    ),
    "deployments": Resource(
        path="/api/v1/deployments/",
        make=lambda r: DeploymentFactory(team=r.team),
        create=lambda r: _deployment_body(r.team, "new-deployment"),
        replace=lambda r, o: _deployment_body(r.team, o.name),
        patch={"max_replicas": 9},
    ),
    "teams": Resource(
        path="/api/v1/teams/",
        make=lambda r: r.team,
        create=lambda r: {"name": "Charlie", "slug": "charlie"},
        replace=lambda r, o: {"name": "Alpha Renamed", "slug": o.slug},
        patch={"description": "changed"},
    ),
    "memberships": Resource(
        path="/api/v1/memberships/",
        make=lambda r: MembershipFactory(team=r.team, role=Role.VIEWER),
        create=lambda r: {"team": r.team.pk, "user": UserFactory().username, "role": "viewer"},
        replace=lambda r, o: {"team": r.team.pk, "user": o.user.username, "role": "operator"},
        patch={"role": "operator"},
    ),
}
WRITES = ("post", "patch", "put", "delete")


def _request(client: APIClient, resource: Resource, roster: Any, method: str) -> Any:
    if method == "post":
        return client.post(resource.path, resource.create(roster))
    obj = resource.make(roster)
    url = f"{resource.path}{obj.pk}/"
    if method == "patch":
        return client.patch(url, resource.patch)
    if method == "put":
        return client.put(url, resource.replace(roster, obj))
    if method == "delete":
        return client.delete(url)
    return client.get(url)


# --- anonymous ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["list", "get", *WRITES])
@pytest.mark.parametrize("name", sorted(RESOURCES))
def test_anonymous__any_request__401(roster, name, method):
    resource, client = RESOURCES[name], APIClient()
    if method == "list":
        response = client.get(resource.path)
    else:
        response = _request(client, resource, roster, method)
    assert response.status_code == 401
    assert "credentials" in response.json()["detail"]
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/tokens/"),
        ("post", "/api/v1/tokens/"),
        ("get", "/api/v1/audit/"),
        ("get", "/api/v1/me/"),
        ("get", "/api/v1/"),
    ],
)
def test_anonymous__personal_and_audit_endpoints__401(db, method, path):
    assert getattr(APIClient(), method)(path).status_code == 401


# --- member of another team ---------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", *WRITES[1:]])
@pytest.mark.parametrize("name", sorted(RESOURCES))
def test_outsider__object_of_another_team__404(roster, client_for, name, method):
    response = _request(client_for(roster.outsider), RESOURCES[name], roster, method)
    assert response.status_code == 404


OWN_TEAM_ROW = {
    "clusters": lambda r: ClusterFactory(team=r.other_team),
    "models": lambda r: LLMModelFactory(team=r.other_team),
    "deployments": lambda r: DeploymentFactory(team=r.other_team),
    "teams": lambda r: r.other_team,
    "memberships": lambda r: Membership.objects.get(user=r.outsider),
}


@pytest.mark.parametrize("name", sorted(RESOURCES))
def test_outsider__list__only_own_teams_objects(roster, client_for, name):
    resource = RESOURCES[name]
    theirs = resource.make(roster)
    own = OWN_TEAM_ROW[name](roster)
    body = client_for(roster.outsider).get(resource.path).json()
    ids = [row["id"] for row in body["results"]]
    assert theirs.pk not in ids
    assert ids == [own.pk]


# --- viewer -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(RESOURCES))
def test_viewer__list_and_detail__200(roster, client_for, name):
    resource = RESOURCES[name]
    obj = resource.make(roster)
    client = client_for(roster.viewer)
    listing = client.get(resource.path)
    assert listing.status_code == 200
    assert obj.pk in [row["id"] for row in listing.json()["results"]]
    assert client.get(f"{resource.path}{obj.pk}/").json()["id"] == obj.pk


# The kubeconfig's server is on 127.0.0.1: opt in to loopback destinations.
@pytest.mark.usefixtures("allow_loopback_outbound")
@pytest.mark.parametrize("method", WRITES)
@pytest.mark.parametrize("name", sorted(RESOURCES))
def test_viewer__write__403(roster, client_for, name, method):
    response = _request(client_for(roster.viewer), RESOURCES[name], roster, method)
    assert response.status_code == 403, response.json()
    assert response.json()["detail"]


# --- operator and admin -------------------------------------------------------------------

EXPECTED_WRITE_STATUS = {"post": 201, "patch": 200, "put": 200, "delete": 204}


# The kubeconfig's server is on 127.0.0.1: opt in to loopback destinations.
@pytest.mark.usefixtures("allow_loopback_outbound")
@pytest.mark.parametrize("method", WRITES)
@pytest.mark.parametrize("name", ["clusters", "models", "deployments"])
def test_operator__write_inventory__2xx(roster, client_for, name, method):
    response = _request(client_for(roster.operator), RESOURCES[name], roster, method)
    assert response.status_code == EXPECTED_WRITE_STATUS[method], response.content


@pytest.mark.parametrize("method", WRITES)
@pytest.mark.parametrize("name", ["teams", "memberships"])
def test_operator__team_administration__403(roster, client_for, name, method):
    response = _request(client_for(roster.operator), RESOURCES[name], roster, method)
    assert response.status_code == 403, response.content


@pytest.mark.parametrize("method", WRITES)
def test_team_admin__manage_memberships__2xx(roster, client_for, method):
    response = _request(client_for(roster.admin), RESOURCES["memberships"], roster, method)
    assert response.status_code == EXPECTED_WRITE_STATUS[method], response.content


@pytest.mark.parametrize(("method", "expected"), [("patch", 200), ("put", 200)])
def test_team_admin__edit_own_team__200(roster, client_for, method, expected):
    response = _request(client_for(roster.admin), RESOURCES["teams"], roster, method)
    assert response.status_code == expected, response.content


@pytest.mark.parametrize("method", ["post", "delete"])
def test_team_admin__create_or_delete_team__403_superuser_only(roster, client_for, method):
    response = _request(client_for(roster.admin), RESOURCES["teams"], roster, method)
    assert response.status_code == 403
    assert "superuser" in response.json()["detail"].lower()
    assert Team.objects.filter(pk=roster.team.pk).exists()


def test_team_admin__membership_moved_to_team_where_only_viewer__403(roster, client_for):
    MembershipFactory(user=roster.admin, team=roster.other_team, role=Role.VIEWER)
    member = MembershipFactory(team=roster.team)
    response = client_for(roster.admin).patch(
        f"/api/v1/memberships/{member.pk}/", {"team": roster.other_team.pk}
    )
    assert response.status_code == 403
    member.refresh_from_db()
    assert member.team_id == roster.team.pk


def test_operator__deployment_moved_to_team_where_only_viewer__403(roster, client_for):
    MembershipFactory(user=roster.operator, team=roster.other_team, role=Role.VIEWER)
    deployment = DeploymentFactory(team=roster.team)
    response = client_for(roster.operator).patch(
        f"/api/v1/deployments/{deployment.pk}/",
        {
            "team": roster.other_team.pk,
            "cluster": ClusterFactory(team=roster.other_team).pk,
            "model": LLMModelFactory(team=roster.other_team).pk,
        },
    )
    assert response.status_code == 403
    deployment.refresh_from_db()
    assert deployment.team_id == roster.team.pk


# --- superuser ----------------------------------------------------------------------------


def test_superuser__team_list__all_teams(roster, client_for):
    TeamFactory(slug="zulu")
    body = client_for(roster.superuser).get("/api/v1/teams/").json()
    assert [row["slug"] for row in body["results"]] == ["alpha", "bravo", "zulu"]


@pytest.mark.parametrize(("method", "expected"), [("post", 201), ("delete", 204)])
def test_superuser__create_and_delete_team__allowed(roster, client_for, method, expected):
    response = _request(client_for(roster.superuser), RESOURCES["teams"], roster, method)
    assert response.status_code == expected, response.content


# --- team references in the body ----------------------------------------------------------


@pytest.mark.parametrize("name", ["clusters", "models", "deployments", "memberships"])
def test_create__in_team_caller_is_not_member_of__400_on_team(roster, client_for, name):
    resource = RESOURCES[name]
    body = resource.create(roster)  # objects of roster.team
    response = client_for(roster.outsider).post(resource.path, body)
    assert response.status_code == 400
    assert "does not exist" in " ".join(response.json()["errors"]["team"])


@pytest.mark.parametrize("field", ["cluster", "model"])
def test_deployment__references_other_teams_object__400(roster, client_for, field):
    foreign = {"cluster": ClusterFactory, "model": LLMModelFactory}[field](team=roster.other_team)
    body = _deployment_body(roster.team, "cross-team")
    body[field] = foreign.pk
    response = client_for(roster.operator).post("/api/v1/deployments/", body)
    assert response.status_code == 400
    assert response.json()["errors"][field]


@pytest.mark.parametrize("field", ["cluster", "model"])
def test_deployment__references_object_of_callers_other_team__400_belongs_to_another_team(
    roster, client_for, field
):
    MembershipFactory(user=roster.operator, team=roster.other_team, role=Role.OPERATOR)
    foreign = {"cluster": ClusterFactory, "model": LLMModelFactory}[field](team=roster.other_team)
    body = _deployment_body(roster.team, "cross-team")
    body[field] = foreign.pk
    response = client_for(roster.operator).post("/api/v1/deployments/", body)
    assert response.status_code == 400
    assert "belongs to another team" in " ".join(response.json()["errors"][field])


@pytest.mark.parametrize(
    "body",
    [
        {"name": "c", "kind": "kubernetes", "prometheus_url": "http://localhost:9090"},
        {"name": "c", "kind": "kubernetes", "kubeconfig": "not: [yaml"},
        {},
    ],
)
def test_viewer__create_with_any_body__403_before_validation(roster, client_for, body):
    # A viewer has no team to create in: the answer is 403 whatever the body, and the
    # body is not validated (no DNS look-up of its URLs, no kubeconfig parsing).
    from apps.inventory.models import Cluster

    response = client_for(roster.viewer).post(
        "/api/v1/clusters/", {"team": roster.team.pk, **body}, format="json"
    )
    assert response.status_code == 403, response.content
    assert "operator role" in response.json()["detail"]
    assert not Cluster.objects.exists()
