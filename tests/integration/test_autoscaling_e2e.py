"""The control loop end to end: simulated fleet → real Prometheus → collector → engine →
scale action → the simulator's scale endpoint, and the safety holds on the way back down."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from apps.autoscaling.actions import scale_action_execute
from apps.autoscaling.actuators.simulated import SimulatedActuator
from apps.autoscaling.evaluation import deployment_evaluate
from apps.autoscaling.models import ActionStatus, DecisionRecord, ScaleAction
from apps.devstack.prometheus import EmbeddedPrometheus, ScrapeTarget
from apps.metrics.services import metrics_collect_shard
from tests.factories.autoscaling import SimulatedChatPolicyFactory
from tests.servers import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

STABILIZATION_S = 20.0
# How long the test waits for a change before it gives up (not a claim about speed).
WAIT_S = 120.0


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
    prometheus_binary, redis_cache, chat_simulator, settings, monkeypatch
):
    # The deployment locks live in Redis, as in production (redis_cache).
    settings.METRICS_RATE_WINDOW = "15s"
    simulator = chat_simulator(seed=7)
    sim, port = simulator.sim, simulator.port
    deployment = SimulatedChatPolicyFactory(
        scale_down_stabilization_s=STABILIZATION_S,
        cold_start_s=2.0,
    ).deployment
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

        def scaled_up() -> bool:
            _cycle(deployment, actuator)
            return sim.spec_replicas > 1

        wait_for(scaled_up, WAIT_S, "a scale-up after the load step", interval_s=1.0)
        up = ScaleAction.objects.filter(status=ActionStatus.SUCCEEDED).first()
        assert up is not None
        assert up.to_replicas > 1
        assert up.decision.rule.startswith(("target:queue_length", "rate_limit:up"))
        peak = sim.spec_replicas

        # Load ends: the queue drains, but the scale-down waits for the stabilization window.
        sim.set_rate_multiplier(0.05)
        ended_at = timezone.now()

        def scaled_down() -> bool:
            _cycle(deployment, actuator)
            return sim.spec_replicas < peak

        wait_for(scaled_down, WAIT_S, "a scale-down once the load ended", interval_s=1.0)
        after = list(DecisionRecord.objects.filter(at__gte=ended_at).order_by("at"))
        first_down = next(r for r in after if r.desired_replicas < r.current_replicas)
        # Before the first step down, the stabilization window held the replicas where they
        # were: the recorded decisions say so, in order.
        held = [r for r in after if r.at < first_down.at and r.rule == "stabilization:down"]
        assert held, [r.rule for r in after]
        assert all(r.desired_replicas == r.current_replicas for r in held)
        assert (first_down.at - ended_at).total_seconds() >= STABILIZATION_S - 1

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
