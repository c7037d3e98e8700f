"""A 1,000-alert storm through real HTTP receivers: every alert reaches the chat (listed or
summarised), no channel's rate limit is ever exceeded, and signatures verify as the
platforms document. Time is simulated: the sender's clock jumps to when the limiter allows
the next message, so the test does not wait out real minutes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from apps.alerts.delivery import channel_deliver_pending
from apps.alerts.labels import fingerprint
from apps.alerts.models import Channel, Delivery, DeliveryStatus
from apps.alerts.payloads import IncomingAlert
from apps.alerts.services import alert_groups_flush, alerts_ingest
from tests.factories.accounts import TeamFactory
from tests.factories.alerts import ChannelFactory, RouteFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

SECRET_DT = "SEC" + "d" * 40
SECRET_WH = "webhook-secret"


class _Receiver:
    """An HTTP server that records (simulated time, path, headers, body) per request."""

    def __init__(self, now):
        self.now = now
        self.requests: list[tuple[float, str, dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append((receiver.now(), self.path, dict(self.headers), body))
                answer = json.dumps({"errcode": 0, "errmsg": "ok"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def clock():
    state = {"t": timezone.now().timestamp()}
    return state


@pytest.fixture
def receiver(clock, allow_loopback_outbound):
    server = _Receiver(lambda: clock["t"])
    yield server
    server.stop()


def test_storm__1000_alerts__all_represented_and_rate_limits_kept(receiver, clock, monkeypatch):
    monkeypatch.setattr("apps.alerts.tasks.deliver_channel.delay", lambda channel_id: None)
    team = TeamFactory()
    base = f"http://127.0.0.1:{receiver.port}"
    dingtalk = Channel.objects.create(
        team=team,
        name="dt",
        kind="dingtalk",
        language="zh",
        config={"webhook_url": f"{base}/robot/send?access_token=t0k", "secret": SECRET_DT},
    )
    webhook = ChannelFactory(team=team, webhook_url=f"{base}/hook", secret=SECRET_WH)
    RouteFactory(team=team, group_by=["deployment"], channels=[dingtalk, webhook])

    now = timezone.now()
    storm = [
        IncomingAlert(
            labels := {"alertname": "HighQueue", "deployment": f"d-{i:04d}", "severity": "warning"},
            {"summary": f"queue high on d-{i:04d}"},
            "firing",
            now,
            None,
            "",
            fingerprint(labels),
        )
        for i in range(1000)
    ]
    alerts_ingest(alerts=storm, source="api", team=team, now=now)
    while alert_groups_flush(now=now + timedelta(seconds=1)).groups:
        pass
    assert Delivery.objects.filter(channel=dingtalk).count() == 1000

    for channel in (dingtalk, webhook):
        for _ in range(10_000):
            wait = channel_deliver_pending(channel_id=channel.pk, clock=lambda: clock["t"])
            if wait is None:
                break
            clock["t"] += max(wait, 0.001)
        else:
            pytest.fail("delivery did not finish")

    expected = {a.fingerprint for a in storm}
    for channel, path, window_s, limit in (
        (dingtalk, "/robot/send", 60, 20),
        (webhook, "/hook", 60, 60),
    ):
        sent = Delivery.objects.filter(channel=channel, status=DeliveryStatus.SUCCEEDED)
        represented = {fp for d in sent for fp in d.fingerprints}
        assert represented == expected, f"{channel.kind}: {len(expected - represented)} lost"
        assert not Delivery.objects.filter(channel=channel, status=DeliveryStatus.PENDING).exists()
        assert Delivery.objects.filter(channel=channel, status=DeliveryStatus.MERGED).count() > 0
        times = sorted(t for t, p, _, _ in receiver.requests if p.startswith(path))
        assert len(times) == sent.count()
        # No sliding window of the platform's length ever holds more than its limit.
        for i, start in enumerate(times):
            in_window = [t for t in times[i:] if t < start + window_s]
            assert len(in_window) <= limit, f"{channel.kind}: {len(in_window)} in {window_s}s"

    # What reached the receivers verifies as each platform documents it.
    for _, path, headers, body in receiver.requests:
        if path.startswith("/robot/send"):
            query = parse_qs(urlsplit(path).query)
            # Recomputed from DingTalk's documentation, not with the code under test.
            digest = hmac.new(
                SECRET_DT.encode(),
                f"{query['timestamp'][0]}\n{SECRET_DT}".encode(),
                hashlib.sha256,
            ).digest()
            assert query["sign"][0] == base64.b64encode(digest).decode()
            assert json.loads(body)["msgtype"] == "markdown"
        else:
            lower = {k.lower(): v for k, v in headers.items()}
            # Recomputed from the scheme documented in apps.integrations.chat.webhook
            # (HMAC-SHA256 of "<timestamp>." + body), not with the code under test.
            signed = lower["x-controlplane-timestamp"].encode() + b"." + body
            expected_sig = hmac.new(SECRET_WH.encode(), signed, hashlib.sha256).hexdigest()
            assert lower["x-controlplane-signature"] == f"sha256={expected_sig}"
    # The webhook bodies themselves carry every fingerprint (listed or summarised).
    carried: set[str] = set()
    for _, path, _, body in receiver.requests:
        if path == "/hook":
            n = json.loads(body)["notification"]
            carried |= {a["fingerprint"] for a in n["alerts"]}
            carried |= {fp for g in n["omitted_groups"] for fp in g["fingerprints"]}
    assert carried == expected
