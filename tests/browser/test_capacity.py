"""The deployment page's capacity sizing (autoscaling v2) in a real browser: the learned
capacity beside the initial one, and the policy's capacity_* fields edited by an operator
(validated, audited), read-only for a viewer; accessible (axe)."""

from __future__ import annotations

from typing import Any

import pytest

from apps.accounts.models import Role
from apps.audit.models import AuditEntry
from apps.autoscaling.models import AutoscalingPolicy, DeploymentControl
from tests.browser.conftest import axe_serious
from tests.factories.accounts import MembershipFactory
from tests.factories.autoscaling import AutoscalingPolicyFactory
from tests.factories.inventory import DeploymentFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def chat(transactional_db: None) -> dict[str, Any]:
    deployment = DeploymentFactory(name="chat", min_replicas=1, max_replicas=6)
    policy = AutoscalingPolicyFactory(
        deployment=deployment,
        targets=[{"signal": "request_rate", "value": 0.8, "kind": "demand_capacity"}],
        capacity_initial_per_replica=2.0,
    )
    DeploymentControl.objects.create(deployment=deployment, history={"capacity": [2.6, 14]})
    return {
        "deployment": deployment,
        "policy": policy,
        "operator": MembershipFactory(team=deployment.team, role=Role.OPERATOR).user,
        "viewer": MembershipFactory(team=deployment.team, role=Role.VIEWER).user,
    }


def _open(console_page: Any, user: Any, deployment: Any) -> Any:
    page = console_page(user)
    page.goto(page.url + f"deployments/{deployment.pk}/")
    page.locator("#capacity").wait_for()
    return page


def test_capacity__learned_beside_initial_then_edited_and_audited(
    console_page: Any, chat: dict[str, Any], screenshot: Any
) -> None:
    page = _open(console_page, chat["operator"], chat["deployment"])
    figures = page.locator("#capacity-figures")
    assert figures.locator('[data-field="initial"]').inner_text() == "2 request_rate"
    assert figures.locator('[data-field="learned"]').inner_text() == "2.6 from 14 intervals"
    assert figures.locator('[data-field="bounds"]').inner_text() == "1\u20134"
    assert figures.locator('[data-field="pool"]').inner_text() == "1 replica"
    assert "EWMA weight" in page.locator("#capacity").inner_text()  # the model's help text
    assert axe_serious(page) == []
    screenshot(page, "deployment-capacity")

    form = page.get_by_role("form", name="Capacity sizing settings")
    form.get_by_label("Initial capacity per replica").fill("3.5")
    form.get_by_label("Latency SLO (s)").fill("2")
    form.get_by_label("Forecast periods (s)").fill("86400, 604800")
    form.get_by_label("Measured with replicas").fill("4")
    form.get_by_label("Pooling").fill("0.4")
    form.get_by_label("Reason").fill("profiled on H100")
    form.get_by_role("button", name="Save capacity sizing").click()
    page.wait_for_selector("text=Done; recorded in the audit log.")

    policy = AutoscalingPolicy.objects.get(pk=chat["policy"].pk)
    assert policy.capacity_initial_per_replica == 3.5
    assert policy.capacity_latency_slo_s == 2.0
    assert policy.capacity_forecast_periods_s == [86400.0, 604800.0]
    assert (policy.capacity_pool_size, policy.capacity_pooling) == (4, 0.4)
    entry = AuditEntry.objects.get()
    assert entry.action == "update"
    assert entry.changes["capacity_initial_per_replica"] == [2.0, 3.5]
    assert page.locator('#capacity-figures [data-field="initial"]').inner_text().startswith("3.5")
    assert page.locator('#capacity-figures [data-field="pool"]').inner_text() == (
        "4 replicas pooling 0.40"
    )


@pytest.mark.parametrize(
    ("label", "value", "error"),
    [
        ("Learning rate", "0", "capacity_learn_rate: Must be greater than 0."),
        (
            "Learning range (times or divided by)",
            "0.5",
            "capacity_learn_range: Must be at least 1.",
        ),
        ("Forecast periods (s)", "daily", "capacity_forecast_periods_s: Give periods in seconds"),
        ("Pooling", "0.95", "capacity_pooling: Must be at most 0.9."),
    ],
)
def test_capacity__invalid_value__message_names_the_field_nothing_saved(
    console_page: Any, chat: dict[str, Any], label: str, value: str, error: str
) -> None:
    page = _open(console_page, chat["operator"], chat["deployment"])
    form = page.get_by_role("form", name="Capacity sizing settings")
    # The server checks, not only the browser.
    form.get_by_label(label).evaluate(
        "(el) => { el.removeAttribute('min'); el.removeAttribute('max'); }"
    )
    form.get_by_label(label).fill(value)
    form.get_by_label("Reason").fill("try")
    form.get_by_role("button", name="Save capacity sizing").click()
    page.wait_for_selector(f"text={error}")

    assert AutoscalingPolicy.objects.get(pk=chat["policy"].pk).capacity_learn_rate == 0.2
    assert not AuditEntry.objects.exists()


def test_capacity__viewer__figures_without_form(console_page: Any, chat: dict[str, Any]) -> None:
    page = _open(console_page, chat["viewer"], chat["deployment"])

    assert "2.6" in page.locator("#capacity-figures").inner_text()
    assert page.get_by_role("button", name="Save capacity sizing").count() == 0
