"""The deployment page's degradation section in a real browser: levels and toggles shown,
a flip with a confirmation and a reason changes what gateways are served, a pinned level
holds (also on the overview), the level history drawn on the charts, accessibility and
screenshots."""

from __future__ import annotations

import json
from typing import Any

import pytest

from apps.accounts.models import Role
from apps.toggles.evaluation import evaluate
from apps.toggles.models import DegradationState, ToggleChange
from apps.toggles.selectors import team_toggles
from tests.browser.conftest import axe_serious
from tests.factories.accounts import MembershipFactory
from tests.factories.console import deployment_history
from tests.factories.degradation import degradation_policy
from tests.factories.inventory import DeploymentFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def degradable(transactional_db: None) -> dict[str, Any]:
    """Deployment "chat" with an hour of history, a two-level policy over a team toggle
    (max_output_tokens, on at 4096) and its own shed_fraction toggle (off)."""
    chat = DeploymentFactory(name="chat", min_replicas=1, max_replicas=6)
    deployment_history(chat, minutes=60)
    policy = degradation_policy(deployment=chat, name="chat-degrade")
    return {
        "chat": chat,
        "policy": policy,
        "operator": MembershipFactory(team=chat.team, role=Role.OPERATOR).user,
        "viewer": MembershipFactory(team=chat.team, role=Role.VIEWER).user,
    }


def _served(deployment: Any, key: str) -> Any:
    definitions = team_toggles(team_id=deployment.team_id).for_deployment(deployment.name)
    return evaluate(definitions[key], {}).value


def _open(console_page: Any, user: Any, deployment: Any) -> Any:
    page = console_page(user)
    page.goto(f"{page.url}deployments/{deployment.pk}/")
    return page


def _row(page: Any, table: str, name: str) -> Any:
    return page.locator(f"#{table} tbody tr").filter(has=page.locator(f'th:text-is("{name}")'))


def test_section__level_and_toggles_shown_accessible(console_page, degradable, screenshot):
    page = _open(console_page, degradable["operator"], degradable["chat"])
    level = _row(page, "degradation-policies", "chat-degrade").locator('[data-field="level"]')
    assert level.inner_text() == "0 — not degraded"
    tokens = _row(page, "degradation-toggles", "max_output_tokens")
    assert tokens.locator('[data-field="served"] code').inner_text() == "4096"
    assert tokens.locator('[data-field="state"]').inner_text() == "on"
    shed = _row(page, "degradation-toggles", "shed_fraction")
    assert "this deployment" in shed.inner_text()
    assert shed.locator('[data-field="state"]').inner_text() == "off"
    page.wait_for_selector('figure[data-chart="chart-degradation-data"] canvas')
    assert axe_serious(page) == []
    screenshot(page, "deployment-degradation")
    page.emulate_media(color_scheme="dark")
    assert axe_serious(page) == []


def test_flip__confirmed_with_reason__served_value_changes(console_page, degradable):
    chat = degradable["chat"]
    page = _open(console_page, degradable["operator"], chat)
    asked: list[str] = []
    page.on("dialog", lambda dialog: asked.append(dialog.message))
    row = _row(page, "degradation-toggles", "max_output_tokens")
    row.get_by_label("Reason").fill("rollback of the cap")
    row.get_by_role("button", name="Turn off").click()
    page.wait_for_selector("text=Done; recorded in the audit log.")
    assert asked == ["Turn max_output_tokens off?"]
    assert _served(chat, "max_output_tokens") == 0
    row = _row(page, "degradation-toggles", "max_output_tokens")
    assert row.locator('[data-field="state"]').inner_text() == "off"
    assert row.locator('[data-field="served"] code').inner_text() == "0"
    assert ToggleChange.objects.filter(reason="rollback of the cap", enabled=False).exists()
    assert "rollback of the cap" in page.locator("#degradation-history").inner_text()


def test_flip__without_reason__not_sent(console_page, degradable):
    chat = degradable["chat"]
    page = _open(console_page, degradable["operator"], chat)
    row = _row(page, "degradation-toggles", "max_output_tokens")
    row.get_by_role("button", name="Turn off").click()
    reason = row.get_by_label("Reason")
    assert reason.evaluate("el => el.validity.valueMissing") is True
    assert _served(chat, "max_output_tokens") == 4096


def test_pin__level_applied_and_held_on_reload_and_overview(console_page, degradable, screenshot):
    chat, policy = degradable["chat"], degradable["policy"]
    page = _open(console_page, degradable["operator"], chat)
    row = _row(page, "degradation-policies", "chat-degrade")
    row.get_by_label("Level").select_option("2")
    row.get_by_label("Reason").first.fill("GPU loss in zone b")
    row.get_by_role("button", name="Pin level").click()
    page.wait_for_selector("text=Done; recorded in the audit log.")
    assert _served(chat, "shed_fraction") == {"low": 0.2}
    assert _served(chat, "max_output_tokens") == 512
    page.reload()
    row = _row(page, "degradation-policies", "chat-degrade")
    assert row.locator('[data-field="level"]').inner_text() == "2 — shed low"
    assert "pinned at 2" in row.locator('[data-field="pin"]').inner_text()
    assert DegradationState.objects.get(policy=policy).pinned_level == 2
    chart = json.loads(page.locator("#chart-degradation-data").text_content())
    assert any(a["label"] == "chat-degrade: 0→2" for a in chart["annotations"])
    assert [v for v in chart["y"][0] if v is not None][-1] == 2.0
    page.wait_for_selector('figure[data-chart="chart-degradation-data"] canvas')
    screenshot(page, "deployment-degradation-pinned")
    page.goto(page.url.split("/console/")[0] + "/console/")
    overview = page.locator("#deployments tbody tr").filter(has_text="chat")
    assert overview.locator('[data-field="degradation"]').inner_text() == "2"
    assert axe_serious(page) == []


def test_viewer__section_read_only(console_page, degradable):
    page = _open(console_page, degradable["viewer"], degradable["chat"])
    section = page.locator("#degradation")
    assert section.get_by_role("button").count() == 0
    assert "needs the operator role" in section.inner_text()
