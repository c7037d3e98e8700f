"""Backtest against a real Prometheus that scraped the fleet simulator: the recorded load
and the replicas that actually ran come back from range queries, and the policy's timeline
is compared with them, through the API and the management command."""

from __future__ import annotations

import io
import json
import time
from datetime import UTC, datetime

import pytest
from django.core.management import call_command

from apps.autoscaling.actions import scale_action_execute
from apps.autoscaling.actuators.base import ScaleStatus, ScaleTarget
from apps.autoscaling.models import ActionStatus, ScaleAction
from apps.devstack.prometheus import EmbeddedPrometheus, ScrapeTarget
from apps.integrations.prometheus.client import PrometheusClient
from tests.factories.accounts import UserFactory
from tests.factories.autoscaling import SimulatedChatPolicyFactory
from tests.servers import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def _backtest(deployment: str, start: float, end: float, *options: str) -> str:
    """The backtest command's output over [start, end] in steps of 2 s."""
    out = io.StringIO()
    call_command(
        "backtest",
        deployment,
        "--start",
        _iso(start),
        "--end",
        _iso(end),
        "--step",
        "2",
        *options,
        stdout=out,
    )
    return out.getvalue()


@pytest.fixture
def recorded_range(prometheus_binary, chat_simulator, settings):
    """~25 s of one replica, a load step, then a manual scale to 3 replicas."""
    simulator = chat_simulator(cold_start_s=1.0, workload_seed=3)
    fleet, sim, port = simulator.fleet, simulator.sim, simulator.port
    prom = EmbeddedPrometheus(
        targets=[ScrapeTarget("fleetsim", f"127.0.0.1:{port}", 1)], binary=prometheus_binary
    )
    prom.start()
    settings.PROMETHEUS_URL = prom.url
    client = PrometheusClient(prom.url, timeout_s=5)
    try:
        wait_for(
            lambda: client.query('count(vllm:num_requests_running{deployment="chat"})'),
            30,
            "Prometheus scrapes the simulator",
            interval_s=0.5,
        )
        start = time.time()
        time.sleep(6)
        sim.set_rate_multiplier(25.0)  # the queue builds on one replica
        time.sleep(10)
        with fleet.lock:
            sim.scale(3)  # what "actually ran": someone scaled it by hand
        time.sleep(10)
        end = time.time()
        yield start, end, sim
    finally:
        prom.cleanup()


def test_backtest__recorded_load_step__policy_scales_up_and_actual_replicas_read_back(
    recorded_range, client_for
):
    start, end, sim = recorded_range
    deployment = SimulatedChatPolicyFactory(
        mode="dry-run",
        scale_down_stabilization_s=300,
    ).deployment
    api = client_for(UserFactory(is_superuser=True))
    response = api.post(
        "/api/v1/autoscaling/backtests/",
        {
            "deployment": deployment.pk,
            "start": _iso(start),
            "end": _iso(end),
            "step_s": 2,
            "timeline": "full",
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    summary, steps = body["summary"], body["steps"]
    assert summary["signals"] == ["queue_length"]
    # What actually ran, read back from Prometheus: 1 replica, then 3.
    actual = [s["actual"] for s in steps if s["actual"] is not None]
    assert summary["actual_coverage"] > 0.8, summary
    assert actual[0] == 1
    assert actual[-1] == 3
    assert summary["actual_actions"] >= 1
    # The policy saw the queue and would have scaled up before the manual change did.
    policy = [s["replicas"] for s in steps]
    assert policy[0] == 1
    assert max(policy) > 1
    first_up = next(s for s in steps if s["replicas"] > 1)
    first_actual_up = next(s for s in steps if (s["actual"] or 0) > 1)
    assert first_up["t"] < first_actual_up["t"]
    assert summary["replica_hours"] > 0

    # A variant through the command: a target twice as high asks for fewer replicas.
    policy_json = json.dumps({"targets": [{"signal": "queue_length", "value": 6}]})
    out = _backtest("llm/chat", start, end, "--policy", policy_json, "--json")
    variant = json.loads(out)["summary"]
    assert variant["replicas_max"] <= summary["replicas_max"]
    assert variant["actual_actions"] == summary["actual_actions"]

    printed = _backtest(str(deployment.pk), start, end)
    assert "scale actions" in printed
    assert "replica-hours" in printed

    # A scale-down through the loop asks the actuator to pick replicas by their load,
    # read per pod from the same Prometheus.
    actuator = _PreparingActuator(spec=3)
    action = ScaleAction.objects.create(
        deployment=deployment, from_replicas=3, to_replicas=1, idempotency_key="down-1"
    )
    done = scale_action_execute(action_id=action.pk, actuator_factory=lambda d: actuator)
    assert done.status == ActionStatus.SUCCEEDED
    assert actuator.spec == 1
    (remove, load) = actuator.prepared
    assert remove == 2
    assert set(load) == {replica.pod for replica in sim.replicas}
    assert all(value >= 0 for value in load.values())


class _PreparingActuator:
    def __init__(self, spec: int) -> None:
        self.spec = spec
        self.prepared: tuple[int, dict[str, float] | None] | None = None

    def get_scale(self, target: ScaleTarget) -> ScaleStatus:
        return ScaleStatus(self.spec, self.spec)

    def set_replicas(self, target: ScaleTarget, replicas: int, *, idempotency_key: str):
        self.spec = replicas
        return ScaleStatus(replicas, replicas)

    def prepare_scale_down(self, target, remove, pod_load):
        self.prepared = (remove, pod_load)
