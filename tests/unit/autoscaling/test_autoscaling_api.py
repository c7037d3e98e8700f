from __future__ import annotations

import pytest

from apps.accounts.models import Role
from apps.audit.models import AuditEntry
from apps.autoscaling.models import AutoscalingPolicy, DeploymentControl
from tests.assertions import nothing_stored
from tests.factories.accounts import MembershipFactory, UserFactory
from tests.factories.inventory import DeploymentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(client_for):
    deployment = DeploymentFactory(min_replicas=1, max_replicas=8)
    operator, viewer = UserFactory(), UserFactory()
    MembershipFactory(user=operator, team=deployment.team, role=Role.OPERATOR)
    MembershipFactory(user=viewer, team=deployment.team, role=Role.VIEWER)
    return deployment, client_for(operator), client_for(viewer)


def _policy(deployment, **overrides):
    body = {
        "deployment": deployment.pk,
        "mode": "dry-run",
        "targets": [{"signal": "queue_length", "value": 5}],
    }
    body.update(overrides)
    return body


def test_policy__valid__created_and_maps_to_engine_with_deployment_bounds(team):
    deployment, operator, _ = team
    response = operator.post(
        "/api/v1/autoscaling/policies/",
        _policy(
            deployment,
            cron_minimums=[{"start": "08:00", "end": "18:00", "min_replicas": 3}],
        ),
        format="json",
    )
    assert response.status_code == 201, response.json()
    policy = AutoscalingPolicy.objects.get(deployment=deployment).to_engine()
    assert (policy.min_replicas, policy.max_replicas) == (1, 8)
    assert policy.cron_minimums[0] == (8 * 3600, 18 * 3600, 3)
    assert policy.scale_down_stabilization_s == 300.0
    assert AuditEntry.objects.filter(object_type="autoscaling.autoscalingpolicy").exists()


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"targets": []}, "at least one target"),
        (
            {"targets": [{"signal": "queue_length", "value": 5, "kind": "vibes"}]},
            "unknown target kind",
        ),
        ({"targets": [{"signal": "queue_length", "value": -1}]}, "positive"),
        ({"targets": [{"value": 5}]}, "missing key 'signal'"),
        ({"cron_minimums": [{"start": "25:00", "end": "26:00", "min_replicas": 1}]}, "time of day"),
        ({"mode": "yolo"}, "not a valid choice"),
    ],
)
def test_policy__invalid__400_with_message_and_nothing_stored(team, overrides, fragment):
    deployment, operator, _ = team
    with nothing_stored():
        response = operator.post(
            "/api/v1/autoscaling/policies/", _policy(deployment, **overrides), format="json"
        )
    assert response.status_code == 400
    assert fragment in str(response.json()["errors"])
    assert not AutoscalingPolicy.objects.exists()


def test_policy__viewer_cannot_write__other_team_invisible(team, client_for):
    deployment, operator, viewer = team
    with nothing_stored():
        refused = viewer.post("/api/v1/autoscaling/policies/", _policy(deployment), format="json")
    assert refused.status_code == 403
    operator.post("/api/v1/autoscaling/policies/", _policy(deployment), format="json")
    stranger = client_for(UserFactory())
    assert stranger.get(f"/api/v1/autoscaling/policies/{deployment.pk}/").status_code == 404


def test_pin__within_bounds__held_and_audited__outside__400(team):
    deployment, operator, viewer = team
    url = f"/api/v1/autoscaling/control/{deployment.pk}/pin/"
    with nothing_stored():
        assert operator.post(url, {"replicas": 9}, format="json").status_code == 400
        assert viewer.post(url, {"replicas": 3}, format="json").status_code == 403
    response = operator.post(url, {"replicas": 3, "minutes": 30}, format="json")
    assert response.status_code == 200, response.json()
    control = DeploymentControl.objects.get(deployment=deployment)
    assert control.pinned_replicas == 3
    assert control.pinned_until is not None
    assert AuditEntry.objects.filter(verb="pin").exists()
    operator.post(f"/api/v1/autoscaling/control/{deployment.pk}/unpin/")
    control.refresh_from_db()
    assert control.pinned_replicas is None


def test_pause__deployment_by_operator__global_by_superuser_only(team, client_for):
    deployment, operator, _ = team
    response = operator.post(
        f"/api/v1/autoscaling/control/{deployment.pk}/pause/", {"paused": True}, format="json"
    )
    assert response.json()["paused"] is True
    assert (
        operator.post("/api/v1/autoscaling/pause/", {"paused": True}, format="json").status_code
        == 403
    )
    admin = client_for(UserFactory(is_superuser=True, is_staff=True))
    assert admin.post("/api/v1/autoscaling/pause/", {"paused": True}, format="json").json() == {
        "paused": True
    }
    assert operator.get("/api/v1/autoscaling/pause/").json() == {"paused": True}
    assert AuditEntry.objects.filter(verb="pause-all").exists()
