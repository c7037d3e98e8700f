"""Channel destinations: internal addresses refused when a channel is saved and when it
sends, fixed-host kinds limited to their platform, and answers stored without their body."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.utils import timezone

from apps.accounts.models import Role
from apps.alerts.delivery import channel_deliver_pending
from apps.alerts.models import Channel, Delivery, DeliveryStatus
from apps.integrations.chat import sample_notification
from tests.factories.accounts import MembershipFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db

CHANNELS = "/api/v1/alerts/channels/"
SECRET_BODY = "db-password=hunter2 internal-only"


class _Internal:
    """A server standing in for an internal service; records every request it gets."""

    def __init__(self, status: int = 200, *, host: str = "127.0.0.1", location: str = "") -> None:
        self.hits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                outer.hits.append(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                body = f'{{"message": "{SECRET_BODY}", "msg": "{SECRET_BODY}"}}'.encode()
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def internal() -> Iterator[_Internal]:
    server = _Internal()
    yield server
    server.stop()


@pytest.fixture
def operator(client_for: Any) -> tuple[Any, Any]:
    team = TeamFactory()
    user = UserFactory()
    MembershipFactory(user=user, team=team, role=Role.OPERATOR)
    return team, client_for(user)


def _finding_urls(port: int) -> list[str]:
    """The destinations of the report, aimed at the internal server where they can be."""
    return [
        f"http://127.0.0.1:{port}/hook",
        "http://169.254.169.254/latest/meta-data/",
        f"http://[::1]:{port}/hook",
        f"http://localhost:{port}/hook",
        "http://localhost:5432/",
        f"http://0x7f000001:{port}/hook",
    ]


def test_channel_create__internal_destination__400_naming_webhook_url_nothing_stored(
    operator: tuple[Any, Any], internal: _Internal
) -> None:
    team, client = operator
    for url in _finding_urls(internal.port):
        response = client.post(
            CHANNELS,
            {
                "team": team.pk,
                "name": "wh",
                "kind": "webhook",
                "config": {"webhook_url": url, "secret": "s3cret"},
            },
            format="json",
        )
        assert response.status_code == 400, (url, response.content)
        message = str(response.json()["errors"]["config"])
        assert "webhook_url" in message, (url, message)
    assert not Channel.objects.exists()
    assert internal.hits == []


def test_channel_create__slack_with_other_host__400(operator: tuple[Any, Any]) -> None:
    team, client = operator
    response = client.post(
        CHANNELS,
        {
            "team": team.pk,
            "name": "slack",
            "kind": "slack",
            "config": {"webhook_url": "https://hooks.slack.com.evil.example/services/T/B/x"},
        },
        format="json",
    )
    assert response.status_code == 400
    assert "must point at hooks.slack.com" in str(response.json()["errors"]["config"])
    assert not Channel.objects.exists()


def test_channel_create__slack_extra_host_from_settings__accepted(
    operator: tuple[Any, Any], settings: Any
) -> None:
    settings.CHAT_SLACK_HOSTS = ["hooks.slack-gov.com"]
    team, client = operator
    response = client.post(
        CHANNELS,
        {
            "team": team.pk,
            "name": "slack",
            "kind": "slack",
            "config": {"webhook_url": "https://hooks.slack-gov.com/services/T/B/x"},
        },
        format="json",
    )
    assert response.status_code == 201, response.content


def test_channel_test_send__stored_internal_destination__failed_delivery_nothing_reached(
    operator: tuple[Any, Any], internal: _Internal
) -> None:
    """Channels saved before the rule (or whose DNS changed since) are checked again at
    send time: the delivery fails with the reason, the server answers 200, not 500."""
    team, client = operator
    for url in _finding_urls(internal.port):
        channel = Channel.objects.create(
            team=team, name=url[:60], kind="webhook", config={"webhook_url": url, "secret": "s"}
        )
        response = client.post(f"{CHANNELS}{channel.pk}/test/", {}, format="json")
        assert response.status_code == 200, (url, response.content)
        body = response.json()
        assert body["status"] == "failed", url
        assert "destination refused" in body["error"] or "non-standard form" in body["error"]
        assert body["status_code"] is None
    assert internal.hits == []


def test_deliver_pending__stored_slack_channel_at_internal_host__failed_and_disabled(
    internal: _Internal,
) -> None:
    team = TeamFactory()
    channel = Channel.objects.create(
        team=team,
        name="old-slack",
        kind="slack",
        config={"webhook_url": f"http://127.0.0.1:{internal.port}/services/x"},
    )
    delivery = Delivery.objects.create(
        channel=channel,
        idempotency_key="k1",
        notification=sample_notification().to_dict(),
        fingerprints=[],
        next_attempt_at=timezone.now(),
    )
    channel_deliver_pending(channel_id=channel.pk)
    delivery.refresh_from_db()
    channel.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert "must point at hooks.slack.com" in delivery.error
    assert not channel.enabled
    assert internal.hits == []


def test_deliver_pending__name_now_resolving_to_loopback__failed_not_sent(
    internal: _Internal,
) -> None:
    team = TeamFactory()
    channel = Channel.objects.create(
        team=team,
        name="rebound",
        kind="webhook",
        config={"webhook_url": f"http://localhost:{internal.port}/hook", "secret": "s"},
    )
    delivery = Delivery.objects.create(
        channel=channel,
        idempotency_key="k2",
        notification=sample_notification().to_dict(),
        fingerprints=[],
        next_attempt_at=timezone.now(),
    )
    channel_deliver_pending(channel_id=channel.pk)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert "localhost resolves to 127.0.0.1, a loopback address" in delivery.error
    assert internal.hits == []


@pytest.mark.parametrize("status", [200, 500, 400])
def test_channel_test_send__answer_with_a_body__stored_without_it(
    operator: tuple[Any, Any], allow_loopback_outbound: None, status: int
) -> None:
    server = _Internal(status)
    try:
        team, client = operator
        channel = Channel.objects.create(
            team=team,
            name="wh",
            kind="webhook",
            config={"webhook_url": f"http://127.0.0.1:{server.port}/hook", "secret": "s"},
        )
        response = client.post(f"{CHANNELS}{channel.pk}/test/", {}, format="json")
    finally:
        server.stop()
    assert response.status_code == 200
    assert server.hits == ["/hook"]
    assert SECRET_BODY not in response.content.decode()
    delivery = Delivery.objects.get(channel=channel)
    assert delivery.status_code == status
    assert delivery.response.startswith(f"HTTP {status} ")
    assert SECRET_BODY not in delivery.response
    assert SECRET_BODY not in delivery.error


def test_channel_test_send__allowed_receiver_redirects_to_other_loopback__not_followed(
    operator: tuple[Any, Any], allow_loopback_outbound: None
) -> None:
    """127.0.0.1 is allowed (the setting); its answer points at 127.0.0.2, which is not."""
    target = _Internal(host="127.0.0.2")
    entry = _Internal(307, location=f"http://127.0.0.2:{target.port}/admin")
    try:
        team, client = operator
        channel = Channel.objects.create(
            team=team,
            name="wh",
            kind="webhook",
            config={"webhook_url": f"http://127.0.0.1:{entry.port}/hook", "secret": "s"},
        )
        body = client.post(f"{CHANNELS}{channel.pk}/test/", {}, format="json").json()
    finally:
        entry.stop()
        target.stop()
    assert body["status"] == "failed"
    assert "redirects" in body["error"]
    assert entry.hits == ["/hook"]
    assert target.hits == []
