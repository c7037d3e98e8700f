"""Request and response shapes of the alerts API: alerts, silences, inhibit rules, channels,
routes, deliveries, receivers and alert rules, with field and matcher validation only."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.accounts.serializers import owning_team_field
from apps.api.serializers import ModelCleanMixin, NameFieldsMixin, TeamScopedRelatedField
from apps.core.fields import secret_problem, secret_stored
from apps.inventory.models import Deployment
from apps.logs.links import LogsLinkField

from .models import (
    Alert,
    AlertRule,
    Channel,
    Delivery,
    InhibitRule,
    Receiver,
    Route,
    Silence,
)


class AlertSerializer(serializers.ModelSerializer[Alert]):
    id = serializers.IntegerField(read_only=True, help_text="Alert id.")
    silenced_by = serializers.SerializerMethodField(help_text="Id of a silence muting it now.")
    logs = LogsLinkField(deployment="deployment", at="starts_at", until="ends_at")

    class Meta:
        model = Alert
        fields = [
            "id",
            "fingerprint",
            "team",
            "deployment",
            "source",
            "name",
            "severity",
            "labels",
            "annotations",
            "status",
            "starts_at",
            "ends_at",
            "generator_url",
            "received_at",
            "acknowledged_by",
            "acknowledged_at",
            "ack_comment",
            "silenced_by",
            "logs",
        ]
        read_only_fields = fields

    def get_silenced_by(self, obj: Alert) -> int | None:
        from .selectors import alert_silenced_by, silences_with_matchers

        silences = self.context.get("active_silences")
        if silences is None:
            return None
        # Matchers loaded once per serializer (one per page for a list), not per row.
        loaded = self.__dict__.get("_silence_matchers")
        if loaded is None or loaded[0] is not silences:
            loaded = self.__dict__["_silence_matchers"] = (
                silences,
                silences_with_matchers(silences),
            )
        hit = alert_silenced_by(obj, silences, loaded=loaded[1])
        return hit.pk if hit else None


class AcknowledgeSerializer(serializers.Serializer):
    comment = serializers.CharField(
        max_length=500, required=False, allow_blank=True, help_text="Optional note."
    )


class SilenceSerializer(ModelCleanMixin, serializers.ModelSerializer[Silence]):
    id = serializers.IntegerField(read_only=True, help_text="Silence id.")
    team = owning_team_field(required=False, allow_null=True)
    created_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, help_text="Author."
    )
    active = serializers.SerializerMethodField(help_text="In force now.")

    class Meta:
        model = Silence
        fields = [
            "id",
            "team",
            "matchers",
            "starts_at",
            "ends_at",
            "comment",
            "created_by",
            "created_at",
            "active",
        ]
        read_only_fields = ["created_at"]

    def get_active(self, obj: Silence) -> bool:
        from django.utils import timezone

        now = timezone.now()
        return obj.starts_at <= now < obj.ends_at


class InhibitRuleSerializer(
    NameFieldsMixin, ModelCleanMixin, serializers.ModelSerializer[InhibitRule]
):
    id = serializers.IntegerField(read_only=True, help_text="Rule id.")
    team = owning_team_field()

    class Meta:
        model = InhibitRule
        fields = ["id", "team", "name", "source_matchers", "target_matchers", "equal", "enabled"]


class ChannelSerializer(NameFieldsMixin, ModelCleanMixin, serializers.ModelSerializer[Channel]):
    id = serializers.IntegerField(read_only=True, help_text="Channel id.")
    team = owning_team_field()
    config = serializers.JSONField(
        write_only=True,
        required=False,
        help_text='Transport settings, write-only: {"url": "...", "secret": "..."} (see docs).',
    )
    configured = serializers.SerializerMethodField(help_text="Whether settings are stored.")
    config_problem = serializers.SerializerMethodField(
        help_text="Why the stored settings cannot be used; empty when they can (e.g. they "
        "cannot be decrypted any more and must be set again)."
    )

    class Meta:
        model = Channel
        fields = [
            "id",
            "team",
            "name",
            "kind",
            "language",
            "config",
            "configured",
            "config_problem",
            "title_template",
            "body_template",
            "enabled",
            "disabled_reason",
            "created_at",
        ]
        read_only_fields = ["created_at"]

    def get_configured(self, obj: Channel) -> bool:
        # From the stored value's presence: reading never needs to decrypt.
        return secret_stored(obj.config)

    def get_config_problem(self, obj: Channel) -> str:
        problem = secret_problem(obj.config)
        return f"{problem}: send config again" if problem else ""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        from .delivery import channel_config_validate, template_validate

        kind = attrs.get("kind") or (self.instance.kind if self.instance else None)
        if "config" in attrs or self.instance is None:
            try:
                attrs["config"] = channel_config_validate(kind=kind, config=attrs.get("config"))
            except ValueError as exc:
                raise serializers.ValidationError({"config": [str(exc)]}) from exc
        elif self.instance is not None and "kind" in attrs and attrs["kind"] != self.instance.kind:
            raise serializers.ValidationError(
                {"config": ["Changing the kind needs the new kind's config too."]}
            )
        for field in ("title_template", "body_template"):
            if attrs.get(field):
                try:
                    template_validate(attrs[field])
                except ValueError as exc:
                    raise serializers.ValidationError({field: [str(exc)]}) from exc
        if attrs.get("enabled") and self.instance is not None and not self.instance.enabled:
            attrs["disabled_reason"] = ""  # turned back on by hand
        return super().validate(attrs)


class ChannelTestSerializer(serializers.Serializer):
    language = serializers.ChoiceField(
        choices=["en", "zh"], required=False, help_text="Default: the channel's."
    )


class RouteSerializer(NameFieldsMixin, ModelCleanMixin, serializers.ModelSerializer[Route]):
    id = serializers.IntegerField(read_only=True, help_text="Route id.")
    team = owning_team_field()
    channels = TeamScopedRelatedField(
        queryset=Channel.objects.all(), many=True, team_field="team", help_text="Channel ids."
    )

    class Meta:
        model = Route
        fields = [
            "id",
            "team",
            "name",
            "position",
            "matchers",
            "channels",
            "group_by",
            "group_wait_s",
            "group_interval_s",
            "repeat_interval_s",
            "send_resolved",
            "continue_matching",
            "enabled",
        ]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        team = attrs.get("team") or (self.instance.team if self.instance else None)
        for channel in attrs.get("channels", []):
            if team is not None and channel.team_id != team.pk:
                raise serializers.ValidationError(
                    {"channels": [f"Channel {channel.pk} belongs to another team."]}
                )
        return super().validate(attrs)


class DeliverySerializer(serializers.ModelSerializer[Delivery]):
    id = serializers.IntegerField(read_only=True, help_text="Delivery id.")

    class Meta:
        model = Delivery
        fields = [
            "id",
            "channel",
            "group",
            "idempotency_key",
            "status",
            "fingerprints",
            "merged_into",
            "attempts",
            "status_code",
            "latency_ms",
            "error",
            "response",
            "created_at",
            "next_attempt_at",
            "sent_at",
            "notification",
        ]
        read_only_fields = fields


class ReceiverSerializer(serializers.ModelSerializer[Receiver]):
    id = serializers.IntegerField(read_only=True, help_text="Receiver id.")
    team = owning_team_field()

    class Meta:
        model = Receiver
        fields = ["id", "team", "name", "token_prefix", "created_at", "last_used_at", "revoked_at"]
        read_only_fields = ["token_prefix", "created_at", "last_used_at", "revoked_at"]


class IssuedReceiverSerializer(ReceiverSerializer):
    token = serializers.CharField(read_only=True, help_text="Shown once: store it now.")

    class Meta(ReceiverSerializer.Meta):
        fields = [*ReceiverSerializer.Meta.fields, "token"]


class AlertRuleSerializer(NameFieldsMixin, ModelCleanMixin, serializers.ModelSerializer[AlertRule]):
    id = serializers.IntegerField(read_only=True, help_text="Rule id.")
    team = owning_team_field()
    deployment = TeamScopedRelatedField(
        queryset=Deployment.objects.all(),
        team_field="team",
        required=False,
        allow_null=True,
        help_text="One deployment (empty: every deployment of the team).",
    )

    class Meta:
        model = AlertRule
        fields = [
            "id",
            "team",
            "name",
            "deployment",
            "signal",
            "promql",
            "logql",
            "comparison",
            "threshold",
            "for_s",
            "severity",
            "labels",
            "summary",
            "enabled",
        ]
