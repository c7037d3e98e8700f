"""The control loop end to end: simulated fleet → real Prometheus → collector → engine →
scale action → the simulator's scale endpoint, and the safety holds on the way back down."""

from __future__ import annotations

import dataclasses
import time

import pytest

from apps.autoscaling.actions import scale_action_execute
from apps.autoscaling.actuators.simulated import SimulatedActuator
from apps.autoscaling.evaluation import deployment_evaluate
from apps.autoscaling.models import ActionStatus, AutoscalingPolicy, DecisionRecord, ScaleAction
from apps.fleetsim import workload
from apps.fleetsim.exposition import serve
from apps.fleetsim.fleet import Fleet, SimulatedDeployment
from apps.fleetsim.replica import get_profile
from apps.integrations.prometheus.embedded import EmbeddedPrometheus, ScrapeTarget
from apps.metrics.services import metrics_collect_shard
from tests.factories.inventory import SimulatedDeploymentFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

STABILIZATION_S = 20.0


def _cycle(deployment, actuator):
    """One collection, one evaluation, and the action applied if there is one."""
    metrics_collect_shard(shard=0, shards=1)
    record = deployment_evaluate(deployment=deployment, actuator=actuator)
    for action in ScaleAction.objects.filter(status=ActionStatus.PENDING):
        scale_action_execute(
            action_id=action.pk, actuator_factory=lambda d: actuator, sleep=lambda s: None
        )
    return record


def test_loop__load_step_scales_up__scale_down_waits__prometheus_down_holds(
    prometheus_binary, settings, monkeypatch
):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    settings.METRICS_RATE_WINDOW = "15s"
    quick = dataclasses.replace(get_profile("A100-80GB"), cold_start_s=2.0)
    sim = SimulatedDeployment(
        "chat",
        "llama",
        "llm",
        quick,
        replicas=1,
        workload=workload.steady(2.0, 3600, seed=7),
        seed=7,
    )
    fleet = Fleet([sim])
    server, port = serve(fleet)
    fleet.run_realtime()
    deployment = SimulatedDeploymentFactory(
        name="chat",
        min_replicas=1,
        max_replicas=6,
    )
    AutoscalingPolicy.objects.create(
        deployment=deployment,
        mode="enforce",
        targets=[{"signal": "queue_length", "value": 3}],
        scale_down_stabilization_s=STABILIZATION_S,
        cold_start_s=2.0,
    )
    actuator = SimulatedActuator(f"http://127.0.0.1:{port}")
    prom = EmbeddedPrometheus(
        targets=[ScrapeTarget("fleetsim", f"127.0.0.1:{port}", 1)], binary=prometheus_binary
    )
    prom.start()
    settings.PROMETHEUS_URL = prom.url
    try:
        # Load step: 25x the traffic floods one replica's queue.
        time.sleep(3)
        sim.set_rate_multiplier(25.0)
        deadline = time.monotonic() + 60
        while sim.spec_replicas == 1:
            assert time.monotonic() < deadline, DecisionRecord.objects.first().reason
            _cycle(deployment, actuator)
            time.sleep(1)
        up = ScaleAction.objects.filter(status=ActionStatus.SUCCEEDED).first()
        assert up is not None
        assert up.to_replicas > 1
        assert up.decision.rule.startswith(("target:queue_length", "rate_limit:up"))
        peak = sim.spec_replicas

        # Load ends: the queue drains, but the scale-down waits for the stabilization window.
        sim.set_rate_multiplier(0.05)
        ended = time.monotonic()
        while sim.spec_replicas >= peak:
            _cycle(deployment, actuator)
            if sim.spec_replicas < peak:
                break
            assert time.monotonic() - ended < STABILIZATION_S + 60
            time.sleep(1)
        assert time.monotonic() - ended >= STABILIZATION_S - 1
        held = DecisionRecord.objects.filter(rule="stabilization:down")
        assert held.exists(), list(DecisionRecord.objects.values_list("rule", flat=True)[:20])

        # Prometheus goes away: no scale-down on missing metrics, and an event says why.
        before = sim.spec_replicas
        prom.stop()
        for _ in range(3):
            record = _cycle(deployment, actuator)
            assert record.desired_replicas >= before
        assert record.rule == "hold:missing_metrics"
        assert any(e["kind"] == "metrics_missing" for e in record.events)
        assert sim.spec_replicas == before
    finally:
        prom.cleanup()
        fleet.stop()
        server.stop()
