"""Teams and memberships through the API, and the caller's own view of them."""

from __future__ import annotations

import pytest

from apps.accounts.models import Membership, Role, Team
from tests.assertions import nothing_stored
from tests.factories.accounts import MembershipFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_team__superuser_creates_admin_edits_superuser_deletes(roster, client_for):
    root, admin = client_for(roster.superuser), client_for(roster.admin)
    created = root.post("/api/v1/teams/", {"name": "Search", "slug": "search"})
    assert created.status_code == 201, created.json()
    team_id = created.json()["id"]
    MembershipFactory(user=roster.admin, team_id=team_id, role=Role.ADMIN)

    admin = client_for(type(roster.admin).objects.get(pk=roster.admin.pk))
    patched = admin.patch(f"/api/v1/teams/{team_id}/", {"description": "ranking models"})
    assert patched.status_code == 200, patched.json()
    assert Team.objects.get(pk=team_id).description == "ranking models"

    assert root.delete(f"/api/v1/teams/{team_id}/").status_code == 204
    assert not Team.objects.filter(pk=team_id).exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "Bad", "slug": "Not A Slug"}, "slug"),
        ({"name": "Bad", "slug": "-leading"}, "slug"),
        ({"name": "Alpha", "slug": "alpha-2"}, "name"),
        ({"name": "Dup", "slug": "alpha"}, "slug"),
    ],
)
def test_team__invalid_or_duplicate__400_with_field_message(roster, client_for, payload, field):
    Team.objects.filter(pk=roster.team.pk).update(name="Alpha")
    with nothing_stored():
        response = client_for(roster.superuser).post("/api/v1/teams/", payload)
    assert response.status_code == 400
    assert response.json()["errors"][field]


def test_team_list__search_filter_ordering(roster, client_for):
    TeamFactory(slug="search-infra", name="Search Infra")
    TeamFactory(slug="chat", name="Chat")
    root = client_for(roster.superuser)

    def slugs(query):
        return [row["slug"] for row in root.get(f"/api/v1/teams/?{query}").json()["results"]]

    assert slugs("search=infra") == ["search-infra"]
    assert slugs("slug=chat") == ["chat"]
    assert slugs("ordering=-slug") == ["search-infra", "chat", "bravo", "alpha"]
    assert slugs("limit=2&offset=1") == ["bravo", "chat"]


def test_membership__admin_adds_changes_and_removes_member(roster, client_for):
    admin = client_for(roster.admin)
    newcomer = UserFactory(username="newcomer")
    created = admin.post(
        "/api/v1/memberships/", {"team": roster.team.pk, "user": "newcomer", "role": "viewer"}
    )
    assert created.status_code == 201, created.json()
    assert created.json()["user"] == "newcomer"
    url = f"/api/v1/memberships/{created.json()['id']}/"

    assert admin.patch(url, {"role": "operator"}).json()["role"] == "operator"
    assert Membership.objects.get(user=newcomer).role == Role.OPERATOR

    assert admin.delete(url).status_code == 204
    assert not Membership.objects.filter(user=newcomer).exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"user": "alpha-viewer", "role": "viewer"}, "non_field_errors"),
        ({"user": "nobody", "role": "viewer"}, "user"),
        ({"user": "someone", "role": "owner"}, "role"),
    ],
)
def test_membership__duplicate_unknown_user_or_role__400(roster, client_for, payload, field):
    UserFactory(username="someone")
    with nothing_stored():
        response = client_for(roster.admin).post(
            "/api/v1/memberships/", {"team": roster.team.pk, **payload}
        )
    assert response.status_code == 400
    assert response.json()["errors"][field]


def test_membership_list__filter_by_role_and_username(roster, client_for):
    client = client_for(roster.viewer)

    def users(query):
        rows = client.get(f"/api/v1/memberships/?{query}").json()["results"]
        return [row["user"] for row in rows]

    assert users("") == ["alpha-admin", "alpha-operator", "alpha-viewer"]
    assert users("role=operator") == ["alpha-operator"]
    assert users("user__username=alpha-admin") == ["alpha-admin"]
    # Another team's id answers like an id that does not exist: it reveals nothing.
    other = client.get(f"/api/v1/memberships/?team={roster.other_team.pk}")
    unknown = client.get("/api/v1/memberships/?team=999999")
    assert other.status_code == unknown.status_code == 400


def test_me__roles_per_team(roster, client_for):
    MembershipFactory(user=roster.operator, team=roster.other_team, role=Role.VIEWER)
    body = client_for(roster.operator).get("/api/v1/me/").json()
    assert body["username"] == "alpha-operator"
    assert body["is_superuser"] is False
    assert sorted((m["team_slug"], m["role"]) for m in body["memberships"]) == [
        ("alpha", "operator"),
        ("bravo", "viewer"),
    ]
