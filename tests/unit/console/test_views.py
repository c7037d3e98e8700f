"""The console's pages: login, scoping (404 for another team's deployment, 403 for a
viewer's write), writes through the audited services, htmx partials."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.accounts.models import Role
from apps.audit.models import AuditEntry
from apps.autoscaling.models import DeploymentControl
from tests.assertions import nothing_stored
from tests.factories.accounts import MembershipFactory, UserFactory
from tests.factories.console import deployment_history
from tests.factories.inventory import DeploymentFactory

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def deployment():
    deployment = DeploymentFactory(name="chat-a", min_replicas=1, max_replicas=4)
    deployment_history(deployment, minutes=30)
    return deployment


def _member(deployment, role):
    return MembershipFactory(team=deployment.team, role=role).user


def test_anonymous__console__redirects_to_console_login():
    response = Client().get("/console/")
    assert response.status_code == 302
    assert response["Location"].startswith("/console/login/")


def test_root__redirects_to_console():
    assert Client().get("/")["Location"] == "/console/"


def test_login__same_accounts__lands_on_overview(deployment):
    user = _member(deployment, Role.VIEWER)
    response = Client().post(
        "/console/login/", {"username": user.username, "password": "correct-horse-battery"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/console/"


def test_overview__member__row_with_figures(deployment):
    body = _client(_member(deployment, Role.VIEWER)).get("/console/").content.decode()
    assert "chat-a" in body
    assert 'data-field="replicas">2 / 0 / 2<' in body
    assert "500 ms" in body  # the TTFT objective
    assert "60%" in body  # error budget left
    assert 'id="spark-' in body


def test_overview__other_team__not_listed(deployment):
    other = DeploymentFactory(name="secret-b")
    body = _client(_member(deployment, Role.VIEWER)).get("/console/").content.decode()
    assert "chat-a" in body
    assert other.name not in body


def test_overview__htmx__table_partial_only(deployment):
    client = _client(_member(deployment, Role.VIEWER))
    body = client.get("/console/", HTTP_HX_REQUEST="true").content.decode()
    assert body.lstrip().startswith('<section id="deployments"')
    assert "<html" not in body


def test_overview__filter_by_framework__narrows(deployment):
    user = UserFactory()
    user.is_superuser = True
    user.save()
    DeploymentFactory(name="tgi-one", framework="tgi")
    body = _client(user).get("/console/?framework=tgi").content.decode()
    assert "tgi-one" in body
    assert "chat-a" not in body


def test_deployment__other_team__404(deployment):
    other = DeploymentFactory()
    client = _client(_member(deployment, Role.OPERATOR))
    assert client.get(f"/console/deployments/{other.pk}/").status_code == 404
    with nothing_stored():
        response = client.post(
            f"/console/deployments/{other.pk}/pause/", {"paused": "true", "reason": "x"}
        )
    assert response.status_code == 404


def test_deployment__viewer__no_write_control_and_post_403(deployment):
    client = _client(_member(deployment, Role.VIEWER))
    body = client.get(f"/console/deployments/{deployment.pk}/").content.decode()
    assert "chart-demand-data" in body
    assert "/pause/" not in body
    assert "/pin/" not in body
    for verb in ("pause", "pin", "unpin"):
        response = client.post(
            f"/console/deployments/{deployment.pk}/{verb}/",
            {"reason": "x", "paused": "true", "replicas": 2, "minutes": 5},
        )
        assert response.status_code == 403
    assert not DeploymentControl.objects.filter(deployment=deployment).exists()
    assert not AuditEntry.objects.filter(verb__in=["pause", "pin", "unpin"]).exists()


def test_deployment__operator__pause_resume_pin_unpin_audited(deployment):
    client = _client(_member(deployment, Role.OPERATOR))
    page = f"/console/deployments/{deployment.pk}/"
    assert "/pause/" in client.get(page).content.decode()
    client.post(page + "pause/", {"paused": "true", "reason": "incident 42"})
    assert DeploymentControl.objects.get(deployment=deployment).paused
    client.post(page + "pause/", {"paused": "false", "reason": "over"})
    assert not DeploymentControl.objects.get(deployment=deployment).paused
    client.post(page + "pin/", {"replicas": 3, "minutes": 30, "reason": "load test"})
    assert DeploymentControl.objects.get(deployment=deployment).pinned_replicas == 3
    client.post(page + "unpin/", {"reason": "done"})
    assert DeploymentControl.objects.get(deployment=deployment).pinned_replicas is None
    entries = list(AuditEntry.objects.order_by("id").values_list("verb", "changes"))
    assert [verb for verb, _ in entries] == ["pause", "resume", "pin", "unpin"]
    assert entries[0][1]["reason"] == "incident 42"
    # The audit log names the deployment, not its id.
    assert set(AuditEntry.objects.values_list("object_repr", flat=True)) == {"control of chat-a"}


def test_deployment__pin_out_of_bounds__refused_by_service(deployment):
    client = _client(_member(deployment, Role.OPERATOR))
    page = f"/console/deployments/{deployment.pk}/"
    response = client.post(
        page + "pin/", {"replicas": 9, "minutes": 30, "reason": "x"}, follow=True
    )
    assert "outside the deployment" in response.content.decode()
    assert not AuditEntry.objects.filter(verb="pin").exists()


def test_deployment__missing_reason__nothing_changed(deployment):
    client = _client(_member(deployment, Role.OPERATOR))
    client.post(f"/console/deployments/{deployment.pk}/pause/", {"paused": "true"})
    assert not DeploymentControl.objects.filter(deployment=deployment, paused=True).exists()


def test_deployment__get_on_write_url__405(deployment):
    client = _client(_member(deployment, Role.OPERATOR))
    assert client.get(f"/console/deployments/{deployment.pk}/pause/").status_code == 405


def test_deployment__htmx_range__charts_partial(deployment):
    client = _client(_member(deployment, Role.VIEWER))
    body = client.get(
        f"/console/deployments/{deployment.pk}/?range=6h", HTTP_HX_REQUEST="true"
    ).content.decode()
    assert body.lstrip().startswith('<div id="charts"')
    assert "chart-latency-data" in body


@pytest.mark.parametrize(
    ("verb", "data", "expected"),
    [
        ("pause", {"paused": "true", "reason": ""}, "reason"),
        ("pin", {"replicas": 2, "minutes": 0, "reason": "load test"}, "minutes"),
        ("pin", {"replicas": "two", "minutes": 30, "reason": "load test"}, "replicas"),
        ("pin", {"replicas": 9, "minutes": 30, "reason": "load test"}, "9"),
        ("unpin", {}, "reason"),
    ],
    ids=[
        "pause-no-reason",
        "pin-zero-minutes",
        "pin-not-a-number",
        "pin-above-max",
        "unpin-no-reason",
    ],
)
def test_deployment__bad_control_input__error_shown_nothing_stored(
    deployment, verb, data, expected
):
    client = _client(_member(deployment, Role.OPERATOR))
    page = f"/console/deployments/{deployment.pk}/"
    with nothing_stored():
        response = client.post(page + f"{verb}/", data, follow=True)
    assert response.status_code == 200
    errors = [m.message for m in response.context["messages"] if m.level_tag == "error"]
    assert len(errors) == 1, errors
    assert expected in errors[0], errors
