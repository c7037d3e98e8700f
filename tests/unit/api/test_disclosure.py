"""Answers reveal nothing about other teams or other users, and nothing about the database
(finding 9 of issue 11); names are one printable line without path tricks."""

from __future__ import annotations

import pytest
from django.db import DataError

from apps.accounts.models import Membership
from apps.api.exceptions import exception_handler
from tests.factories.accounts import UserFactory
from tests.factories.inventory import DeploymentFactory
from tests.factories.slos import SloFactory


def _other_team_objects(roster):
    deployment = DeploymentFactory(team=roster.other_team)
    return {
        "team": roster.other_team.pk,
        "model": deployment.model_id,
        "cluster": deployment.cluster_id,
        "deployment": deployment.pk,
        "slo": SloFactory(deployment=deployment).pk,
    }


FILTERS = [
    ("/api/v1/deployments/", "model"),
    ("/api/v1/deployments/", "cluster"),
    ("/api/v1/deployments/", "team"),
    ("/api/v1/models/", "team"),
    ("/api/v1/clusters/", "team"),
    ("/api/v1/slos/", "deployment"),
    ("/api/v1/slo-events/", "slo"),
    ("/api/v1/autoscaling/decisions/", "deployment"),
    ("/api/v1/autoscaling/actions/", "deployment"),
    ("/api/v1/alerts/", "deployment"),
    ("/api/v1/alerts/rules/", "deployment"),
    ("/api/v1/metrics/custom-queries/", "deployment"),
    ("/api/v1/metrics/deployments/", "deployment__team"),
    ("/api/v1/memberships/", "team"),
    ("/api/v1/audit/", "team"),
]


@pytest.mark.parametrize(("path", "param"), FILTERS)
def test_fk_filter__other_teams_id__same_answer_as_unknown_id(client_for, roster, path, param):
    ids = _other_team_objects(roster)
    ids["deployment__team"] = ids["team"]
    client = client_for(roster.viewer)
    other = client.get(f"{path}?{param}={ids[param]}")
    unknown = client.get(f"{path}?{param}=987654321")
    assert other.status_code == unknown.status_code == 400
    assert other.json() == unknown.json()
    assert set(other.json()["errors"]) == {param}


def test_fk_filter__own_teams_id__still_filters(client_for, roster):
    mine = DeploymentFactory(team=roster.team)
    DeploymentFactory(team=roster.team)
    rows = client_for(roster.viewer).get(f"/api/v1/deployments/?model={mine.model_id}").json()
    assert [row["id"] for row in rows["results"]] == [mine.pk]


def test_fk_filter__superuser__any_team(client_for, roster):
    theirs = DeploymentFactory(team=roster.other_team)
    rows = client_for(roster.superuser).get(f"/api/v1/deployments/?model={theirs.model_id}")
    assert [row["id"] for row in rows.json()["results"]] == [theirs.pk]


@pytest.mark.parametrize("who", ["viewer", "operator", "outsider"])
def test_membership_create__not_allowed__same_answer_for_existing_and_unknown_user(
    client_for, roster, who
):
    UserFactory(username="existing-person")
    client = client_for(getattr(roster, who))
    answers = [
        client.post(
            "/api/v1/memberships/",
            {"team": roster.team.pk, "user": username, "role": "viewer"},
            format="json",
        )
        for username in ("existing-person", "nobody-by-this-name")
    ]
    assert answers[0].status_code == answers[1].status_code in (400, 403)
    assert answers[0].json() == answers[1].json()
    assert not Membership.objects.filter(user__username="existing-person").exists()


def test_membership_create__admin__inactive_and_unknown_user_read_alike(client_for, roster):
    UserFactory(username="gone", is_active=False)
    client = client_for(roster.admin)
    answers = [
        client.post(
            "/api/v1/memberships/",
            {"team": roster.team.pk, "user": username, "role": "viewer"},
            format="json",
        ).json()
        for username in ("gone", "never-was")
    ]
    assert answers[0]["errors"]["user"] == answers[1]["errors"]["user"]


def test_membership_create__admin__adds_member(client_for, roster):
    UserFactory(username="newcomer")
    response = client_for(roster.admin).post(
        "/api/v1/memberships/",
        {"team": roster.team.pk, "user": "newcomer", "role": "viewer"},
        format="json",
    )
    assert response.status_code == 201, response.json()


def test_data_error__answer__no_sql_but_logged(caplog):
    error = DataError(
        'value too long for type character varying(100)\nCONTEXT: INSERT INTO "secret_table"'
    )
    response = exception_handler(error, {})
    assert response is not None
    assert response.status_code == 400
    text = str(response.data)
    for leaked in ("secret_table", "INSERT", "varying"):
        assert leaked not in text
    assert "api-data-error" in caplog.text


BAD_NAMES = ["two\nlines", "tab\there", "../../etc/passwd", "a/b", "back\\slash", "bell\x07"]


@pytest.mark.parametrize("name", BAD_NAMES)
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/teams/", {"slug": "team-x"}),
        ("/api/v1/tokens/", {}),
        ("/api/v1/alerts/routes/", {"team": "TEAM"}),
        ("/api/v1/alerts/inhibit-rules/", {"team": "TEAM", "source_matchers": {}}),
        ("/api/v1/alerts/channels/", {"team": "TEAM", "kind": "webhook"}),
    ],
)
def test_name__control_characters_or_path__400_on_name(client_for, roster, name, path, body):
    body = {k: roster.team.pk if v == "TEAM" else v for k, v in body.items()}
    response = client_for(roster.superuser).post(path, {**body, "name": name}, format="json")
    assert response.status_code == 400
    assert "name" in response.json()["errors"]


@pytest.mark.parametrize("name", ["meta-llama/../x", "/etc/passwd", "two\nlines", "a\\b"])
def test_model_name__path_tricks__400(client_for, roster, name):
    response = client_for(roster.operator).post(
        "/api/v1/models/",
        {"team": roster.team.pk, "name": name, "version": "v1"},
        format="json",
    )
    assert response.status_code == 400
    assert "name" in response.json()["errors"]


def test_model_name__hugging_face_repo_id__accepted(client_for, roster):
    response = client_for(roster.operator).post(
        "/api/v1/models/",
        {"team": roster.team.pk, "name": "meta-llama/Llama-3.1-8B-Instruct", "version": "main"},
        format="json",
    )
    assert response.status_code == 201, response.json()
