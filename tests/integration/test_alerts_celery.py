"""Alert notifications through a real Celery worker on Redis: the flush task queues the
channel's sender on the notify queue, a failed send is retried by a scheduled follow-up
(not by the 30 s sweep, which does not run here), also when the follow-up itself fails,
and the message reaches a real HTTP receiver."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from django.utils import timezone

from apps.alerts.labels import fingerprint
from apps.alerts.models import AlertGroup, Delivery, DeliveryStatus
from apps.alerts.payloads import IncomingAlert
from apps.alerts.services import alerts_ingest
from apps.alerts.tasks import flush_groups
from controlplane.celery import app
from tests.factories.accounts import TeamFactory
from tests.factories.alerts import ChannelFactory, RouteFactory
from tests.servers import Answer, RecordingServer, Request, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


class _FlakyReceiver(RecordingServer):
    """Answers 503 to the first two requests, 200 afterwards; keeps the accepted bodies."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        super().__init__(self._respond)
        self.url += "/hook"

    def _respond(self, request: Request) -> Answer:
        self.statuses.append(503 if len(self.statuses) < 2 else 200)
        return self.statuses[-1], {}, b""

    @property
    def accepted(self) -> list[dict]:
        return [
            json.loads(request.body)
            for request, status in zip(self.requests, self.statuses, strict=True)
            if status == 200
        ]


@pytest.fixture
def receiver(allow_loopback_outbound):
    server = _FlakyReceiver()
    yield server
    server.stop()


def test_notify_through_worker__flush_queues_sender__retry_by_follow_up__delivered(
    celery_redis, receiver
):
    team = TeamFactory()
    channel = ChannelFactory(team=team, webhook_url=receiver.url)
    RouteFactory(team=team, channels=[channel])
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
    (body,) = receiver.accepted
    assert body["notification"]["alerts"][0]["fingerprint"] == fingerprint(labels)
    assert body["notification"]["firing_count"] == 1
