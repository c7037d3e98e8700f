"""The control plane's own Prometheus metrics, exposed at /metrics.

Under gunicorn every worker is a process of its own. With ``PROMETHEUS_MULTIPROC_DIR`` set
(``deploy/gunicorn.conf.py`` sets it), prometheus-client keeps each process's values in
files there and a scrape adds up the files of all workers, dead ones included, so that any
worker answers for the whole server and counters never go back. Without it (``manage.py
runserver``, tests) the process's own registry is served.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from http import HTTPStatus

from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
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
HTTP_IN_PROGRESS = Gauge(
    "controlplane_http_requests_in_progress",
    "HTTP requests being served now, over all live web workers.",
    # livesum: the sum over live processes; a dead worker's files are dropped by
    # mark_process_dead() in gunicorn's child_exit hook.
    multiprocess_mode="livesum",
)

# Label values come from fixed sets, so that no request, however made up, adds a series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_STATUSES = frozenset(int(status) for status in HTTPStatus)
UNMATCHED_ROUTE = "<unmatched>"


def method_label(method: str | None) -> str:
    return method if method in METHODS else "other"


def status_label(status: int) -> str:
    """The code when HTTP defines it, else its class (``"5xx"``); ``"other"`` out of range."""
    if status in _STATUSES:
        return str(status)
    if 100 <= status <= 599:
        return f"{status // 100}xx"
    return "other"


def observe_request(*, method: str | None, route: str | None, status: int, seconds: float) -> None:
    """Count a request. ``route`` is the URL pattern that matched (``None``: none did); the
    URLconf bounds it."""
    method_value = method_label(method)
    route_value = route if route is not None else UNMATCHED_ROUTE
    HTTP_REQUESTS.labels(method=method_value, route=route_value, status=status_label(status)).inc()
    HTTP_LATENCY.labels(method=method_value, route=route_value).observe(seconds)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


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


def scrape_registry() -> CollectorRegistry:
    """What /metrics serves: every worker's figures in multiprocess mode, else this
    process's registry."""
    path = multiprocess_dir()
    if path is None:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)
    registry.register(_collector)
    return registry
