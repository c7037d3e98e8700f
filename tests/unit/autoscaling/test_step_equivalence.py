"""One scripted series through the three callers of ``engine.step``: same decisions.

The live loop (its real path: collected observations in the database, a decision record, a
scale action carried out by an in-memory actuator), the backtest replay and the
benchmark's adapter differ only in where observations and replica counts come from and how
a change is applied; given the same readings they must take the same decisions, tick for
tick. The series and policy make every kind of step matter: rate limits that count the
applied scale events, a scale-down window over recorded recommendations, panic mode over
the recorded signal samples, and a gap in the metrics.
"""

from __future__ import annotations

import math
from itertools import pairwise

import pytest

from apps.autoscaling import engine
from apps.autoscaling.actions import scale_action_execute
from apps.autoscaling.actuators.base import ScaleStatus, ScaleTarget
from apps.autoscaling.backtest import backtest_replay
from apps.autoscaling.evaluation import deployment_evaluate
from apps.autoscaling.models import AutoscalingPolicy, ScaleAction
from apps.metrics.collection import Observation
from apps.metrics.services import metrics_store
from bench.autoscale.policies import Ours
from bench.autoscale.sim import MetricLog, MetricsView, ScaleState
from tests.factories.inventory import SimulatedDeploymentFactory

pytestmark = pytest.mark.django_db(transaction=True)

T0 = 1_700_000_000.0
STEP_S = 15.0
INITIAL = 2
# Waiting requests (a deployment total) at each evaluation; None: the metric is unavailable.
QUEUE: tuple[float | None, ...] = (
    10, 10, 12, 240, 20, 20, 20, 20, 20, None, 12, 5, 5, 5, 4, 0, 0, 0,
)  # fmt: skip
# What all three must decide, (desired replicas, rule) per tick; pinned so that the three
# cannot drift together unnoticed.
EXPECTED = [
    (2, "target:queue_length"),  # within the tolerance
    (2, "target:queue_length"),
    (3, "target:queue_length"),
    (7, "rate_limit:up"),
    # Panic from the short window: the recorded 240 and the 20 now ask for 26.
    (14, "rate_limit:up"),
    (14, "stabilization:down"),
    (14, "panic"),  # panic mode never scales down
    (14, "panic"),
    (13, "rate_limit:down"),
    (13, "hold:missing_metrics"),
    (13, "stabilization:down"),
    (12, "rate_limit:down"),
    (12, "rate_limit:down"),  # one pod per 30 s: the applied removal 15 s ago counts
    (11, "rate_limit:down"),
    (11, "rate_limit:down"),
    (10, "rate_limit:down"),
    (10, "rate_limit:down"),
    (9, "rate_limit:down"),
]


def _times() -> list[float]:
    return [T0 + i * STEP_S for i in range(len(QUEUE))]


@pytest.fixture
def policy_row():
    dep = SimulatedDeploymentFactory(min_replicas=1, max_replicas=40)
    return AutoscalingPolicy.objects.create(
        deployment=dep,
        mode="enforce",
        targets=[{"signal": "queue_length", "value": 5}],
        scale_down_stabilization_s=30,
        scale_down_policies=[{"type": "pods", "value": 1, "period_s": 30}],
        panic_enabled=True,
        panic_window_s=20,
        stable_window_s=60,
    )


class SimulatedActuator:
    """The scale target: sets the count at once, every replica ready."""

    def __init__(self, spec: int) -> None:
        self.spec = spec

    def get_scale(self, target: ScaleTarget) -> ScaleStatus:
        return ScaleStatus(self.spec, self.spec)

    def set_replicas(self, target: ScaleTarget, replicas: int, *, idempotency_key: str):
        self.spec = replicas
        return ScaleStatus(self.spec, self.spec)


def _loop(policy_row) -> list[tuple[int, str]]:
    queued: list[int] = []
    deployment = policy_row.deployment
    actuator = SimulatedActuator(INITIAL)
    out = []
    for now, queue in zip(_times(), QUEUE, strict=True):
        reading = (
            Observation(queue, now, "ok")
            if queue is not None
            else Observation(None, now, "unavailable", "scrape failed")
        )
        metrics_store(observations={deployment.pk: {"queue_length": reading}})
        record = deployment_evaluate(
            deployment=deployment, actuator=actuator, enqueue=queued.append, now=now
        )
        assert record is not None
        out.append((record.desired_replicas, record.rule))
        while queued:
            scale_action_execute(
                action_id=queued.pop(), actuator_factory=lambda d: actuator, sleep=lambda s: None
            )
        assert actuator.spec == record.desired_replicas, record.reason
    counts = [INITIAL, *(desired for desired, _ in out)]
    changes = sum(1 for before, after in pairwise(counts) if before != after)
    assert ScaleAction.objects.filter(status="succeeded").count() == changes
    return out


def _backtest(policy: engine.Policy) -> list[tuple[int, str]]:
    times = _times()
    # One more tick: a step shows the count before its decision, the next one the result.
    end = times[-1] + STEP_S
    series = {"queue_length": [(t, q) for t, q in zip(times, QUEUE, strict=True) if q is not None]}
    series["queue_length"].append((end, QUEUE[-1]))
    result = backtest_replay(
        policy=policy,
        series=series,
        actual=[],
        start=T0,
        end=end,
        step_s=STEP_S,
        initial_replicas=INITIAL,
    )
    return [(after.replicas, step.rule) for step, after in pairwise(result.steps)]


def _benchmark(policy: engine.Policy) -> list[tuple[int, str]]:
    ours = Ours(policy)
    log = MetricLog()
    spec = INITIAL
    out = []
    for now, queue in zip(_times(), QUEUE, strict=True):
        log.record(
            now,
            {
                "spec": spec,
                "ready": spec,
                "waiting": math.nan if queue is None else queue,
                "running": 0.0,
                "concurrency": 0.0,
                "kv_avg": math.nan,
                "util_avg": math.nan,
            },
        )
        state = ScaleState(now, spec, spec, (), policy.min_replicas, policy.max_replicas)
        spec = ours.decide(MetricsView(log, now, 0.0), state)
        assert ours.last_decision is not None
        out.append((spec, ours.last_decision.rule))
    return out


def test_step__one_series__loop_backtest_and_benchmark_decide_alike(policy_row):
    policy = policy_row.to_engine()
    assert policy.cold_start_s == 0  # every replica is ready at once in all three
    loop = _loop(policy_row)
    assert loop == EXPECTED
    assert _backtest(policy) == EXPECTED
    assert _benchmark(policy) == EXPECTED
