"""A deployment with what the console shows of it: latest observations, an hour of chart
samples, decisions (with a scale-up and its scale action), a TTFT SLO with its status and a
firing alert; and a Prometheus answering range queries from those stored rows, for the
backtest. Used by the console's unit and browser tests."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.utils import timezone

from apps.alerts.models import Alert
from apps.autoscaling.backtest import _hold_slo_samples
from apps.autoscaling.models import ActionStatus, DecisionRecord, ScaleAction
from apps.inventory.models import Deployment
from apps.metrics.models import MetricSample
from apps.metrics.services import ACTUAL_REPLICAS, _range_queries, targets_for
from apps.slos.models import SloState, SloStatus
from tests.servers import Answer, RecordingServer, Request

from .alerts import AlertFactory
from .autoscaling import DecisionRecordFactory
from .metrics import DeploymentMetricsFactory
from .slos import SloFactory

SIGNALS = {
    "queue_length": lambda i: 4 + 3 * math.sin(i / 6),
    "request_rate": lambda i: 10 + 5 * math.sin(i / 9),
    "ttft_p50": lambda i: 0.12 + 0.02 * math.sin(i / 5),
    "ttft_p95": lambda i: 0.30 + 0.05 * math.sin(i / 5),
    "ttft_p99": lambda i: 0.45 + 0.08 * math.sin(i / 5),
    "itl_p95": lambda i: 0.03,
    "kv_cache_usage": lambda i: 0.5 + 0.2 * math.sin(i / 7),
    "gpu_utilization": lambda i: 0.7,
}


def deployment_history(
    deployment: Deployment, *, minutes: int = 60, now: datetime | None = None, alert: bool = True
) -> None:
    """Fill ``deployment`` with ``minutes`` of one-minute samples and decisions."""
    now = now or timezone.now()
    start = now - timedelta(minutes=minutes)
    MetricSample.objects.bulk_create(
        MetricSample(
            deployment=deployment,
            signal=signal,
            ts=start + timedelta(minutes=i),
            value=curve(i),
        )
        for signal, curve in SIGNALS.items()
        for i in range(minutes)
    )
    observations: dict[str, Any] = {
        signal: {"value": curve(minutes), "ts": now.timestamp(), "status": "ok", "reason": ""}
        for signal, curve in SIGNALS.items()
    }
    DeploymentMetricsFactory(deployment=deployment, observations=observations, collected_at=now)
    step = max(1, minutes // 6)
    for i in range(0, minutes, step):
        current = 1 if i < minutes // 2 else 2
        desired = 2 if i + step >= minutes // 2 else current  # the scale-up before half time
        decision = DecisionRecordFactory(
            deployment=deployment,
            at=start + timedelta(minutes=i),
            current_replicas=current,
            desired_replicas=desired,
            rule="target:queue_length" if desired != current else "hold:within_tolerance",
            reason=f"queue per replica {SIGNALS['queue_length'](i):.1f} against 3",
            proposals=[{"signal": "queue_length", "desired": desired, "value": 3}],
        )
        if desired != current:
            ScaleAction.objects.create(
                deployment=deployment,
                decision=decision,
                from_replicas=current,
                to_replicas=desired,
                idempotency_key=f"dep{deployment.pk}-d{decision.pk}-{current}to{desired}",
                status=ActionStatus.SUCCEEDED,
                attempts=1,
                finished_at=decision.at + timedelta(seconds=5),
            )
    slo = SloFactory(deployment=deployment, team=deployment.team, threshold_seconds=0.5)
    SloStatus.objects.create(
        slo=slo, state=SloState.OK, sli=0.995, budget_remaining=0.6, evaluated_at=now
    )
    if alert:
        AlertFactory(
            team=deployment.team,
            deployment=deployment,
            labels={"alertname": "HighQueueDepth", "deployment": deployment.name},
            annotations={"summary": "Queue over 10 for 5 minutes"},
        )


def firing_alerts(deployment: Deployment) -> int:
    return Alert.objects.filter(deployment=deployment, status="firing").count()


@contextmanager
def stored_prometheus(deployment: Deployment) -> Iterator[RecordingServer]:
    """A Prometheus on 127.0.0.1 that answers the backtest's range queries for
    ``deployment`` from what is stored: each signal's PromQL from its samples, and the
    replica count from the decisions' current count. The rows are read once, here (the
    server's thread has no database connection of its own)."""
    (target,) = targets_for([deployment])
    queries = _range_queries(target, list(SIGNALS))
    stored: dict[str, list[tuple[float, float]]] = {
        promql: [
            (ts.timestamp(), value)
            for ts, value in MetricSample.objects.filter(deployment=deployment, signal=signal)
            .order_by("ts")
            .values_list("ts", "value")
        ]
        for signal, promql in queries.items()
        if signal != ACTUAL_REPLICAS
    }
    stored[queries[ACTUAL_REPLICAS]] = [
        (at.timestamp(), float(replicas))
        for at, replicas in DecisionRecord.objects.filter(deployment=deployment)
        .order_by("at")
        .values_list("at", "current_replicas")
    ]

    def respond(request: Request) -> Answer:
        url = urlsplit(request.path)
        args = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path != "/api/v1/query_range" or args.get("query") not in stored:
            return 400, {}, b'{"status": "error", "error": "unexpected query"}'
        start, end = float(args["start"]), float(args["end"])
        step = float(args["step"].rstrip("s"))
        # Prometheus's answer: at each step, the latest point of the last five minutes.
        held = _hold_slo_samples(stored[args["query"]], start, step, int((end - start) // step) + 1)
        values = [[t, str(v)] for t, v in held]
        result = [{"metric": {}, "values": values}] if values else []
        body = {"status": "success", "data": {"resultType": "matrix", "result": result}}
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    server = RecordingServer(respond)
    try:
        yield server
    finally:
        server.stop()
