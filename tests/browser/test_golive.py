"""The go-live page in a real browser: an operator runs the checks and a stress load test
(the engine stood in) and applies its capacity to the policy; the gate stays closed for
them, and a team admin overrides it with a reason; accessibility (light and dark) and
screenshots. A viewer sees no write control."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from apps.autoscaling.models import AutoscalingPolicy
from apps.golive import services
from apps.golive.models import GateOverride
from apps.inventory.models import Deployment
from tests.browser.conftest import axe_serious
from tests.factories.accounts import MembershipFactory
from tests.factories.inventory import SimulatedDeploymentFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _stress_engine(plan: dict[str, Any], *, should_stop: Any, on_progress: Any) -> Any:
    return SimpleNamespace(
        functional=[],
        steps=[],
        capacity_rps_per_replica=4.2,
        stopped_reason="slo-broken",
        to_dict=lambda: {"capacity_rps_per_replica": 4.2},
    )


def test_golive_page__operator_runs_checks_and_stress_test__admin_overrides(
    console_page, screenshot, monkeypatch, settings
):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    monkeypatch.setattr(services, "_run_engine", _stress_engine)
    monkeypatch.setattr(
        "apps.console.views.golive.run_loadtest.delay",
        lambda run_id: services.loadtest_execute(run_id=run_id),
    )
    chat = SimulatedDeploymentFactory(name="chat", endpoint_url="http://127.0.0.1:9/v1")
    AutoscalingPolicy.objects.create(deployment=chat)
    operator = MembershipFactory(team=chat.team, role="operator").user
    admin = MembershipFactory(team=chat.team, role="admin").user
    viewer = MembershipFactory(team=chat.team, role="viewer").user

    page = console_page(operator)
    page.goto(f"{page.url}deployments/{chat.pk}/")
    page.click("#deployment-golive")
    page.wait_for_selector("#golive-run-checks")
    assert "No check has run yet" in page.inner_text("#golive")
    page.click("#golive-run-checks")
    page.wait_for_selector("#golive-checks")
    assert page.locator("#golive-checks tbody tr").count() == 15
    assert page.inner_text("#golive-gate") == "closed"
    assert page.locator("#golive-runs tbody tr").count() == 1
    assert page.locator("#golive-checks a", has_text="evidence").count() >= 5
    assert page.get_by_role("button", name="Override the gate").count() == 0  # admins only

    page.select_option("#id_mode", "stress")
    page.fill("#id_max_rate_rps", "20")
    page.click("#golive-run-loadtest")
    page.wait_for_selector("#golive-loadtests")
    assert "4.20 req/s" in page.inner_text("#golive-loadtests")
    page.get_by_role("button", name="Apply to the policy").click()
    page.wait_for_selector(".messages, [role=status], #golive")
    assert AutoscalingPolicy.objects.get(deployment=chat).capacity_initial_per_replica == 4.2
    assert axe_serious(page) == []
    screenshot(page, "golive-checklist")
    page.emulate_media(color_scheme="dark")
    assert axe_serious(page) == []

    page = console_page(admin)
    page.goto(f"{page.url}deployments/{chat.pk}/golive/")
    page.fill("#id_reason", "launch window; artifacts verified by hand")
    page.get_by_role("button", name="Override the gate").click()
    page.wait_for_selector("#golive-stage")
    assert page.inner_text("#golive-stage") == "production"
    assert Deployment.objects.get(pk=chat.pk).status == "active"
    assert GateOverride.objects.get().actor == admin

    page = console_page(viewer)
    page.goto(f"{page.url}deployments/{chat.pk}/golive/")
    page.wait_for_selector("#golive-checks")
    assert page.locator("#golive-run-checks").count() == 0
    assert page.locator("#golive-run-loadtest").count() == 0
