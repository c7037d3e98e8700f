"""The backtest page in a real browser: from a deployment's page, with its stored history
served as Prometheus, choose an override, run it, and see the chart and the GPU-hours."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from apps.accounts.models import Role
from tests.browser.conftest import axe_serious
from tests.factories.accounts import MembershipFactory
from tests.factories.autoscaling import AutoscalingPolicyFactory
from tests.factories.console import deployment_history, stored_prometheus
from tests.factories.inventory import DeploymentFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def chat(transactional_db: None, settings: Any) -> Iterator[dict[str, Any]]:
    deployment = DeploymentFactory(name="chat", min_replicas=1, max_replicas=6)
    deployment_history(deployment, minutes=60)
    AutoscalingPolicyFactory(deployment=deployment)
    other = DeploymentFactory(name="other-team-secret")
    with stored_prometheus(deployment) as prometheus:
        settings.PROMETHEUS_URL = prometheus.url
        yield {
            "deployment": deployment,
            "other": other,
            "viewer": MembershipFactory(team=deployment.team, role=Role.VIEWER).user,
        }


def test_backtest__from_deployment_page__override_run_chart_and_gpu_hours(
    console_page, chat, screenshot
):
    page = console_page(chat["viewer"])
    page.get_by_role("link", name="chat").click()
    page.locator("main").get_by_role("link", name="Backtest").click()
    assert page.get_by_label("Deployment").input_value() == str(chat["deployment"].pk)
    assert "other-team-secret" not in page.locator("#id_deployment").inner_text()
    page.get_by_label("Range").select_option("1")
    page.get_by_label("Targets").fill('[{"signal": "queue_length", "value": 2}]')
    page.get_by_label("Scale-down stabilisation (s)").fill("60")
    page.get_by_role("button", name="Run backtest").click()
    page.wait_for_url("**run=1**")
    page.wait_for_selector('figure[data-chart="chart-backtest-data"][data-drawn] canvas')
    data = json.loads(page.locator("#chart-backtest-data").text_content())
    assert data["labels"][:2] == ["policy replicas", "actual replicas"]
    assert all(sum(v is not None for v in column) > 10 for column in data["y"])
    policy = float(page.locator('[data-field="gpu-hours"]').inner_text())
    actual = float(page.locator('[data-field="actual-gpu-hours"]').inner_text())
    known = float(page.locator('[data-field="gpu-hours-known"]').inner_text())
    difference = float(page.locator('[data-field="gpu-hours-difference"]').inner_text())
    assert policy > 0
    assert actual > 0
    assert 0 < known <= policy
    # Like for like: the policy's GPU-hours where the actual count is known, minus actual.
    assert difference == pytest.approx(known - actual, abs=0.011)
    assert page.locator("#backtest-steps tbody tr").count() > 1
    assert page.get_by_label("Scale-down stabilisation (s)").input_value() == "60"
    assert axe_serious(page) == []
    screenshot(page, "backtest")
    page.emulate_media(color_scheme="dark")
    assert axe_serious(page) == []


def test_backtest__bad_override__error_shown_accessible(console_page, chat, live_server):
    page = console_page(chat["viewer"])
    page.goto(f"{live_server.url}/console/backtest/?deployment={chat['deployment'].pk}")
    page.get_by_label("Targets").fill('[{"signal": "queue_length", "value": 0}]')
    page.get_by_role("button", name="Run backtest").click()
    page.wait_for_url("**run=1**")
    assert "positive" in page.get_by_role("alert").inner_text()
    assert page.locator("#backtest-result").count() == 0
    assert axe_serious(page) == []
