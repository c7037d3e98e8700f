"""Helpers for the autoscaling benchmark tests (pure Python: no database)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from bench.autoscale.sim import MetricLog, MetricsView, ScaleState


def metric_log(rows: Sequence[dict[str, float]], start_s: float = 1.0) -> MetricLog:
    """A log with one sample per second from ``start_s``; missing fields default to 0."""
    log = MetricLog()
    for i, row in enumerate(rows):
        sample = {
            "spec": 0.0,
            "ready": 0.0,
            "waiting": 0.0,
            "running": 0.0,
            "concurrency": 0.0,
            "kv_avg": math.nan,
            "util_avg": math.nan,
            **row,
        }
        log.record(start_s + i, sample)
    return log


def view_of(rows: Sequence[dict[str, float]], now: float, delay_s: float = 0.0) -> MetricsView:
    return MetricsView(metric_log(rows), now, delay_s)


def state(
    now: float,
    spec: int,
    ready: int | None = None,
    *,
    starting: Sequence[float] = (),
    min_replicas: int = 1,
    max_replicas: int = 100,
) -> ScaleState:
    ready = spec if ready is None else ready
    return ScaleState(now, spec, ready, tuple(starting), min_replicas, max_replicas)
