"""The control loop through real Celery workers on Redis.

1. One embedded worker runs the whole loop from queued tasks: the fleet simulator is
   scraped by a real Prometheus, ``metrics.collect_all`` and ``autoscaling.evaluate_all``
   are sent as a scheduler would send them, and the actuator is the one
   ``actuator_for`` builds from ``settings.FLEETSIM_URL``. A load step scales up, the
   scale-down after it waits for the stabilization window, and with Prometheus stopped
   the deployment is held with a ``metrics_missing`` event instead of scaled down.
2. Two ``celery worker`` processes consume the same queue while many deliveries of
   several pending scale actions of one deployment are queued; a scale endpoint that
   takes 0.3 s per write records every write. At most one write per deployment is ever
   in flight, no idempotency key is written twice, and the evaluation lock skips an
   evaluation while another one of the same deployment runs.

The broker is Redis db 13 and the cache (where the locks live) Redis db 12; both are
flushed before and after.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from itertools import pairwise
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from django.core.cache import cache
from django.utils import timezone

from apps.autoscaling.models import (
    ActionStatus,
    DecisionRecord,
    Mode,
    ScaleAction,
)
from apps.autoscaling.tasks import evaluate, evaluate_all, execute_action
from apps.core.models import TaskCounter
from apps.devstack.prometheus import EmbeddedPrometheus, ScrapeTarget
from apps.metrics.models import DeploymentMetrics
from apps.metrics.tasks import collect_all
from controlplane.celery import app
from tests.factories.autoscaling import AutoscalingPolicyFactory, SimulatedChatPolicyFactory
from tests.factories.inventory import SimulatedDeploymentFactory
from tests.integration.scale_endpoint import ScaleApiHandler
from tests.servers import base_url, http_server, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


STABILIZATION_S = 10.0
SCALE_DOWN_PERIOD_S = 5
# How long the test waits for a change before it gives up (not a claim about speed).
WAIT_S = 120.0
WRITE_DELAY_S = 0.3


def _succeeded(task_name: str) -> int:
    row = TaskCounter.objects.filter(task_name=task_name, outcome="succeeded").first()
    return row.count if row else 0


# --------------------------------------------------------------------------- 1. one worker


def _tick(deployment: Any) -> DecisionRecord:
    """One scheduler tick through the queue: collect, then evaluate, then wait until the
    action the evaluation queued (if any) has been applied."""
    started = timezone.now()
    collect_all.delay()
    wait_for(
        lambda: DeploymentMetrics.objects.filter(
            deployment=deployment, collected_at__gte=started
        ).exists(),
        20,
        "metrics collected",
    )
    last = DecisionRecord.objects.filter(deployment=deployment).order_by("-id").first()
    evaluate_all.delay()
    record = wait_for(
        lambda: (
            DecisionRecord.objects.filter(deployment=deployment, id__gt=last.pk if last else 0)
            .order_by("-id")
            .first()
        ),
        20,
        "a decision recorded",
    )
    wait_for(
        lambda: (
            not ScaleAction.objects.filter(
                deployment=deployment, status__in=[ActionStatus.PENDING, ActionStatus.RUNNING]
            ).exists()
        ),
        20,
        "the scale action applied",
    )
    return record


def test_loop_through_celery__scales_up__waits_to_scale_down__holds_without_prometheus(
    prometheus_binary, celery_redis, chat_simulator, settings
):
    settings.METRICS_RATE_WINDOW = "15s"
    simulator = chat_simulator()
    fleet, sim, port = simulator.fleet, simulator.sim, simulator.port
    # The real factory path: a "simulated" target is scaled at settings.FLEETSIM_URL.
    settings.FLEETSIM_URL = f"http://127.0.0.1:{port}"
    deployment = SimulatedChatPolicyFactory(
        scale_down_stabilization_s=STABILIZATION_S,
        # One replica down per period, so that after the first scale-down the policy still
        # wants to go lower: that is what the Prometheus outage must not let happen.
        scale_down_policies=[{"type": "pods", "value": 1, "period_s": SCALE_DOWN_PERIOD_S}],
        cold_start_s=2.0,
    ).deployment

    def spec() -> int:
        with fleet.lock:
            return sim.spec_replicas

    prom = EmbeddedPrometheus(
        targets=[ScrapeTarget("fleetsim", f"127.0.0.1:{port}", 1)], binary=prometheus_binary
    )
    try:
        prom.start()
        settings.PROMETHEUS_URL = prom.url
        with start_worker(
            app, pool="solo", perform_ping_check=False, loglevel="WARNING", shutdown_timeout=30
        ):
            # The quiet fleet, once Prometheus has scraped it: one replica is enough.
            record = wait_for(
                lambda: (r := _tick(deployment)).rule != "hold:missing_metrics" and r,
                WAIT_S,
                "a decision on scraped metrics",
                interval_s=0.5,
            )
            assert record.desired_replicas == 1, record.reason

            # Load step: 25x the traffic floods the one replica's queue.
            with fleet.lock:
                sim.set_rate_multiplier(25.0)
            wait_for(
                lambda: _tick(deployment) and spec() > 1,
                WAIT_S,
                "a scale-up after the load step",
                interval_s=0.5,
            )
            up = ScaleAction.objects.get(deployment=deployment)
            assert up.status == ActionStatus.SUCCEEDED, up.error
            assert up.from_replicas == 1
            assert up.to_replicas > 1
            assert up.attempts == 1
            assert up.decision.rule.startswith(("target:queue_length", "rate_limit:up"))
            assert spec() == up.to_replicas

            # Load ends: the queue drains, but the scale-down waits for the window.
            with fleet.lock:
                sim.set_rate_multiplier(0.05)
            ended_at = timezone.now()
            peak = spec()

            def scaled_down() -> bool:
                nonlocal peak
                peak = max(peak, spec())
                _tick(deployment)
                return spec() < peak

            wait_for(scaled_down, WAIT_S, "a scale-down once the load ended", interval_s=0.5)
            after = list(DecisionRecord.objects.filter(deployment=deployment, at__gte=ended_at))
            first_down = next(r for r in after if r.desired_replicas < r.current_replicas)
            # The recommendations right after the step are high: for a whole window from
            # then, nothing goes down, and it is the stabilization that holds.
            assert (first_down.at - ended_at).total_seconds() >= STABILIZATION_S - 1
            held = [r for r in after if r.rule == "stabilization:down"]
            assert any(r.desired_replicas == r.current_replicas for r in held), [
                r.rule for r in after
            ]
            down = ScaleAction.objects.filter(deployment=deployment).first()
            assert down.status == ActionStatus.SUCCEEDED, down.error
            assert down.to_replicas < down.from_replicas
            before = spec()
            assert before == down.to_replicas
            assert before > deployment.min_replicas, "nothing left to scale down"

            # Prometheus goes away: for longer than the scale-down period, which would allow
            # the next step down, every decision holds and says why. (A collection now takes
            # about 6 s: the Prometheus client retries a refused connection with backoff.)
            actions = ScaleAction.objects.count()
            prom.stop()
            stopped = time.monotonic()
            records = []
            while len(records) < 2 or time.monotonic() - stopped < SCALE_DOWN_PERIOD_S + 1:
                records.append(_tick(deployment))
                time.sleep(0.5)
            for record in records:
                assert record.rule == "hold:missing_metrics", record.reason
                assert record.desired_replicas == before
                assert any(e["kind"] == "metrics_missing" for e in record.events)
            assert ScaleAction.objects.count() == actions
            assert spec() == before
    finally:
        prom.cleanup()


# --------------------------------------------------------------------------- 2. two workers


@dataclass
class _Write:
    target: str
    replicas: int
    key: str
    started: float
    ended: float


@dataclass
class _ScaleRecorder:
    """What a scale endpoint saw: requests in flight at once, and every write."""

    get_delay_s: float = 0.0
    put_delay_s: float = WRITE_DELAY_S
    spec: dict[str, int] = field(default_factory=dict)
    writes: list[_Write] = field(default_factory=list)
    in_flight: Counter[tuple[str, str]] = field(default_factory=Counter)
    max_in_flight: Counter[tuple[str, str]] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def enter(self, method: str, target: str) -> None:
        with self.lock:
            for key in ((method, target), (method, "*")):
                self.in_flight[key] += 1
                self.max_in_flight[key] = max(self.max_in_flight[key], self.in_flight[key])

    def leave(self, method: str, target: str) -> None:
        with self.lock:
            for key in ((method, target), (method, "*")):
                self.in_flight[key] -= 1


class _ScaleHandler(ScaleApiHandler):
    """The simulator's ``/scale/<namespace>/<name>`` API, slow on purpose."""

    def spec(self) -> dict[str, int]:
        return self.server.recorder.spec

    def do_GET(self) -> None:
        recorder = self.server.recorder
        target = self.target()
        if target is None:
            return
        recorder.enter("GET", target)
        try:
            time.sleep(recorder.get_delay_s)
            status = self.status(target)
        finally:
            recorder.leave("GET", target)
        self.send_json(HTTPStatus.OK, status)

    def do_PUT(self) -> None:
        recorder = self.server.recorder
        write = self.write()
        if write is None:
            return
        target, replicas, key = write
        started = time.monotonic()
        recorder.enter("PUT", target)
        try:
            time.sleep(recorder.put_delay_s)
            with recorder.lock:
                recorder.spec[target] = replicas
            status = self.status(target)
        finally:
            recorder.leave("PUT", target)
        with recorder.lock:
            recorder.writes.append(_Write(target, replicas, key, started, time.monotonic()))
        self.send_json(HTTPStatus.OK, status)


@pytest.fixture
def scale_recorder() -> Iterator[tuple[_ScaleRecorder, str]]:
    recorder = _ScaleRecorder()
    with http_server(_ScaleHandler, recorder=recorder) as server:
        yield recorder, base_url(server)


def _simulated(name: str) -> Any:
    return SimulatedDeploymentFactory(
        name=name,
        min_replicas=1,
        max_replicas=20,
    )


def test_two_workers__never_act_on_one_deployment_at_once(scale_recorder, worker_processes):
    recorder, url = scale_recorder
    busy, other = _simulated("busy"), _simulated("other")
    recorder.spec.update({"llm/busy": 1, "llm/other": 1})
    # Several pending actions of one deployment (as a manual change racing an automatic
    # one would leave), and a few of another deployment to show that the workers do run
    # side by side.
    actions = {
        busy.pk: [
            ScaleAction.objects.create(
                deployment=busy, from_replicas=1, to_replicas=n, idempotency_key=f"busy-{n}"
            )
            for n in range(2, 8)
        ],
        other.pk: [
            ScaleAction.objects.create(
                deployment=other, from_replicas=1, to_replicas=n, idempotency_key=f"other-{n}"
            )
            for n in range(2, 5)
        ],
    }
    workers = worker_processes(2, url)

    # Every action delivered three times; the busy deployment's in a row, so that the two
    # workers keep taking actions of the same deployment at the same moment.
    sent = 0
    for _ in range(3):
        for batch in actions.values():
            for action in batch:
                execute_action.delay(action.pk)
                sent += 1
    wait_for(lambda: _succeeded("autoscaling.execute_action") == sent, 60, "deliveries done")
    # An action that met a busy lock stays pending; the periodic fan-out sends it again.
    for _ in range(12):
        pending = ScaleAction.objects.filter(status=ActionStatus.PENDING).count()
        if not pending:
            break
        sent += pending
        evaluate_all.delay()
        wait_for(
            lambda sent=sent: _succeeded("autoscaling.execute_action") == sent,
            60,
            "re-sent deliveries",
        )
    assert not ScaleAction.objects.filter(status=ActionStatus.PENDING).exists()

    # Never two writes to one deployment at once; two to different ones did happen.
    assert recorder.max_in_flight[("PUT", "llm/busy")] == 1
    assert recorder.max_in_flight[("PUT", "llm/other")] == 1
    assert recorder.max_in_flight[("PUT", "*")] == 2, "the workers never ran side by side"
    for target in ("llm/busy", "llm/other"):
        mine = sorted((w for w in recorder.writes if w.target == target), key=lambda w: w.started)
        for earlier, later in pairwise(mine):
            assert later.started >= earlier.ended

    # Every action applied exactly once: one write per idempotency key, one attempt each,
    # and the claims (running → finished) of one deployment never overlap.
    everything = [a for batch in actions.values() for a in batch]
    keys = Counter(w.key for w in recorder.writes)
    assert keys == Counter({a.idempotency_key: 1 for a in everything})
    for pk, batch in actions.items():
        rows = list(ScaleAction.objects.filter(deployment_id=pk).order_by("started_at"))
        assert {r.status for r in rows} == {ActionStatus.SUCCEEDED}
        assert all(r.attempts == 1 and r.error == "" for r in rows)
        for earlier, later in pairwise(rows):
            assert later.started_at >= earlier.finished_at
        assert len(rows) == len(batch)

    # Both workers took deliveries, and some found the deployment's lock held.
    for w in workers:
        assert w.received("autoscaling.execute_action") > 0, w.name
    assert sum(w.count("scale-action-applied") for w in workers) == len(everything)
    assert sum(w.count("scale-action-lock-busy") for w in workers) > 0

    # The evaluation lock: while it is held, an evaluation is skipped, not stacked.
    AutoscalingPolicyFactory(
        deployment=busy, mode=Mode.DRY_RUN, targets=[{"signal": "queue_length", "value": 3}]
    )
    lock = f"autoscaling:evaluate:{busy.pk}"
    assert cache.add(lock, "1", timeout=30)
    evaluate.delay(busy.pk)
    wait_for(lambda: _succeeded("autoscaling.evaluate") == 1, 30)
    assert not DecisionRecord.objects.exists()
    cache.delete(lock)
    evaluate.delay(busy.pk)
    wait_for(lambda: _succeeded("autoscaling.evaluate") == 2, 30)
    assert DecisionRecord.objects.filter(deployment=busy).count() == 1
    assert cache.get(lock) is None, "the evaluation lock was not released"

    # A burst while reading the scale target is slow: the workers take evaluations of the
    # same deployment at once, and only one at a time gets through.
    recorder.get_delay_s = 0.5
    recorder.max_in_flight[("GET", "llm/busy")] = 0
    received = [w.received("autoscaling.evaluate") for w in workers]
    for _ in range(6):
        evaluate.delay(busy.pk)
    wait_for(lambda: _succeeded("autoscaling.evaluate") == 8, 60)
    assert recorder.max_in_flight[("GET", "llm/busy")] == 1
    evaluated = DecisionRecord.objects.filter(deployment=busy).count() - 1
    assert 1 <= evaluated < 6, evaluated
    for w, before in zip(workers, received, strict=True):
        assert w.received("autoscaling.evaluate") > before, w.name
    assert cache.get(lock) is None
    assert not ScaleAction.objects.exclude(status=ActionStatus.SUCCEEDED).exists()
