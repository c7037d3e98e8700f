"""The control plane's own Prometheus metrics, exposed at /metrics."""

from __future__ import annotations

from collections.abc import Iterator

from django.utils import timezone
from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

HTTP_REQUESTS = Counter(
    "controlplane_http_requests_total",
    "HTTP requests served, by method, route pattern and status code.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "controlplane_http_request_duration_seconds",
    "Time to serve an HTTP request, by method and route pattern.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method=method, route=route, status=str(status)).inc()
    HTTP_LATENCY.labels(method=method, route=route).observe(seconds)


class DatabaseStateCollector(Collector):
    """Figures that live in the database because several processes produce them."""

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, GaugeMetricFamily]:
        tasks = CounterMetricFamily(
            "controlplane_celery_tasks",
            "Celery task executions by task name and outcome, across all workers.",
            labels=["task", "outcome"],
        )
        heartbeats = GaugeMetricFamily(
            "controlplane_worker_heartbeat_age_seconds",
            "Seconds since each Celery worker last ran the heartbeat task.",
            labels=["hostname"],
        )
        return tasks, heartbeats

    def describe(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        # Without describe(), registering the collector calls collect(), which would query
        # the database at import time.
        yield from self._families()

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        from .models import TaskCounter, WorkerHeartbeat

        tasks, heartbeats = self._families()
        try:
            for row in TaskCounter.objects.all():
                tasks.add_metric([row.task_name, row.outcome], row.count)
            now = timezone.now()
            for hb in WorkerHeartbeat.objects.all():
                heartbeats.add_metric([hb.hostname], (now - hb.last_seen).total_seconds())
        except Exception:  # noqa: BLE001 - a scrape must not fail because the DB is down
            return
        yield tasks
        yield heartbeats


_collector = DatabaseStateCollector()
REGISTRY.register(_collector)
