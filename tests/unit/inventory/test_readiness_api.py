"""The go-live checklist of a deployment."""

from __future__ import annotations

import pytest

from apps.inventory.models import DeploymentReadiness
from tests.factories.inventory import DeploymentFactory, DeploymentReadinessFactory

pytestmark = pytest.mark.django_db

ALL_ITEMS = [
    "model_files_verified",
    "version_confirmed",
    "performance_validated",
    "monitoring_configured",
    "alerts_configured",
]


@pytest.fixture
def deployment(roster):
    return DeploymentFactory(team=roster.team)


def _url(deployment):
    return f"/api/v1/deployments/{deployment.pk}/readiness/"


def test_get__new_deployment__not_ready_all_five_missing(roster, client_for, deployment):
    response = client_for(roster.viewer).get(_url(deployment))
    assert response.status_code == 200
    body = response.json()
    assert body["ready"] is False
    assert body["missing"] == ALL_ITEMS
    assert body["updated_by"] is None
    assert not DeploymentReadiness.objects.exists()


def test_patch__operator_checks_two_items__three_missing(roster, client_for, deployment):
    response = client_for(roster.operator).patch(
        _url(deployment), {"model_files_verified": True, "alerts_configured": True}
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["ready"] is False
    assert body["missing"] == [
        "version_confirmed",
        "performance_validated",
        "monitoring_configured",
    ]
    assert body["updated_by"] == "alpha-operator"
    stored = DeploymentReadiness.objects.get(deployment=deployment)
    assert stored.model_files_verified
    assert stored.alerts_configured


def test_patch__all_five_checked__ready_and_nothing_missing(roster, client_for, deployment):
    client = client_for(roster.operator)
    client.patch(_url(deployment), {"model_files_verified": True, "version_confirmed": True})
    response = client.patch(
        _url(deployment),
        {"performance_validated": True, "monitoring_configured": True, "alerts_configured": True},
    )
    assert response.json()["ready"] is True
    assert response.json()["missing"] == []
    assert client.get(_url(deployment)).json()["ready"] is True


def test_patch__uncheck_item__not_ready_again(roster, client_for, deployment):
    DeploymentReadinessFactory(deployment=deployment, **dict.fromkeys(ALL_ITEMS, True))
    response = client_for(roster.operator).patch(_url(deployment), {"version_confirmed": False})
    assert response.json() | {"updated_at": None} == {
        "ready": False,
        "missing": ["version_confirmed"],
        **dict.fromkeys(ALL_ITEMS, True),
        "version_confirmed": False,
        "notes": "",
        "updated_at": None,
        "updated_by": "alpha-operator",
    }


def test_patch__viewer__403_and_nothing_stored(roster, client_for, deployment):
    response = client_for(roster.viewer).patch(_url(deployment), {"version_confirmed": True})
    assert response.status_code == 403
    assert not DeploymentReadiness.objects.exists()


@pytest.mark.parametrize("method", ["get", "patch"])
def test_readiness__other_team__404(roster, client_for, deployment, method):
    response = getattr(client_for(roster.outsider), method)(
        _url(deployment), {"version_confirmed": True}
    )
    assert response.status_code == 404
    assert not DeploymentReadiness.objects.exists()


def test_patch__not_a_boolean__400_with_field_message(roster, client_for, deployment):
    response = client_for(roster.operator).patch(_url(deployment), {"version_confirmed": "maybe"})
    assert response.status_code == 400
    assert response.json()["errors"]["version_confirmed"]


def test_patch__read_only_summary_fields__ignored(roster, client_for, deployment):
    response = client_for(roster.operator).patch(
        _url(deployment), {"ready": True, "missing": [], "notes": "load test #42"}
    )
    assert response.json()["ready"] is False
    assert response.json()["notes"] == "load test #42"


def test_deployment_list__includes_readiness_summary(roster, client_for, deployment):
    DeploymentReadinessFactory(
        deployment=DeploymentFactory(team=roster.team, name="zz-ready"),
        **dict.fromkeys(ALL_ITEMS, True),
    )
    rows = client_for(roster.viewer).get("/api/v1/deployments/").json()["results"]
    summary = {
        row["name"]: (row["readiness"]["ready"], row["readiness"]["missing"]) for row in rows
    }
    assert summary == {deployment.name: (False, ALL_ITEMS), "zz-ready": (True, [])}
