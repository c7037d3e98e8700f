"""Redis (broker and cache) restarted in the middle of a cycle.

Two ``celery worker`` processes consume the control and notify queues of a private
redis-server (the shared one on 6379 is never touched). An alert is flushed into a
delivery, and one worker sends it to a webhook receiver that holds the request. While it
is held, Redis is killed and started again, empty: the queued messages and the cache
locks (the channel's sender lock among them) are gone. The safety net is then sent as beat
sends it (``alerts.deliver_due``), which hands the channel to the other, idle worker. The
held request is let go.

The alert is notified exactly once, and the loop goes on after the restart: a new alert is
delivered, and the control loop's fan-out records a decision.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.alerts.labels import fingerprint
from apps.alerts.models import Delivery, DeliveryStatus
from apps.alerts.payloads import IncomingAlert
from apps.alerts.services import alerts_ingest
from apps.alerts.tasks import deliver_due, flush_groups
from apps.autoscaling.models import DecisionRecord, Mode
from apps.autoscaling.tasks import evaluate_all
from tests.factories.accounts import TeamFactory
from tests.factories.alerts import ChannelFactory, RouteFactory
from tests.factories.autoscaling import AutoscalingPolicyFactory
from tests.factories.inventory import SimulatedDeploymentFactory
from tests.integration.celery_support import reset_pools
from tests.servers import QuietHandler, base_url, http_server, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@dataclass
class _Receiver:
    """A webhook receiver that holds the first request until ``release`` is set."""

    fingerprints: list[list[str]] = field(default_factory=list)  # per request received
    first_arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(QuietHandler):
    def do_POST(self) -> None:
        receiver = self.server.receiver
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        alerts = body["notification"]["alerts"]
        with receiver.lock:
            receiver.fingerprints.append(sorted(a["fingerprint"] for a in alerts))
            first = len(receiver.fingerprints) == 1
        if first:
            receiver.first_arrived.set()
            receiver.release.wait(60)
        try:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
        except OSError:
            pass


@pytest.fixture
def receiver(settings: Any) -> Iterator[tuple[_Receiver, str]]:
    # Opt in to a loopback receiver: the outbound guard refuses it by default.
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    state = _Receiver()
    with http_server(_Handler, receiver=state) as server:
        try:
            yield state, f"{base_url(server)}/hook"
        finally:
            state.release.set()  # a held request ends before the server stops


def _fire(team: Any, name: str) -> str:
    labels = {"alertname": name, "severity": "critical"}
    fp = fingerprint(labels)
    alerts_ingest(
        alerts=[
            IncomingAlert(
                labels,
                {"summary": name},
                "firing",
                timezone.now() - timedelta(seconds=5),
                None,
                "",
                fp,
            )
        ],
        source="api",
        team=team,
    )
    return fp


def _publish(task: Any) -> None:
    """Send a task as beat would; right after the restart the first publish may meet the
    dead connection of the pool, which a fresh pool replaces."""
    for _ in range(20):
        try:
            task.delay()
            return
        except Exception:  # noqa: BLE001 - any broker error: retry on a fresh pool
            reset_pools()
            time.sleep(0.5)
    task.delay()


def test_redis_restarted_mid_delivery__notified_once__loop_resumes(
    private_redis, worker_processes, receiver
):
    state, url = receiver
    team = TeamFactory()
    RouteFactory(team=team, channels=[ChannelFactory(team=team, webhook_url=url)])
    deployment = SimulatedDeploymentFactory(name="chat", min_replicas=1, max_replicas=4)
    AutoscalingPolicyFactory(
        deployment=deployment, mode=Mode.DRY_RUN, targets=[{"signal": "queue_length", "value": 3}]
    )
    workers = worker_processes(
        2,
        "http://127.0.0.1:9",  # no simulator: the decision holds on an unreadable target
        {"OUTBOUND_ALLOWED_NETWORKS": "127.0.0.1/32"},
        queues="control,notify",
    )

    first = _fire(team, "GpuHot")
    flush_groups.delay()
    assert state.first_arrived.wait(30), "the delivery was never sent"

    # Mid-send: Redis dies and comes back empty.
    private_redis.restart()
    reset_pools()

    # The safety net, as beat sends it, reaches the idle worker: the channel's sender lock
    # went with Redis, and the delivery being sent must not be sent again.
    for _ in range(5):
        _publish(deliver_due)
        time.sleep(1.0)
    state.release.set()
    wait_for(
        lambda: Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() == 1,
        30,
        "the held delivery recorded",
    )
    for _ in range(3):
        _publish(deliver_due)
        time.sleep(1.0)

    # The loop goes on: a new alert is delivered, the control loop records a decision.
    second = _fire(team, "DiskFull")
    _publish(flush_groups)
    wait_for(lambda: len(state.fingerprints) >= 2, 30, "the alert after the restart delivered")
    before = DecisionRecord.objects.count()
    _publish(evaluate_all)
    wait_for(lambda: DecisionRecord.objects.count() > before, 30, "a decision after the restart")
    for _ in range(3):
        _publish(deliver_due)
        time.sleep(1.0)

    assert state.fingerprints == [[first], [second]], "a notification was sent twice"
    assert Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() == 2
    assert not Delivery.objects.exclude(status=DeliveryStatus.SUCCEEDED).exists()
    assert all(w.proc.poll() is None for w in workers)
