"""Request and response shapes of the autoscaling API: policies (checked by the model's
``clean()``), decisions, actions, controls, pins and backtests."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils import timezone
from rest_framework import serializers

from apps.api.serializers import ModelCleanMixin, TeamScopedRelatedField
from apps.inventory.models import Deployment
from apps.logs.links import LogsLinkField

from .models import AutoscalingPolicy, DecisionRecord, DeploymentControl, Mode, ScaleAction
from .services import policy_enforce_refusal


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
            "capacity_initial_per_replica",
            "capacity_backlog_signal",
            "capacity_backlog_drain_s",
            "capacity_latency_signal",
            "capacity_latency_slo_s",
            "capacity_learn_rate",
            "capacity_learn_min_utilization",
            "capacity_learn_range",
            "capacity_peak_window_s",
            "capacity_pool_size",
            "capacity_pooling",
            "capacity_forecast_periods_s",
            "updated_at",
        ]
        read_only_fields = ["updated_at"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.instance is not None and "deployment" in attrs:
            if attrs["deployment"].pk != self.instance.deployment_id:
                raise serializers.ValidationError(
                    {"deployment": ["A policy cannot move to another deployment."]}
                )
        attrs = super().validate(attrs)
        before = self.instance.mode if self.instance is not None else None
        if attrs.get("mode") == Mode.ENFORCE and before != Mode.ENFORCE:
            deployment = attrs.get("deployment") or self.instance.deployment  # type: ignore[union-attr]
            refusal = policy_enforce_refusal(deployment=deployment)
            if refusal:
                raise serializers.ValidationError({"mode": [refusal]})
        return attrs


class DecisionRecordSerializer(serializers.ModelSerializer[DecisionRecord]):
    id = serializers.IntegerField(read_only=True, help_text="Decision id.")
    logs = LogsLinkField(deployment="deployment", at="at")

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
            "logs",
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
            "drain",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class ControlSerializer(serializers.ModelSerializer[DeploymentControl]):
    pinned_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username",
        read_only=True,
        allow_null=True,
        help_text="Who pinned it; null when not pinned (or pinned by a removed user).",
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


POLICY_FIELDS = [
    f for f in AutoscalingPolicySerializer.Meta.fields if f not in ("deployment", "updated_at")
]


class PolicyDraftSerializer(serializers.ModelSerializer[AutoscalingPolicy]):
    """A policy to try: any field left out is taken from the deployment's saved policy (or
    the defaults). Validated exactly as a saved policy would be."""

    class Meta:
        model = AutoscalingPolicy
        fields = POLICY_FIELDS
        extra_kwargs = {f: {"required": False} for f in POLICY_FIELDS}


class BacktestRequestSerializer(serializers.Serializer):
    deployment = TeamScopedRelatedField(
        queryset=Deployment.objects.all(), team_field="team", help_text="Deployment (id)."
    )
    start = serializers.DateTimeField(help_text="Start of the range (ISO 8601).")
    end = serializers.DateTimeField(
        required=False, help_text="End of the range (ISO 8601); default now."
    )
    step_s = serializers.FloatField(
        required=False,
        min_value=1.0,
        help_text="Evaluation step in seconds; default the control loop's interval.",
    )
    policy = PolicyDraftSerializer(
        required=False,
        help_text="Policy to replay; fields left out come from the saved policy. "
        "Default: the saved policy as it is.",
    )
    timeline = serializers.ChoiceField(
        choices=["full", "changes", "none"],
        default="changes",
        help_text="Steps to return: every step, only those where the replica count or the "
        "rule changes, or none.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Fill the defaults (end: now; step: the control loop's interval) and check the
        range; how many steps Prometheus answers is checked by the backtest itself."""
        attrs["end"] = attrs.get("end") or timezone.now()
        attrs["step_s"] = attrs.get("step_s") or settings.AUTOSCALING_INTERVAL_S
        if attrs["start"] >= attrs["end"]:
            raise serializers.ValidationError({"start": ["The range must start before it ends."]})
        return attrs


class BacktestStepSerializer(serializers.Serializer):
    t = serializers.DateTimeField(help_text="Time of the evaluation step.")
    replicas = serializers.IntegerField(help_text="Replicas the policy would have set.")
    ready = serializers.IntegerField(help_text="Of those, ready (the rest starting).")
    actual = serializers.IntegerField(
        allow_null=True, help_text="Replicas that actually served (null: unknown)."
    )
    rule = serializers.CharField(help_text="The rule that decided this step.")
    reason = serializers.CharField(help_text="Why, in one sentence with the figures.")


class BacktestResultSerializer(serializers.Serializer):
    deployment = serializers.IntegerField(help_text="Deployment (id).")
    start = serializers.DateTimeField(help_text="Start of the range.")
    end = serializers.DateTimeField(help_text="End of the range.")
    step_s = serializers.FloatField(help_text="Evaluation step in seconds.")
    summary = serializers.DictField(
        help_text="actions, actual_actions, replica_hours, actual_replica_hours, gpu_hours, "
        "actual_gpu_hours, gpu_hours_known (the policy's over the steps where the actual "
        "count is known), replica_hours_ratio, actual_coverage, rules, notes, ..."
    )
    steps = BacktestStepSerializer(many=True, help_text="The timeline, as asked.")
