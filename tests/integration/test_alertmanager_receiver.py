"""A real Alertmanager delivering to the control plane's webhook receiver over HTTP.

Alertmanager (127.0.0.1, free port, no clustering) gets alerts on ``/api/v2/alerts`` and
notifies the control plane, served by pytest-django's live server, through webhook
receivers authenticated with receiver tokens (bearer, basic auth, and wrong ones). Timers
are short (group_wait 1 s, group_interval 2 s), so each test takes a few seconds.

What Alertmanager actually sent is captured by wrapping the view's payload parser and
ingest call (the live server runs in this process); what was stored is read back from the
database; what Alertmanager itself thinks is read from its API, metrics and log.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.utils import timezone

from apps.alerts import api as alerts_api
from apps.alerts.delivery import channel_deliver_pending
from apps.alerts.models import (
    Alert,
    AlertGroup,
    AlertSource,
    AlertStatus,
    Delivery,
    DeliveryStatus,
    Receiver,
)
from apps.alerts.services import alert_groups_flush, receiver_create
from apps.devstack.alertmanager import EmbeddedAlertmanager, WebhookReceiver, find_binary
from apps.integrations.chat.signing import (
    WEBHOOK_SIGNATURE_HEADER,
    WEBHOOK_TIMESTAMP_HEADER,
    verify_webhook_signature,
)
from tests.factories.accounts import TeamFactory
from tests.factories.alerts import ChannelFactory, RouteFactory
from tests.servers import QuietHandler, base_url, binary_or_skip, http_server

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

WEBHOOK_PATH = "/api/v1/alerts/webhook/alertmanager/"
GROUP_WAIT_S = 1.0
GROUP_INTERVAL_S = 2.0
WAIT_S = 20.0


@pytest.fixture
def alertmanager_binary() -> str:
    return binary_or_skip(find_binary(), "alertmanager", "prometheus-alertmanager")


@dataclass
class Capture:
    """Every authenticated webhook call that reached the view: the raw payload Alertmanager
    sent and what the ingest reported."""

    payloads: list[dict[str, Any]] = field(default_factory=list)
    reports: list[Any] = field(default_factory=list)

    def payloads_for(self, case: str) -> list[dict[str, Any]]:
        return [
            p
            for p in self.payloads
            if p["alerts"] and all(a["labels"].get("case") == case for a in p["alerts"])
        ]


def _first_per_group(capture: Capture) -> list[dict[str, Any]]:
    first: dict[str, dict[str, Any]] = {}
    for payload in capture.payloads:
        first.setdefault(payload["groupKey"], payload)
    return list(first.values())


@pytest.fixture
def capture(monkeypatch: pytest.MonkeyPatch) -> Capture:
    seen = Capture()
    parse = alerts_api.parse_alertmanager
    ingest = alerts_api.alerts_ingest

    def spy_parse(raw: Any, **kwargs: Any) -> Any:
        seen.payloads.append(copy.deepcopy(raw))
        return parse(raw, **kwargs)

    def spy_ingest(**kwargs: Any) -> Any:
        report = ingest(**kwargs)
        seen.reports.append(report)
        return report

    monkeypatch.setattr(alerts_api, "parse_alertmanager", spy_parse)
    monkeypatch.setattr(alerts_api, "alerts_ingest", spy_ingest)
    return seen


@pytest.fixture
def webhook_url(live_server: Any, settings: Any) -> str:
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "127.0.0.1"]
    return f"http://127.0.0.1:{live_server.thread.port}{WEBHOOK_PATH}"


@pytest.fixture
def start_alertmanager(
    alertmanager_binary: str,
) -> Iterator[Callable[..., EmbeddedAlertmanager]]:
    started: list[EmbeddedAlertmanager] = []

    def start(receivers: list[WebhookReceiver], **options: Any) -> EmbeddedAlertmanager:
        am = EmbeddedAlertmanager(
            receivers=receivers,
            group_by=["alertname", "deployment"],
            group_wait_s=GROUP_WAIT_S,
            group_interval_s=GROUP_INTERVAL_S,
            binary=alertmanager_binary,
            log_level="debug",
            **options,
        )
        started.append(am)
        return am.start()

    try:
        yield start
    finally:
        for am in started:
            am.cleanup()


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@pytest.fixture
def chat_receiver(allow_loopback_outbound: None) -> Iterator[tuple[str, list[Received]]]:
    """A local HTTP endpoint for the generic webhook channel; records every request."""
    received: list[Received] = []

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received.append(Received(dict(self.headers.items()), body))
            self.send_json(200, {"ok": True})

    with http_server(Handler) as server:
        yield f"{base_url(server)}/notify", received


def wait_for(condition: Callable[[], bool], what: str, am: EmbeddedAlertmanager) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; alertmanager log:\n{am.log_tail(30)}")


def am_alert(
    labels: dict[str, str], *, starts_at: datetime, ends_at: datetime | None = None
) -> dict[str, Any]:
    alert: dict[str, Any] = {
        "labels": labels,
        "annotations": {"summary": f"{labels['alertname']} on {labels.get('deployment', '?')}"},
        "startsAt": starts_at,
        "generatorURL": "http://prometheus.example/graph?g0.expr=up",
    }
    if ends_at is not None:
        alert["endsAt"] = ends_at
    return alert


def labels_of(case: str, deployment: str, pod: str) -> dict[str, str]:
    return {
        "alertname": "HighQueueDepth",
        "severity": "warning",
        "deployment": deployment,
        "pod": pod,
        "case": case,
    }


def test_alerts_arrive_grouped_deduplicated_and_resolved(
    webhook_url: str, capture: Capture, start_alertmanager: Callable[..., EmbeddedAlertmanager]
) -> None:
    team = TeamFactory(slug="llm")
    receiver, token = receiver_create(team=team, name="am-bearer", actor=None)
    am = start_alertmanager([WebhookReceiver("control-plane", webhook_url, bearer_token=token)])
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    chat = [labels_of("bearer", "chat", f"chat-{i}") for i in range(3)]
    code = [labels_of("bearer", "code", f"code-{i}") for i in range(2)]
    am.post_alerts([am_alert(labels, starts_at=started) for labels in chat + code])

    # Grouped: one webhook call per group_by value set, with all of that group's alerts.
    wait_for(lambda: Alert.objects.count() == 5, "the 5 alerts to be stored", am)
    # A call Alertmanager gave up on (a slow answer on a loaded machine) is sent again: take
    # each group's first call.
    wait_for(lambda: len(_first_per_group(capture)) >= 2, "both groups' webhook calls", am)
    first_calls = _first_per_group(capture)
    assert sorted(len(p["alerts"]) for p in first_calls) == [2, 3]
    for payload in first_calls:
        assert payload["version"] == "4"
        assert payload["receiver"] == "control-plane"
        deployments = {a["labels"]["deployment"] for a in payload["alerts"]}
        assert len(deployments) == 1
        assert payload["groupLabels"] == {
            "alertname": "HighQueueDepth",
            "deployment": deployments.pop(),
        }
    creating = [(r.created, r.updated) for r in capture.reports if r.created]
    assert sorted(creating) == [(2, 0), (3, 0)]

    # Stored with Alertmanager's own fingerprints: the webhook payload's and its API's.
    sent = {a["fingerprint"]: a for p in first_calls for a in p["alerts"]}
    api = {a["fingerprint"]: a for a in am.alerts()}
    stored = {a.fingerprint: a for a in Alert.objects.all()}
    assert set(stored) == set(sent) == set(api)
    for fp, row in stored.items():
        assert row.labels == sent[fp]["labels"] == api[fp]["labels"]
        assert row.status == AlertStatus.FIRING
        assert row.source == AlertSource.ALERTMANAGER
        assert row.team_id == team.pk
        assert row.name == "HighQueueDepth"
        assert row.severity == "warning"
        assert row.starts_at == started
        assert row.annotations["summary"].startswith("HighQueueDepth on ")
        assert row.generator_url == "http://prometheus.example/graph?g0.expr=up"
    receiver.refresh_from_db()
    assert receiver.last_used_at is not None

    # Deduplicated: the same alert posted again, plus a new one in its group. Alertmanager
    # re-sends the whole group; the three known alerts are updated, not duplicated.
    calls_before = len(capture.reports)
    extra = labels_of("bearer", "chat", "chat-3")
    am.post_alerts([am_alert(chat[0], starts_at=started), am_alert(extra, starts_at=started)])
    wait_for(lambda: Alert.objects.count() == 6, "the new alert of the chat group", am)
    wait_for(lambda: len(capture.reports) > calls_before, "the chat group's second call", am)
    resent = capture.payloads[calls_before]
    assert len(resent["alerts"]) == 4
    report = capture.reports[calls_before]
    assert (report.received, report.created, report.updated) == (4, 1, 3)
    assert Alert.objects.filter(labels__pod="chat-0").count() == 1
    assert len(am.alerts()) == 6
    assert {a["fingerprint"] for a in am.alerts()} == set(
        Alert.objects.values_list("fingerprint", flat=True)
    )

    # Resolution flows through: endsAt in the past, Alertmanager notifies it resolved.
    resolved_at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    am.post_alerts([am_alert(code[0], starts_at=started, ends_at=resolved_at)])
    target = Alert.objects.get(labels__pod="code-0")
    wait_for(
        lambda: Alert.objects.get(pk=target.pk).status == AlertStatus.RESOLVED,
        "the resolution to arrive",
        am,
    )
    target.refresh_from_db()
    assert target.ends_at == resolved_at
    assert target.starts_at == started
    resolved_calls = [
        p for p in capture.payloads if any(a["status"] == "resolved" for a in p["alerts"])
    ]
    assert resolved_calls
    assert {a["fingerprint"] for a in resolved_calls[0]["alerts"] if a["status"] == "resolved"} == {
        target.fingerprint
    }
    assert Alert.objects.filter(status=AlertStatus.FIRING).count() == 5
    assert Alert.objects.count() == 6


def test_basic_auth_works_and_a_wrong_token_stores_nothing(
    webhook_url: str, capture: Capture, start_alertmanager: Callable[..., EmbeddedAlertmanager]
) -> None:
    team, other = TeamFactory(slug="llm"), TeamFactory(slug="infra")
    basic, basic_token = receiver_create(team=team, name="am-basic", actor=None)
    _, other_token = receiver_create(team=other, name="am-other", actor=None)
    am = start_alertmanager(
        [
            WebhookReceiver(
                "basic",
                webhook_url,
                basic_auth=(basic.name, basic_token),
                matchers=('case="basic"',),
            ),
            WebhookReceiver(
                "wrong-token",
                webhook_url,
                bearer_token="lcpr_" + "x" * 43,
                matchers=('case="wrong-token"',),
            ),
            # A valid token under another receiver's name is refused too.
            WebhookReceiver(
                "wrong-user",
                webhook_url,
                basic_auth=(basic.name, other_token),
                matchers=('case="wrong-user"',),
            ),
        ]
    )
    started = datetime.now(UTC).replace(microsecond=0)
    am.post_alerts(
        [
            am_alert(labels_of(case, "chat", f"{case}-{i}"), starts_at=started)
            for case in ("basic", "wrong-token", "wrong-user")
            for i in range(2)
        ]
    )
    wait_for(lambda: Alert.objects.count() >= 2, "the basic-auth alerts", am)

    def refused(name: str) -> bool:
        return any(
            f"{name}/webhook[0]: notify retry canceled" in line
            and "unexpected status code 401" in line
            for line in am.log_text().splitlines()
        )

    wait_for(
        lambda: refused("wrong-token") and refused("wrong-user"),
        "Alertmanager to report both refused deliveries (401)",
        am,
    )
    # A failed group is tried again at every group_interval: give that a turn too.
    time.sleep(GROUP_INTERVAL_S + 0.5)

    stored = list(Alert.objects.all())
    assert sorted(a.labels["pod"] for a in stored) == ["basic-0", "basic-1"]
    assert all(a.team_id == team.pk for a in stored)
    assert sorted(a.fingerprint for a in stored) == sorted(
        a["fingerprint"] for a in am.alerts() if a["labels"]["case"] == "basic"
    )
    # Refused before the payload is read: the view never saw the wrong receivers' alerts.
    assert len(capture.payloads_for("basic")) == 1
    assert capture.payloads_for("basic")[0]["receiver"] == "basic"
    assert not capture.payloads_for("wrong-token")
    assert not capture.payloads_for("wrong-user")
    assert len(capture.payloads) == len(capture.reports) == 1
    assert am.metric("alertmanager_notifications_failed_total", integration="webhook") >= 2
    basic.refresh_from_db()
    assert basic.last_used_at is not None
    assert not Receiver.objects.get(name="am-other").last_used_at


def test_route_groups_flush_into_one_delivery_each(
    webhook_url: str,
    capture: Capture,
    start_alertmanager: Callable[..., EmbeddedAlertmanager],
    chat_receiver: tuple[str, list[Received]],
) -> None:
    chat_url, chat_requests = chat_receiver
    team = TeamFactory(slug="llm")
    _, token = receiver_create(team=team, name="am-routes", actor=None)
    secret = "whsec-integration-test"
    channel = ChannelFactory(team=team, webhook_url=chat_url, secret=secret, max_per_minute=600)
    route = RouteFactory(
        team=team,
        matchers=[{"name": "alertname", "op": "=", "value": "HighQueueDepth"}],
        group_by=["alertname", "deployment"],
        group_wait_s=1,
        group_interval_s=60,
        channels=[channel],
    )
    cache.delete(f"alerts:channel-sent:{channel.pk}")
    queued: list[int] = []

    am = start_alertmanager([WebhookReceiver("control-plane", webhook_url, bearer_token=token)])
    started = datetime.now(UTC).replace(microsecond=0)
    groups = {
        "chat": [labels_of("routes", "chat", f"chat-{i}") for i in range(3)],
        "code": [labels_of("routes", "code", f"code-{i}") for i in range(2)],
    }
    am.post_alerts([am_alert(labels, starts_at=started) for g in groups.values() for labels in g])
    wait_for(lambda: Alert.objects.count() == 5, "the 5 alerts to be stored", am)
    wait_for(lambda: len(capture.reports) >= 2, "both groups' webhook calls", am)
    assert sum(r.grouped for r in capture.reports) == 5

    am_fingerprints = {
        deployment: {
            a["fingerprint"] for a in am.alerts() if a["labels"]["deployment"] == deployment
        }
        for deployment in groups
    }
    assert [len(v) for v in am_fingerprints.values()] == [3, 2]
    stored_groups = {g.labels["deployment"]: g for g in AlertGroup.objects.filter(route=route)}
    assert set(stored_groups) == {"chat", "code"}
    for deployment, group in stored_groups.items():
        assert group.labels == {"alertname": "HighQueueDepth", "deployment": deployment}
        assert (
            set(group.alerts.values_list("fingerprint", flat=True)) == (am_fingerprints[deployment])
        )

    # Not due during the route's group_wait; after it, one delivery per group listing all
    # of the group's alerts.
    created = min(g.created_at for g in stored_groups.values())
    due = max(g.next_flush_at for g in stored_groups.values())
    assert due - created >= timedelta(seconds=route.group_wait_s)
    assert alert_groups_flush(now=created).deliveries == []
    time.sleep(max(0.0, (due - timezone.now()).total_seconds()) + 0.05)
    report = alert_groups_flush(enqueue=queued.append)
    assert report.groups == 2
    assert report.notified == 2
    assert len(report.deliveries) == 2
    assert queued == [channel.pk, channel.pk]
    deliveries = list(Delivery.objects.filter(pk__in=report.deliveries))
    by_deployment = {d.group.labels["deployment"]: d for d in deliveries}
    for deployment, delivery in by_deployment.items():
        assert delivery.channel_id == channel.pk
        assert delivery.status == DeliveryStatus.PENDING
        assert set(delivery.fingerprints) == am_fingerprints[deployment]
        listed = {a["fingerprint"] for a in delivery.notification["alerts"]}
        assert listed == am_fingerprints[deployment]
        assert delivery.notification["firing_count"] == len(am_fingerprints[deployment])

    # A second look right away changes nothing: nothing new to say.
    assert alert_groups_flush().deliveries == []

    # What the worker does: send the channel's pending deliveries to the webhook endpoint.
    assert channel_deliver_pending(channel_id=channel.pk) is None
    assert len(chat_requests) == 2
    sent_groups = {}
    for request in chat_requests:
        assert verify_webhook_signature(
            secret,
            body=request.body,
            timestamp=request.headers[WEBHOOK_TIMESTAMP_HEADER],
            signature=request.headers[WEBHOOK_SIGNATURE_HEADER],
            now=time.time(),
        )
        body = json.loads(request.body)
        notification = body["notification"]
        deployment = notification["group_labels"]["deployment"]
        sent_groups[deployment] = {a["fingerprint"] for a in notification["alerts"]}
    assert sent_groups == am_fingerprints
    for delivery in deliveries:
        delivery.refresh_from_db()
        assert delivery.status == DeliveryStatus.SUCCEEDED
        assert delivery.status_code == 200
        assert delivery.attempts == 1


def _post_batch(url: str, token: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    import requests

    response = requests.post(
        url, json=payload, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    return response.status_code, response.json()


def test_retried_batch__posted_again_and_concurrently__stored_once_and_notified_once(
    webhook_url: str,
    chat_receiver: tuple[str, list[Received]],
) -> None:
    """An Alertmanager retrying the same webhook batch (it retries until it gets a 2xx,
    and a slow answer can make it send again while the first call is still running):
    every call is answered 200, and the batch is stored once — one alert per fingerprint
    and team, one group membership each — and notified once."""
    from django.db import connection

    chat_url, chat_requests = chat_receiver
    team, other = TeamFactory(slug="llm"), TeamFactory(slug="infra")
    _, token = receiver_create(team=team, name="am-retry", actor=None)
    _, other_token = receiver_create(team=other, name="am-retry-other", actor=None)
    channel = ChannelFactory(
        team=team, webhook_url=chat_url, secret="whsec-retry", max_per_minute=600
    )
    route = RouteFactory(team=team, group_interval_s=1, channels=[channel])
    cache.delete(f"alerts:channel-sent:{channel.pk}")
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)

    def batch(round_: int) -> dict[str, Any]:
        return {
            "version": "4",
            "status": "firing",
            "receiver": "control-plane",
            "groupLabels": {"alertname": "HighQueueDepth"},
            "alerts": [
                {
                    "status": "firing",
                    "labels": labels_of(f"retry-{round_}", "chat", f"chat-{i}"),
                    "annotations": {"summary": "queue is deep"},
                    "startsAt": started.isoformat(),
                    "endsAt": "0001-01-01T00:00:00Z",
                }
                for i in range(40)
            ],
        }

    # Sequential retries of one batch: the first call creates, the others update.
    first = batch(0)
    replies = [_post_batch(webhook_url, token, first) for _ in range(3)]
    assert [status for status, _ in replies] == [200, 200, 200]
    assert [body["created"] for _, body in replies] == [40, 0, 0]
    assert [body["updated"] for _, body in replies] == [0, 40, 40]

    # Concurrent retries (two calls of the same batch in flight at once), on a database
    # where they really run side by side.
    rounds = 6 if connection.vendor == "postgresql" else 0
    for round_ in range(1, rounds + 1):
        payload = batch(round_)
        barrier = threading.Barrier(2)
        results: list[tuple[int, dict[str, Any]]] = []

        def send(
            payload: dict[str, Any],
            barrier: threading.Barrier,
            results: list[tuple[int, dict[str, Any]]],
        ) -> None:
            barrier.wait()
            results.append(_post_batch(webhook_url, token, payload))

        threads = [
            threading.Thread(target=send, args=(payload, barrier, results)) for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert [status for status, _ in results] == [200, 200], results
        # Between them, each alert was created once and updated once.
        assert sum(body["created"] for _, body in results) == 40
        assert sum(body["updated"] for _, body in results) == 40

    # The same batch from another team is that team's own alerts: stored beside, not merged.
    status, body = _post_batch(webhook_url, other_token, first)
    assert (status, body["created"]) == (200, 40)

    per_round = 40 * (rounds + 1)
    assert Alert.objects.filter(team=team).count() == per_round
    assert Alert.objects.filter(team=other).count() == 40
    assert Alert.objects.filter(team=team).values("fingerprint").distinct().count() == per_round
    group = AlertGroup.objects.get(route=route)
    through = AlertGroup.alerts.through
    assert through.objects.filter(alertgroup=group).count() == per_round
    assert set(group.alerts.values_list("team", flat=True)) == {team.pk}

    # Notified once: one delivery for the group, and retrying the batch again after the
    # notification adds nothing to say.
    report = alert_groups_flush()
    assert (report.notified, len(report.deliveries)) == (1, 1)
    assert _post_batch(webhook_url, token, first)[0] == 200
    time.sleep(route.group_interval_s + 0.1)
    later = alert_groups_flush()
    assert (later.groups, later.deliveries) == (1, [])
    assert channel_deliver_pending(channel_id=channel.pk) is None
    assert len(chat_requests) == 1
    notification = json.loads(chat_requests[0].body)["notification"]
    assert notification["firing_count"] == per_round
    assert Delivery.objects.filter(channel=channel).count() == 1
