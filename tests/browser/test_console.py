"""The console in a real browser: login and overview, the deployment page's charts, the
autoscaling controls (audited), what a viewer may do, team scoping, accessibility and
screenshots of every page."""

from __future__ import annotations

import json
from typing import Any

import pytest

from apps.accounts.models import Role
from apps.audit.models import AuditEntry
from apps.autoscaling.models import DeploymentControl
from tests.browser.conftest import axe_serious
from tests.factories.accounts import MembershipFactory
from tests.factories.console import deployment_history
from tests.factories.inventory import DeploymentFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def fleet(transactional_db: None) -> dict[str, Any]:
    """Two deployments of one team with an hour of history, and another team's one."""
    chat = DeploymentFactory(name="chat", min_replicas=1, max_replicas=6)
    deployment_history(chat, minutes=60)
    code = DeploymentFactory(
        name="code", team=chat.team, model__team=chat.team, cluster=chat.cluster, framework="sglang"
    )
    deployment_history(code, minutes=60, alert=False)
    other = DeploymentFactory(name="other-team-secret")
    deployment_history(other, minutes=10)
    return {
        "chat": chat,
        "code": code,
        "other": other,
        "operator": MembershipFactory(team=chat.team, role=Role.OPERATOR).user,
        "viewer": MembershipFactory(team=chat.team, role=Role.VIEWER).user,
    }


def test_login_page__accessible(browser, live_server, screenshot):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/console/")
        assert page.url.startswith(f"{live_server.url}/console/login/")
        assert axe_serious(page) == []
        screenshot(page, "login")
    finally:
        context.close()


def test_overview__login__rows_filled_accessible(console_page, fleet, screenshot):
    page = console_page(fleet["operator"])
    rows = page.locator("#deployments tbody tr")
    assert rows.count() == 2
    chat = rows.filter(has_text="chat")
    assert chat.locator('[data-field="replicas"]').inner_text() == "2 / 0 / 2"
    assert "500 ms" in chat.inner_text()
    assert "other-team-secret" not in page.content()
    page.wait_for_selector("#deployments figure.sparkline canvas")
    assert axe_serious(page) == []
    screenshot(page, "overview")
    page.emulate_media(color_scheme="dark")
    assert axe_serious(page) == []
    screenshot(page, "overview-dark")


def test_overview__filter__htmx_swaps_table(console_page, fleet):
    page = console_page(fleet["operator"])
    page.get_by_label("Framework").select_option("sglang")
    page.wait_for_url("**framework=sglang**")
    page.wait_for_function("document.querySelectorAll('#deployments tbody tr').length === 1")
    assert "code" in page.locator("#deployments tbody").inner_text()


def test_deployment__charts_with_points_accessible(console_page, fleet, screenshot):
    page = console_page(fleet["operator"])
    page.get_by_role("link", name="chat").click()
    for chart in ("demand", "latency", "utilisation"):
        page.wait_for_selector(f'figure[data-chart="chart-{chart}-data"] canvas')
        data = json.loads(page.locator(f"#chart-{chart}-data").text_content())
        assert len(data["x"]) > 10
        assert any(v is not None for column in data["y"] for v in column)
    assert json.loads(page.locator("#chart-demand-data").text_content())["markers"]
    assert page.locator("time[data-local]").count() > 0  # shown in the browser's zone
    assert axe_serious(page) == []
    screenshot(page, "deployment")
    page.get_by_label("Range", exact=True).select_option("6h")
    page.wait_for_url("**range=6h**")
    page.wait_for_selector('figure[data-chart="chart-demand-data"][data-drawn] canvas')


def test_deployment__pause_resume_pin_unpin__audited(console_page, fleet):
    chat = fleet["chat"]
    page = console_page(fleet["operator"])
    page.goto(page.url + f"deployments/{chat.pk}/")
    page.locator("#pause-reason").fill("incident 7")
    page.get_by_role("button", name="Pause autoscaling").click()
    page.get_by_role("button", name="Resume autoscaling").wait_for()
    assert DeploymentControl.objects.get(deployment=chat).paused
    page.locator("#pause-reason").fill("over")
    page.get_by_role("button", name="Resume autoscaling").click()
    page.get_by_role("button", name="Pause autoscaling").wait_for()
    page.get_by_label("Replicas", exact=True).fill("3")
    page.locator("#pin-reason").fill("load test")
    page.get_by_role("button", name="Pin", exact=True).click()
    page.get_by_role("button", name="Unpin").wait_for()
    assert DeploymentControl.objects.get(deployment=chat).pinned_replicas == 3
    page.locator("#unpin-reason").fill("done")
    page.get_by_role("button", name="Unpin").click()
    page.wait_for_selector("text=Done; recorded in the audit log.")
    assert DeploymentControl.objects.get(deployment=chat).pinned_replicas is None
    verbs = list(AuditEntry.objects.order_by("id").values_list("verb", flat=True))
    assert verbs == ["pause", "resume", "pin", "unpin"]


def test_viewer__no_write_control_and_post_by_url_403(console_page, fleet, live_server):
    chat = fleet["chat"]
    page = console_page(fleet["viewer"])
    page.goto(f"{live_server.url}/console/deployments/{chat.pk}/")
    assert page.get_by_role("button", name="Pause autoscaling").count() == 0
    assert page.locator("form[action*='/pin/'], form[action*='/unpin/']").count() == 0
    token = page.context.cookies()
    csrf = next(c["value"] for c in token if c["name"] == "csrftoken")
    response = page.request.post(
        f"{live_server.url}/console/deployments/{chat.pk}/pause/",
        form={"paused": "true", "reason": "x"},
        headers={"X-CSRFToken": csrf, "Referer": live_server.url + "/"},
    )
    assert response.status == 403
    assert not DeploymentControl.objects.filter(deployment=chat).exists()


def test_other_team_deployment__404(console_page, fleet, live_server):
    page = console_page(fleet["operator"])
    response = page.goto(f"{live_server.url}/console/deployments/{fleet['other'].pk}/")
    assert response.status == 404
