"""Channel destinations: internal addresses refused when a channel is saved and when it
sends, fixed-host kinds limited to their platform, and answers stored without their body."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from apps.alerts.delivery import channel_deliver_pending
from apps.alerts.models import Channel, Delivery, DeliveryStatus
from tests.factories.alerts import ChannelFactory, DeliveryFactory
from tests.servers import RecordingServer

pytestmark = pytest.mark.django_db

CHANNELS = "/api/v1/alerts/channels/"
SECRET_BODY = "db-password=hunter2 internal-only"


class _Internal(RecordingServer):
    """A server standing in for an internal service; records every request it gets and
    answers with a body that must never be shown back."""

    def __init__(self, status: int = 200, *, host: str = "127.0.0.1", location: str = "") -> None:
        headers = {"Content-Type": "application/json"}
        if location:
            headers["Location"] = location
        body = f'{{"message": "{SECRET_BODY}", "msg": "{SECRET_BODY}"}}'.encode()
        super().__init__(lambda request: (status, headers, body), host=host)


@pytest.fixture
def internal() -> Iterator[_Internal]:
    server = _Internal()
    yield server
    server.stop()


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


def _slack_create(operator: tuple[Any, Any], webhook_url: str) -> Any:
    team, client = operator
    config = {"webhook_url": webhook_url}
    body = {"team": team.pk, "name": "slack", "kind": "slack", "config": config}
    return client.post(CHANNELS, body, format="json")


def test_channel_create__slack_with_other_host__400(operator: tuple[Any, Any]) -> None:
    response = _slack_create(operator, "https://hooks.slack.com.evil.example/services/T/B/x")
    assert response.status_code == 400
    assert "must point at hooks.slack.com" in str(response.json()["errors"]["config"])
    assert not Channel.objects.exists()


def test_channel_create__slack_extra_host_from_settings__accepted(
    operator: tuple[Any, Any], settings: Any
) -> None:
    settings.CHAT_SLACK_HOSTS = ["hooks.slack-gov.com"]
    response = _slack_create(operator, "https://hooks.slack-gov.com/services/T/B/x")
    assert response.status_code == 201, response.content


def test_channel_test_send__stored_internal_destination__failed_delivery_nothing_reached(
    operator: tuple[Any, Any], internal: _Internal
) -> None:
    """Channels saved before the rule (or whose DNS changed since) are checked again at
    send time: the delivery fails with the reason, the server answers 200, not 500."""
    team, client = operator
    for url in _finding_urls(internal.port):
        channel = ChannelFactory(team=team, name=url[:60], webhook_url=url)
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
    channel = ChannelFactory(
        kind="slack", config={"webhook_url": f"http://127.0.0.1:{internal.port}/services/x"}
    )
    delivery = DeliveryFactory(channel=channel)
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
    channel = ChannelFactory(webhook_url=f"http://localhost:{internal.port}/hook")
    delivery = DeliveryFactory(channel=channel)
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
        channel = ChannelFactory(team=team, webhook_url=f"http://127.0.0.1:{server.port}/hook")
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
        channel = ChannelFactory(team=team, webhook_url=f"http://127.0.0.1:{entry.port}/hook")
        body = client.post(f"{CHANNELS}{channel.pk}/test/", {}, format="json").json()
    finally:
        entry.stop()
        target.stop()
    assert body["status"] == "failed"
    assert "redirects" in body["error"]
    assert entry.hits == ["/hook"]
    assert target.hits == []
