from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.core.api.serializers import ModelCleanMixin, TeamScopedRelatedField
from apps.inventory.models import Deployment

from .models import AutoscalingPolicy, DecisionRecord, DeploymentControl, ScaleAction


class AutoscalingPolicySerializer(ModelCleanMixin, serializers.ModelSerializer[AutoscalingPolicy]):
    deployment = TeamScopedRelatedField(
        queryset=Deployment.objects.all(), team_field="team", help_text="Deployment (id)."
    )

    class Meta:
        model = AutoscalingPolicy
        fields = [
            "deployment",
            "mode",
            "targets",
            "tolerance",
            "tolerance_abs_replicas",
            "scale_up_stabilization_s",
            "scale_down_stabilization_s",
            "scale_up_policies",
            "scale_down_policies",
            "scale_up_select",
            "scale_down_select",
            "panic_enabled",
            "stable_window_s",
            "panic_window_s",
            "panic_threshold",
            "scale_to_zero_enabled",
            "idle_period_s",
            "activation_threshold",
            "cron_minimums",
            "cold_start_s",
            "slo_boost_enabled",
            "slo_boost_burn_rate",
            "slo_boost_step_percent",
            "updated_at",
        ]
        read_only_fields = ["updated_at"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.instance is not None and "deployment" in attrs:
            if attrs["deployment"].pk != self.instance.deployment_id:
                raise serializers.ValidationError(
                    {"deployment": ["A policy cannot move to another deployment."]}
                )
        return super().validate(attrs)


class DecisionRecordSerializer(serializers.ModelSerializer[DecisionRecord]):
    id = serializers.IntegerField(read_only=True, help_text="Decision id.")

    class Meta:
        model = DecisionRecord
        fields = [
            "id",
            "deployment",
            "at",
            "current_replicas",
            "desired_replicas",
            "rule",
            "reason",
            "proposals",
            "events",
            "inputs",
            "dry_run",
        ]
        read_only_fields = fields


class ScaleActionSerializer(serializers.ModelSerializer[ScaleAction]):
    id = serializers.IntegerField(read_only=True, help_text="Action id.")

    class Meta:
        model = ScaleAction
        fields = [
            "id",
            "deployment",
            "decision",
            "from_replicas",
            "to_replicas",
            "idempotency_key",
            "status",
            "attempts",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class ControlSerializer(serializers.ModelSerializer[DeploymentControl]):
    pinned_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, help_text="Who pinned it."
    )

    class Meta:
        model = DeploymentControl
        fields = [
            "deployment",
            "paused",
            "pinned_replicas",
            "pinned_until",
            "pinned_by",
            "last_applied",
        ]
        read_only_fields = fields


class PinSerializer(serializers.Serializer):
    replicas = serializers.IntegerField(min_value=0, help_text="Hold at this many replicas.")
    minutes = serializers.IntegerField(
        min_value=1, max_value=7 * 24 * 60, default=30, help_text="For this long (default 30)."
    )


class PauseSerializer(serializers.Serializer):
    paused = serializers.BooleanField(help_text="True stops all scale actions; False resumes.")
