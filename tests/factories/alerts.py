from __future__ import annotations

import factory
from django.utils import timezone

from apps.alerts.labels import fingerprint
from apps.alerts.models import (
    Alert,
    AlertSource,
    AlertStatus,
    Channel,
    ChannelKind,
    Delivery,
    Route,
)
from apps.integrations.chat.messages import sample_notification

from .accounts import TeamFactory


class ChannelFactory(factory.django.DjangoModelFactory):
    """A generic webhook channel; ``webhook_url``, ``secret`` and ``max_per_minute`` (the
    transport's default when None) make its config."""

    class Meta:
        model = Channel

    class Params:
        webhook_url = "http://127.0.0.1:9/hook"
        secret = "s3cret"
        max_per_minute = None

    team = factory.SubFactory(TeamFactory)
    name = factory.Sequence(lambda n: f"channel-{n}")
    kind = ChannelKind.WEBHOOK
    config = factory.LazyAttribute(
        lambda o: (
            {"webhook_url": o.webhook_url, "secret": o.secret}
            | ({} if o.max_per_minute is None else {"max_per_minute": o.max_per_minute})
        )
    )


class RouteFactory(factory.django.DjangoModelFactory):
    """A route that sends every alert of its team at once, grouped by alert name, to the
    ``channels`` given."""

    class Meta:
        model = Route
        skip_postgeneration_save = True

    team = factory.SubFactory(TeamFactory)
    name = factory.Sequence(lambda n: f"route-{n}")
    group_by = factory.LazyFunction(lambda: ["alertname"])
    group_wait_s = 0

    @factory.post_generation
    def channels(self, create: bool, extracted: list[Channel] | None, **kwargs: object) -> None:
        if create and extracted:
            self.channels.add(*extracted)


class AlertFactory(factory.django.DjangoModelFactory):
    """A firing alert received now; its name and fingerprint follow from its labels."""

    class Meta:
        model = Alert

    team = factory.SubFactory(TeamFactory)
    labels = factory.Sequence(lambda n: {"alertname": "HighQueueDepth", "n": str(n)})
    fingerprint = factory.LazyAttribute(lambda o: fingerprint(o.labels))
    name = factory.LazyAttribute(lambda o: o.labels.get("alertname", ""))
    source = AlertSource.API
    status = AlertStatus.FIRING
    starts_at = factory.LazyFunction(timezone.now)
    received_at = factory.LazyAttribute(lambda o: o.starts_at)


class DeliveryFactory(factory.django.DjangoModelFactory):
    """A pending delivery of the sample notification, due now."""

    class Meta:
        model = Delivery

    channel = factory.SubFactory(ChannelFactory)
    idempotency_key = factory.Sequence(lambda n: f"delivery-{n}")
    notification = factory.LazyFunction(lambda: sample_notification().to_dict())
    fingerprints = factory.LazyFunction(list)
    next_attempt_at = factory.LazyFunction(timezone.now)
