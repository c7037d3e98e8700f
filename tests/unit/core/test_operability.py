"""Probes, the Prometheus endpoint, request ids and structured request logs."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
import structlog
from django.utils import timezone
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from apps.core.models import WorkerHeartbeat
from apps.core.services import task_counter_increment, worker_heartbeat_record

pytestmark = pytest.mark.django_db


def test_healthz__always__200_ok():
    response = APIClient().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_readyz__no_worker_heartbeat__503_not_ready_with_each_check():
    response = APIClient().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    assert set(body["checks"]) == {"database", "broker", "worker"}
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is True, body["checks"]["broker"]
    assert body["checks"]["worker"] == {"ok": False, "detail": "no worker heartbeat recorded yet"}
    assert body["worker_heartbeat_age_seconds"] is None


def test_readyz__fresh_heartbeat_and_broker_reachable__200_ready():
    worker_heartbeat_record(hostname="w1")
    response = APIClient().get("/readyz")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ready"
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["worker"]["detail"].startswith("w1 seen")


def test_readyz__heartbeat_older_than_limit__503_names_worker(settings):
    worker_heartbeat_record(hostname="w1")
    WorkerHeartbeat.objects.update(
        last_seen=timezone.now() - timedelta(seconds=settings.WORKER_HEARTBEAT_MAX_AGE_S + 30)
    )
    response = APIClient().get("/readyz")
    assert response.status_code == 503
    assert "last heartbeat from w1" in response.json()["checks"]["worker"]["detail"]


def test_readyz__broker_unreachable__503_broker_check_fails():
    from controlplane.celery import app

    worker_heartbeat_record(hostname="w1")
    previous = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    try:
        response = APIClient().get("/readyz")
    finally:
        app.conf.broker_url = previous
    assert response.status_code == 503
    broker = response.json()["checks"]["broker"]
    assert broker["ok"] is False
    assert broker["detail"].startswith("unavailable (")
    # Anonymous callers learn the kind of failure, not where the broker lives.
    assert "127.0.0.1" not in broker["detail"]
    assert ":1" not in broker["detail"]


def test_worker_heartbeat_record__same_host_twice__one_row_updated():
    first = worker_heartbeat_record(hostname="w1")
    second = worker_heartbeat_record(hostname="w1")
    assert WorkerHeartbeat.objects.count() == 1
    assert second.pk == first.pk
    assert second.last_seen >= first.last_seen


def _metrics_text() -> str:
    response = APIClient().get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def test_metrics__after_a_request__http_counter_for_its_route_incremented():
    labels = {"method": "GET", "route": "healthz", "status": "200"}
    before = REGISTRY.get_sample_value("controlplane_http_requests_total", labels) or 0.0
    APIClient().get("/healthz")
    assert REGISTRY.get_sample_value("controlplane_http_requests_total", labels) == before + 1
    text = _metrics_text()
    assert 'controlplane_http_requests_total{method="GET",route="healthz",status="200"}' in text
    assert "controlplane_http_request_duration_seconds_bucket" in text


def test_metrics__after_task_counter_increment__celery_task_counter_exposed():
    task_counter_increment(task_name="core.heartbeat", outcome="succeeded")
    task_counter_increment(task_name="core.heartbeat", outcome="succeeded")
    task_counter_increment(task_name="metrics.collect_all", outcome="failed")
    text = _metrics_text()
    assert 'controlplane_celery_tasks_total{outcome="succeeded",task="core.heartbeat"} 2.0' in text
    assert (
        'controlplane_celery_tasks_total{outcome="failed",task="metrics.collect_all"} 1.0' in text
    )


def test_metrics__worker_heartbeat_age__exposed_per_worker():
    worker_heartbeat_record(hostname="w1")
    assert 'controlplane_worker_heartbeat_age_seconds{hostname="w1"}' in _metrics_text()


@pytest.mark.parametrize(
    "path", ["/healthz", "/readyz", "/metrics", "/api/v1/deployments/", "/admin/", "/nope"]
)
def test_every_response__carries_request_id(path):
    response = APIClient().get(path)
    assert len(response["X-Request-ID"]) == 32
    echoed = APIClient().get(path, HTTP_X_REQUEST_ID="test-req-1")
    assert echoed["X-Request-ID"] == "test-req-1"


def _json_formatter() -> logging.Formatter:
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, structlog.stdlib.ProcessorFormatter):
            return handler.formatter
    raise AssertionError("the root logger has no structlog handler: LOGGING is not applied")


def test_request_log__json_line_with_request_id_and_status(caplog):
    caplog.set_level(logging.INFO, logger="controlplane.http")
    APIClient().get("/api/v1/me/", HTTP_X_REQUEST_ID="test-req-1")
    records = [r for r in caplog.records if r.name == "controlplane.http"]
    assert len(records) == 1
    line = json.loads(_json_formatter().format(records[0]))
    assert line["event"] == "http-request"
    assert line["request_id"] == "test-req-1"
    assert (line["method"], line["path"], line["status"]) == ("GET", "/api/v1/me/", 401)
    assert line["level"] == "info"


def test_request_log__after_the_request__request_id_unbound_from_log_context():
    structlog.contextvars.clear_contextvars()
    APIClient().get("/api/v1/me/", HTTP_X_REQUEST_ID="test-req-2")
    assert "request_id" not in structlog.contextvars.get_contextvars()


def test_request_log__probes__not_logged(caplog):
    caplog.set_level(logging.INFO, logger="controlplane.http")
    APIClient().get("/healthz")
    APIClient().get("/metrics")
    assert not [r for r in caplog.records if r.name == "controlplane.http"]
