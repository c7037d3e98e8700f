"""A channel whose stored settings no longer decrypt (FIELD_ENCRYPTION_KEY changed): reads
answer 200 and say so, other edits keep the stored text as it is, new settings replace it,
and sending fails with the reason instead of a 500 (nothing is sent)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

from apps.alerts.delivery import channel_deliver_pending
from apps.alerts.models import Channel, DeliveryStatus
from tests.assertions import stored_text
from tests.factories.alerts import ChannelFactory, DeliveryFactory
from tests.servers import RecordingServer

pytestmark = pytest.mark.django_db

CHANNELS = "/api/v1/alerts/channels/"
ROTATED = override_settings(FIELD_ENCRYPTION_KEY="a-key-the-settings-were-not-stored-with")


@pytest.fixture
def receiver(allow_loopback_outbound: None) -> Iterator[RecordingServer]:
    """A webhook receiver on 127.0.0.1 that records every request."""
    server = RecordingServer()
    yield server
    server.stop()


@pytest.fixture
def channel(operator: tuple[Any, Any], receiver: RecordingServer) -> Channel:
    return ChannelFactory(team=operator[0], webhook_url=receiver.url)


def test_channel_list__config_undecryptable__200_with_the_problem(
    operator: tuple[Any, Any], channel: Channel
) -> None:
    with ROTATED:
        response = operator[1].get(CHANNELS)

    assert response.status_code == 200, response.content
    (row,) = response.json()["results"]
    assert row["configured"] is True
    assert "cannot be decrypted" in row["config_problem"]
    assert "send config again" in row["config_problem"]


def test_channel_detail__config_undecryptable__200_with_the_problem(
    operator: tuple[Any, Any], channel: Channel
) -> None:
    with ROTATED:
        response = operator[1].get(f"{CHANNELS}{channel.pk}/")

    assert response.status_code == 200, response.content
    assert "cannot be decrypted" in response.json()["config_problem"]


def test_channel_detail__config_readable__no_problem(
    operator: tuple[Any, Any], channel: Channel
) -> None:
    response = operator[1].get(f"{CHANNELS}{channel.pk}/")

    assert response.json()["configured"] is True
    assert response.json()["config_problem"] == ""


def test_channel_patch__other_field__200_and_stored_settings_unchanged(
    operator: tuple[Any, Any], channel: Channel, receiver: RecordingServer
) -> None:
    before = stored_text(channel, "config")

    with ROTATED:
        response = operator[1].patch(f"{CHANNELS}{channel.pk}/", {"name": "pager"}, format="json")

    assert response.status_code == 200, response.content
    assert stored_text(channel, "config") == before
    channel.refresh_from_db()  # with the original key: still readable
    assert channel.name == "pager"
    assert channel.config["webhook_url"] == receiver.url


def test_channel_patch__kind_without_config__400_asking_for_config(
    operator: tuple[Any, Any], channel: Channel
) -> None:
    with ROTATED:
        response = operator[1].patch(f"{CHANNELS}{channel.pk}/", {"kind": "teams"}, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["errors"]["config"]


def test_channel_patch__config_sent_again__200_and_readable(
    operator: tuple[Any, Any], channel: Channel, receiver: RecordingServer
) -> None:
    with ROTATED:
        response = operator[1].patch(
            f"{CHANNELS}{channel.pk}/",
            {"config": {"webhook_url": receiver.url, "secret": "new"}},
            format="json",
        )
        again = operator[1].get(f"{CHANNELS}{channel.pk}/")

    assert response.status_code == 200, response.content
    assert again.json()["config_problem"] == ""


def test_channel_test_send__config_undecryptable__failed_delivery_with_reason_nothing_sent(
    operator: tuple[Any, Any], channel: Channel, receiver: RecordingServer
) -> None:
    with ROTATED:
        response = operator[1].post(f"{CHANNELS}{channel.pk}/test/", {}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "failed"
    assert "cannot be decrypted" in response.json()["error"]
    assert receiver.hits == []


def test_deliver_pending__config_undecryptable__failed_channel_disabled_nothing_sent(
    channel: Channel, receiver: RecordingServer
) -> None:
    delivery = DeliveryFactory(channel=channel)

    with ROTATED:
        channel_deliver_pending(channel_id=channel.pk)

    delivery.refresh_from_db()
    channel.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert "cannot be decrypted" in delivery.error
    assert not channel.enabled
    assert "cannot be decrypted" in channel.disabled_reason
    assert receiver.hits == []


def test_route_list__channel_config_undecryptable__200(
    operator: tuple[Any, Any], channel: Channel
) -> None:
    from apps.alerts.models import Route

    route = Route.objects.create(team=operator[0], name="all")
    route.channels.add(channel)  # listed with its channels loaded

    with ROTATED:
        response = operator[1].get("/api/v1/alerts/routes/")

    assert response.status_code == 200, response.content
    assert response.json()["results"][0]["channels"] == [channel.pk]
