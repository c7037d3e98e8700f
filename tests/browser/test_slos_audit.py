"""The SLO and audit pages in a real browser: the SLO list, an SLO's burn-down and burn
rates, the audit entry of a pause made on the deployment page with its diff expanded,
accessibility and screenshots."""

from __future__ import annotations

import json
from typing import Any

import pytest

from apps.accounts.models import Role
from apps.slos.models import SloState
from tests.browser.conftest import axe_serious
from tests.factories.accounts import MembershipFactory
from tests.factories.console import deployment_history
from tests.factories.inventory import DeploymentFactory
from tests.factories.slos import SloFactory, slo_history

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FAST_BURN = {"5m": 20.0, "30m": 7.0, "1h": 16.0, "2h": 2.0, "6h": 7.0, "1d": 1.0, "3d": 0.5}


@pytest.fixture
def slos(transactional_db: None) -> dict[str, Any]:
    """A deployment with two SLOs with two hours of history (one paging, its budget
    overspent), and another team's SLO."""
    chat = DeploymentFactory(name="chat", min_replicas=1, max_replicas=6)
    deployment_history(chat, minutes=30)
    paging = SloFactory(deployment=chat, name="chat-errors", sli_kind="error_ratio",
                        latency_metric="", threshold_seconds=None)  # fmt: skip
    slo_history(paging, minutes=120, budget_end=-3.5, state=SloState.PAGE,
                burn_rates=FAST_BURN, firing=["page:1h/5m"])  # fmt: skip
    calm = SloFactory(deployment=chat, name="chat-itl", latency_metric="itl")
    slo_history(calm, minutes=120, budget_end=0.7)
    other = SloFactory(name="other-team-slo")
    slo_history(other, minutes=10)
    return {
        "chat": chat,
        "paging": paging,
        "other": other,
        "operator": MembershipFactory(team=chat.team, role=Role.OPERATOR).user,
        "viewer": MembershipFactory(team=chat.team, role=Role.VIEWER).user,
    }


def test_slos__list_and_detail__burn_down_and_burn_rates_accessible(console_page, slos, screenshot):
    page = console_page(slos["viewer"])
    page.get_by_role("navigation", name="Main").get_by_role("link", name="SLOs").click()
    page.wait_for_url("**/console/slos/")
    rows = page.locator("#slos tbody tr")
    assert rows.count() == 3  # the two above and the one deployment_history adds
    paging = rows.filter(has_text="chat-errors")
    assert "exhausted (overspent 3.5x)" in paging.inner_text()
    assert "Fast burn (page)" in paging.inner_text()
    assert "other-team-slo" not in page.content()
    assert axe_serious(page) == []
    screenshot(page, "slos")

    page.get_by_label("State").select_option("page")
    page.wait_for_url("**state=page**")
    page.wait_for_function("document.querySelectorAll('#slos tbody tr').length === 1")

    page.get_by_role("link", name="chat-errors").click()
    page.get_by_role("heading", level=1, name="chat-errors").wait_for()
    for chart in ("budget", "sli", "burn"):
        page.wait_for_selector(f'figure[data-chart="chart-{chart}-data"][data-drawn] canvas')
        data = json.loads(page.locator(f"#chart-{chart}-data").text_content())
        assert len(data["x"]) > 100
    budget = json.loads(page.locator("#chart-budget-data").text_content())["y"][0]
    assert budget[0] > 99
    assert budget[-1] < 0  # burnt down past zero
    burn_rows = page.locator("#burn-rates tbody tr")
    assert burn_rows.count() == 4
    assert "firing" in burn_rows.nth(0).locator('[data-field="firing"]').inner_text()
    assert "held back" in burn_rows.nth(1).inner_text()
    assert page.locator("#history tbody tr").count() == 2
    assert axe_serious(page) == []
    screenshot(page, "slo-detail")
    page.emulate_media(color_scheme="dark")
    assert axe_serious(page) == []


def test_slo__other_team__404(console_page, slos, live_server):
    page = console_page(slos["viewer"])
    response = page.goto(f"{live_server.url}/console/slos/{slos['other'].pk}/")
    assert response.status == 404


def test_audit__pause_on_deployment_page__entry_with_diff(console_page, slos, screenshot):
    chat = slos["chat"]
    page = console_page(slos["operator"])
    page.goto(page.url + f"deployments/{chat.pk}/")
    assert page.locator("#slos").get_by_role("link", name="chat-errors").count() == 1
    page.locator("#pause-reason").fill("incident <7>")
    page.get_by_role("button", name="Pause autoscaling").click()
    page.get_by_role("button", name="Resume autoscaling").wait_for()

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit").click()
    page.wait_for_url("**/console/audit/")
    entry = page.locator("#audit-entries tbody tr").filter(has_text="pause").first
    assert slos["operator"].username in entry.inner_text()
    diff = entry.locator("table.diff")
    assert not diff.is_visible()
    entry.locator("summary").click()
    diff.wait_for(state="visible")
    paused = diff.locator("tr.diff-changed").filter(has_text="paused")
    assert paused.locator("del").inner_text() == "false"
    assert paused.locator("ins").inner_text() == "true"
    assert '"incident <7>"' in diff.locator("tr.diff-note").inner_text()
    assert axe_serious(page) == []
    screenshot(page, "audit")
    page.emulate_media(color_scheme="dark")
    assert axe_serious(page) == []

    page.get_by_label("Action").select_option("create")
    page.wait_for_url("**action=create**")
    page.wait_for_selector("#audit p.empty")


def test_audit__viewer__sees_team_entries_not_other_teams(console_page, slos, live_server):
    from tests.factories.audit import AuditEntryFactory

    AuditEntryFactory(team=slos["chat"].team, object_repr="ours-entry")
    AuditEntryFactory(team=slos["other"].team, object_repr="theirs-entry")
    page = console_page(slos["viewer"])
    page.goto(f"{live_server.url}/console/audit/")
    assert "ours-entry" in page.locator("#audit").inner_text()
    assert "theirs-entry" not in page.content()
