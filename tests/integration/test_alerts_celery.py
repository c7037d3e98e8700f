"""Alert notifications through a real Celery worker on Redis: the flush task queues the
channel's sender on the notify queue, a failed send is retried by a scheduled follow-up
(not by the 30 s sweep, which does not run here), also when the follow-up itself fails,
and the message reaches a real HTTP receiver."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from celery.contrib.testing.worker import start_worker
from django.utils import timezone

from apps.alerts.labels import fingerprint
from apps.alerts.models import AlertGroup, Channel, Delivery, DeliveryStatus, Route
from apps.alerts.payloads import IncomingAlert
from apps.alerts.services import alerts_ingest
from apps.alerts.tasks import flush_groups
from controlplane.celery import app
from tests.factories.accounts import TeamFactory
from tests.servers import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


class _FlakyReceiver:
    """Answers 503 to the first two requests, 200 afterwards; records bodies."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = 503 if len(receiver.statuses) < 2 else 200
                receiver.statuses.append(status)
                if status == 200:
                    receiver.bodies.append(json.loads(body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(allow_loopback_outbound):
    server = _FlakyReceiver()
    yield server
    server.stop()


def test_notify_through_worker__flush_queues_sender__retry_by_follow_up__delivered(
    celery_redis, receiver
):
    team = TeamFactory()
    channel = Channel.objects.create(
        team=team,
        name="ops",
        kind="webhook",
        config={"webhook_url": receiver.url, "secret": "s3cret"},
    )
    route = Route.objects.create(team=team, name="all", group_by=["alertname"], group_wait_s=0)
    route.channels.add(channel)
    labels = {"alertname": "GpuHot", "gpu": "0", "severity": "critical"}
    start = timezone.now() - timedelta(seconds=5)
    alerts_ingest(
        alerts=[
            IncomingAlert(
                labels, {"summary": "hot"}, "firing", start, None, "", fingerprint(labels)
            )
        ],
        source="api",
        team=team,
    )
    assert AlertGroup.objects.count() == 1

    with start_worker(
        app,
        pool="solo",
        perform_ping_check=False,
        loglevel="WARNING",
        shutdown_timeout=30,
        queues=["control", "notify"],
    ):
        flush_groups.delay()
        delivery = wait_for(
            lambda: Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED).first(),
            30,
            "delivery succeeded",
        )
    # Two 503s (retryable), each retried by a scheduled follow-up; the third attempt lands.
    assert receiver.statuses == [503, 503, 200]
    assert delivery.attempts == 3
    assert delivery.status_code == 200
    assert delivery.latency_ms is not None
    (body,) = receiver.bodies
    assert body["notification"]["alerts"][0]["fingerprint"] == fingerprint(labels)
    assert body["notification"]["firing_count"] == 1
