"""One sender per delivery, decided by the database: the channel's lock lives in the cache
and goes with it (a Redis restart mid-send; the end-to-end case is
tests/integration/test_fault_redis_restart.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from apps.alerts.delivery import (
    channel_deliver,
    channel_deliver_pending,
    channel_transport,
    deliveries_due_dispatch,
    deliveries_sending_recover,
)
from apps.alerts.labels import fingerprint
from apps.alerts.models import Channel, Delivery, DeliveryStatus
from apps.alerts.payloads import IncomingAlert
from apps.alerts.services import alert_groups_flush, alerts_ingest
from apps.integrations.chat import TransportError
from apps.integrations.chat.base import DeliveryResult
from tests.factories.accounts import TeamFactory
from tests.factories.alerts import ChannelFactory, RouteFactory

pytestmark = pytest.mark.django_db


class RecordingTransport:
    """The channel's real transport, rendering every notification; only the HTTP post is
    replaced by a record (or a failure)."""

    def __init__(self, channel: Channel, fail: TransportError | None = None) -> None:
        self.inner = channel_transport(channel)
        self.fail = fail
        self.sent: list[list[str]] = []

    def rate_limits(self):
        return self.inner.rate_limits()

    def notify(self, notification):
        self.inner.render(notification)
        self.sent.append([a.fingerprint for a in notification.alerts])
        if self.fail is not None:
            raise self.fail
        return DeliveryResult("webhook", 200, 0.01, "")


@pytest.fixture
def delivery(settings) -> Delivery:
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    # Opt in to a loopback destination (never contacted: the transport does not post).
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    team = TeamFactory()
    channel = ChannelFactory(team=team)
    RouteFactory(team=team, channels=[channel])
    labels = {"alertname": "GpuHot", "severity": "critical"}
    alerts_ingest(
        alerts=[
            IncomingAlert(
                labels,
                {"summary": "hot"},
                "firing",
                timezone.now() - timedelta(seconds=5),
                None,
                "",
                fingerprint(labels),
            )
        ],
        source="api",
        team=team,
    )
    alert_groups_flush()
    return Delivery.objects.get()


def _deliver(delivery: Delivery, transport: RecordingTransport) -> None:
    """One run of the delivery's channel sender, sending through ``transport``."""
    channel_deliver_pending(channel_id=delivery.channel_id, transport_factory=lambda c: transport)


def _assert_sent_once_and_succeeded(delivery: Delivery, transport: RecordingTransport) -> None:
    delivery.refresh_from_db()
    assert transport.sent == [delivery.fingerprints]
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert delivery.attempts == 1


def test_deliver__cache_lost_mid_send__second_sender_does_not_send_it_again(delivery):
    class RestartMidSend(RecordingTransport):
        """While the first send is in flight the cache is emptied (Redis restarted) and
        another worker runs the channel's sender."""

        def notify(self, notification):
            if not self.sent:
                cache.clear()
                channel_deliver_pending(
                    channel_id=delivery.channel_id, transport_factory=lambda c: self
                )
            return super().notify(notification)

    transport = RestartMidSend(delivery.channel)
    _deliver(delivery, transport)
    _assert_sent_once_and_succeeded(delivery, transport)


def test_deliver__pending_delivery__claimed_sent_once_succeeded(delivery):
    transport = RecordingTransport(delivery.channel)
    _deliver(delivery, transport)
    _deliver(delivery, transport)
    _assert_sent_once_and_succeeded(delivery, transport)


def test_deliver__retryable_failure__pending_again_for_a_later_attempt(delivery):
    transport = RecordingTransport(
        delivery.channel, fail=TransportError("answered 503", permanent=False, status_code=503)
    )
    channel_deliver_pending(
        channel_id=delivery.channel_id, transport_factory=lambda c: transport, max_sends=1
    )
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.attempts == 1
    assert delivery.next_attempt_at > timezone.now()


def test_recover__sending_longer_than_the_lease__pending_again(delivery):
    long_ago = timezone.now() - timedelta(minutes=10)
    Delivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.SENDING, next_attempt_at=long_ago
    )
    fresh = Delivery.objects.create(
        channel=delivery.channel,
        idempotency_key="fresh",
        notification=delivery.notification,
        next_attempt_at=timezone.now(),
        status=DeliveryStatus.SENDING,
    )
    test_message = Delivery.objects.create(
        channel=delivery.channel,
        idempotency_key=f"test-c{delivery.channel_id}-abc",
        notification=delivery.notification,
        next_attempt_at=long_ago,
        status=DeliveryStatus.SENDING,
    )
    assert deliveries_sending_recover(lease_s=300) == 1
    statuses = dict(
        Delivery.objects.filter(pk__in=[delivery.pk, fresh.pk, test_message.pk]).values_list(
            "pk", "status"
        )
    )
    assert statuses == {
        delivery.pk: DeliveryStatus.PENDING,
        fresh.pk: DeliveryStatus.SENDING,
        test_message.pk: DeliveryStatus.SENDING,
    }


def test_channel_deliver__send_failed_retry_later__one_follow_up_until_it_runs(delivery):
    """The webhook endpoint refuses the connection (nothing listens on port 9): the delivery
    waits for a retry, and however many senders run meanwhile, one follow-up is scheduled;
    the follow-up itself may schedule the next one."""
    follow_ups: list[tuple[int, float]] = []

    def follow_up(channel_id: int, countdown_s: float) -> None:
        follow_ups.append((channel_id, countdown_s))

    channel_deliver(channel_id=delivery.channel_id, scheduled=False, follow_up=follow_up)
    channel_deliver(channel_id=delivery.channel_id, scheduled=False, follow_up=follow_up)
    assert [channel_id for channel_id, _ in follow_ups] == [delivery.channel_id]
    assert follow_ups[0][1] > 0
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 1)

    channel_deliver(channel_id=delivery.channel_id, scheduled=True, follow_up=follow_up)
    assert len(follow_ups) == 2


def test_due_dispatch__due_and_later_deliveries__only_due_channels_enqueued_once(delivery):
    later = Channel.objects.create(
        team=delivery.channel.team,
        name="later",
        kind="webhook",
        config={"webhook_url": "http://127.0.0.1:9/later"},
    )
    for key, channel, at in [
        ("second-due", delivery.channel, timezone.now()),
        ("not-yet", later, timezone.now() + timedelta(hours=1)),
    ]:
        Delivery.objects.create(
            channel=channel,
            idempotency_key=key,
            notification=delivery.notification,
            next_attempt_at=at,
        )
    queued: list[int] = []
    assert deliveries_due_dispatch(enqueue=queued.append) == 1
    assert queued == [delivery.channel_id]
