"""Prometheus unreachable for ten minutes: the control loop holds and alerts, never scales
down on missing data.

A real Prometheus scrapes the fleet simulator; a quiet deployment on 4 replicas is
collected, evaluated and scaled down one step (the policy allows one replica down per
minute and still wants fewer). Then Prometheus is stopped, and ten minutes of control
cycles run in controlled time: every 30 s of simulated time the services the periodic tasks
call (``metrics_collect`` + ``metrics_store``, ``deployment_evaluate``,
``alert_sources_evaluate``) run with that ``now`` against the dead Prometheus and the real
simulator. Every decision holds with a ``metrics_missing`` event, no scale action is
created, the platform keeps its replicas, and one ``AutoscalerMetricsMissing`` alert fires
for the whole outage.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from apps.alerts.models import Alert, AlertStatus
from apps.alerts.sources import alert_sources_evaluate
from apps.autoscaling.actions import scale_action_execute
from apps.autoscaling.actuators.factory import actuator_for, scale_target_of
from apps.autoscaling.evaluation import deployment_evaluate
from apps.autoscaling.models import ActionStatus, ScaleAction
from apps.devstack.prometheus import EmbeddedPrometheus, ScrapeTarget
from apps.metrics.services import metrics_collect, metrics_store, targets_for
from tests.factories.autoscaling import SimulatedChatPolicyFactory
from tests.servers import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

OUTAGE_S = 600
CYCLE_S = 30


def _cycle(deployment, now: float):
    """One control cycle at ``now``: collect, store, evaluate, reconcile alerts."""
    report = metrics_collect(targets=targets_for([deployment]), now=now)
    metrics_store(observations=report.observations)
    record = deployment_evaluate(deployment=deployment, actuator=actuator_for(deployment), now=now)
    alert_sources_evaluate(now=datetime.fromtimestamp(now, UTC))
    return report, record


def test_prometheus_unreachable_ten_minutes__holds_and_alerts__never_scales_down(
    prometheus_binary, chat_simulator, settings
):
    settings.METRICS_RATE_WINDOW = "15s"
    # Opt in to the loopback Prometheus and simulator: the outbound guard refuses them.
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    simulator = chat_simulator(replicas=4, rate=0.5, cold_start_s=1.0, workload_seed=3)
    port = simulator.port
    settings.FLEETSIM_URL = f"http://127.0.0.1:{port}"
    deployment = SimulatedChatPolicyFactory(
        scale_down_stabilization_s=0,
        scale_down_policies=[{"type": "pods", "value": 1, "period_s": 60}],
        cold_start_s=1.0,
    ).deployment
    actuator = actuator_for(deployment)
    prom = EmbeddedPrometheus(
        targets=[ScrapeTarget("fleetsim", f"127.0.0.1:{port}", 1)], binary=prometheus_binary
    )
    try:
        prom.start()
        settings.PROMETHEUS_URL = prom.url

        # With data: the quiet deployment steps down one replica, and wants fewer still.
        def scaled_down_with_data():
            _, record = _cycle(deployment, time.time())
            return record if record.desired_replicas < record.current_replicas else None

        first = wait_for(scaled_down_with_data, 60, "a scale-down while Prometheus answers")
        action = ScaleAction.objects.get(deployment=deployment)
        done = scale_action_execute(action_id=action.pk, actuator_factory=actuator_for)
        assert done.status == ActionStatus.SUCCEEDED, done.error
        held_at = actuator.get_scale(scale_target_of(deployment)).spec_replicas
        assert held_at == first.desired_replicas == 3
        assert held_at > deployment.min_replicas

        # Prometheus goes away for ten minutes of control cycles.
        prom.stop()
        stopped = time.time()
        actions = ScaleAction.objects.count()
        records = []
        for step in range(1, OUTAGE_S // CYCLE_S + 1):
            report, record = _cycle(deployment, stopped + step * CYCLE_S)
            assert report.failed_queries > 0
            records.append(record)

        assert len(records) == OUTAGE_S // CYCLE_S
        for record in records:
            assert record.rule == "hold:missing_metrics", record.reason
            assert record.desired_replicas == record.current_replicas == held_at
            assert any(e["kind"] == "metrics_missing" for e in record.events), record.events
            assert record.dry_run is False
        assert ScaleAction.objects.count() == actions
        assert actuator.get_scale(scale_target_of(deployment)).spec_replicas == held_at

        alerts = list(Alert.objects.filter(labels__alertname="AutoscalerMetricsMissing"))
        assert len(alerts) == 1, [a.labels for a in alerts]
        assert alerts[0].status == AlertStatus.FIRING
        assert alerts[0].labels["deployment"] == "chat"
    finally:
        prom.cleanup()
