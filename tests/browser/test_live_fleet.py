"""The console over a live simulated fleet: the fleet simulator serves vLLM metrics, a real
Prometheus scrapes them, and the control loop (collection, evaluation, scale action) runs
while a browser watches. The overview fills in by itself (its auto-refresh) and the
deployment page charts what the loop stored."""

from __future__ import annotations

import re
import time

import pytest

from apps.accounts.models import Role
from apps.autoscaling.actions import scale_action_execute
from apps.autoscaling.actuators.simulated import SimulatedActuator
from apps.autoscaling.evaluation import deployment_evaluate
from apps.autoscaling.models import ActionStatus, ScaleAction
from apps.devstack.prometheus import EmbeddedPrometheus, ScrapeTarget
from apps.metrics.catalogue import Signal
from apps.metrics.models import MetricSample
from apps.metrics.services import metrics_collect_shard
from tests.browser.conftest import axe_serious
from tests.factories.accounts import MembershipFactory
from tests.factories.autoscaling import SimulatedChatPolicyFactory
from tests.servers import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# How long the test waits for the loop or the page before it gives up (not a claim about speed).
WAIT_S = 120.0
NO_DATA = "\u2013 / \u2013 / \u2013"


def _cycle(deployment, actuator) -> None:
    """One collection, one evaluation, and the action applied if there is one."""
    metrics_collect_shard(shard=0, shards=1)
    deployment_evaluate(deployment=deployment, actuator=actuator)
    for action in ScaleAction.objects.filter(status=ActionStatus.PENDING):
        scale_action_execute(
            action_id=action.pk, actuator_factory=lambda d: actuator, sleep=lambda s: None
        )


def test_live_fleet__overview_fills_in__deployment_charts_the_loop(
    console_page, chat_simulator, prometheus_binary, settings, screenshot
):
    # A stored sample per cycle (production keeps one a minute), so a short run has a chart.
    settings.METRICS_SAMPLE_RESOLUTION_S = 1
    settings.METRICS_RATE_WINDOW = "15s"
    simulator = chat_simulator(seed=7)
    deployment = SimulatedChatPolicyFactory(cold_start_s=2.0).deployment
    actuator = SimulatedActuator(simulator.url)
    operator = MembershipFactory(team=deployment.team, role=Role.OPERATOR).user
    prom = EmbeddedPrometheus(
        targets=[ScrapeTarget("fleetsim", f"127.0.0.1:{simulator.port}", 1)],
        binary=prometheus_binary,
    )
    prom.start()
    settings.PROMETHEUS_URL = prom.url
    try:
        # Opened before the loop has run: the row is there, without figures yet.
        page = console_page(operator)
        replicas = page.locator('tr:has-text("chat") [data-field="replicas"]')
        assert replicas.inner_text() == NO_DATA

        # Load step: 25x the traffic floods one replica's queue; the loop scales up.
        time.sleep(3)
        simulator.sim.set_rate_multiplier(25.0)

        def scaled_up() -> bool:
            _cycle(deployment, actuator)
            return simulator.sim.spec_replicas > 1

        wait_for(scaled_up, WAIT_S, "a scale-up after the load step", interval_s=1.0)
        for _ in range(3):  # a few more points after the change
            time.sleep(1)
            _cycle(deployment, actuator)
        assert MetricSample.objects.filter(signal=Signal.REQUEST_RATE).count() >= 3

        # The overview refreshes itself (htmx, every 10 s) and shows the loop's figures.
        wait_for(lambda: replicas.inner_text() != NO_DATA, 30, "the overview's auto-refresh")
        desired = int(replicas.inner_text().split("/")[-1])
        assert desired == simulator.sim.spec_replicas
        sparkline = page.locator('tr:has-text("chat") figure.sparkline')
        assert int(sparkline.get_attribute("data-points") or 0) > 0

        # The deployment page charts the stored samples, with the scale-up marked.
        page.get_by_role("link", name="chat", exact=True).click()
        page.wait_for_selector("figure[data-points] canvas")
        points = {
            figure.get_attribute("data-chart"): int(figure.get_attribute("data-points") or 0)
            for figure in page.locator("figure[data-points]").all()
        }
        assert any(n > 0 for n in points.values()), points
        demand = page.locator("figure[data-points]").first
        assert int(demand.get_attribute("data-points") or 0) > 0
        assert page.get_by_text(re.compile(r"target:queue_length|rate_limit:up")).first.is_visible()
        assert axe_serious(page) == []
        screenshot(page, "live-deployment")
    finally:
        prom.cleanup()
