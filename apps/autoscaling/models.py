"""Scaling policies, the decisions taken under them, and the actions that apply them.

The policy is stored as plain columns and JSON and turned into the pure engine's
:class:`apps.autoscaling.engine.Policy` by :meth:`AutoscalingPolicy.to_engine`, which is also
the validation: whatever the engine refuses is refused on save with its message.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from apps.inventory.models import Deployment

from . import engine


def default_targets() -> list[dict[str, Any]]:
    """A new policy sizes from demand and learned capacity (engine.demand_target)."""
    t = engine.demand_target()
    return [{"signal": t.signal, "value": t.value, "kind": t.kind}]


class Mode(models.TextChoices):
    OFF = "off", "Off"
    DRY_RUN = "dry-run", "Dry run (decide and record, never act)"
    ENFORCE = "enforce", "Enforce"


class AutoscalingPolicy(models.Model):
    deployment = models.OneToOneField(
        Deployment,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="autoscaling_policy",
        help_text="The deployment; its min/max replicas bound every decision.",
    )
    mode = models.CharField(
        max_length=8,
        choices=Mode.choices,
        default=Mode.DRY_RUN,
        help_text="off, dry-run (decide and record only) or enforce.",
    )
    targets = models.JSONField(
        default=default_targets,
        help_text='Targets, highest recommendation wins: [{"signal": "queue_length", "value": 5, '
        '"kind": "per_replica_average"}]; kinds per_replica_average, utilization (0-1), '
        "latency_slo (seconds), demand_capacity (the signal is the demand, e.g. request_rate; "
        "the value the utilisation target 0-1, see capacity_*); signals from the metric "
        "catalogue or custom:<name>. Default: sizing from demand and capacity "
        '([{"signal": "request_rate", "value": 0.8, "kind": "demand_capacity"}]).',
    )
    tolerance = models.FloatField(default=0.1, help_text="Relative dead band, as HPA (0.1).")
    tolerance_abs_replicas = models.PositiveIntegerField(
        null=True, blank=True, help_text="Optional dead band in replicas for large deployments."
    )
    scale_up_stabilization_s = models.FloatField(
        default=0.0, help_text="HPA scale-up window (0 s)."
    )
    scale_down_stabilization_s = models.FloatField(
        default=300.0, help_text="HPA scale-down window (300 s)."
    )
    scale_up_policies = models.JSONField(
        default=list,
        blank=True,
        help_text='Rate limits up: [{"type": "pods"|"percent", "value": 4, "period_s": 15}]; '
        "empty = HPA defaults (100 % or 4 pods per 15 s, the larger), or with a "
        "demand_capacity target straight to the need (1000 % or 1000 pods per 15 s).",
    )
    scale_down_policies = models.JSONField(
        default=list,
        blank=True,
        help_text="Rate limits down, same shape; empty = HPA default (100 % per 15 s), or with a "
        "demand_capacity target 10 % per 60 s.",
    )
    scale_up_select = models.CharField(
        max_length=8, default="max", help_text="max, min or disabled, as HPA selectPolicy."
    )
    scale_down_select = models.CharField(
        max_length=8, default="max", help_text="max, min or disabled."
    )
    panic_enabled = models.BooleanField(
        default=False, help_text="Knative-style panic mode on bursts."
    )
    stable_window_s = models.FloatField(default=60.0, help_text="Panic: stable window (60 s).")
    panic_window_s = models.FloatField(default=6.0, help_text="Panic: panic window (6 s).")
    panic_threshold = models.FloatField(
        default=2.0, help_text="Panic when short-window demand is at least this times ready."
    )
    scale_to_zero_enabled = models.BooleanField(
        default=False, help_text="Allow 0 replicas after idling."
    )
    idle_period_s = models.FloatField(
        default=600.0, help_text="Observed zero load needed before going to 0."
    )
    activation_threshold = models.FloatField(
        default=1.0, help_text="Load that brings a deployment back from 0."
    )
    cron_minimums = models.JSONField(
        default=list,
        blank=True,
        help_text='Known peaks: [{"start": "08:00", "end": "18:00", "min_replicas": 4}] (UTC).',
    )
    cold_start_s = models.FloatField(
        default=0.0, help_text="Seconds a new replica needs before it serves."
    )
    slo_boost_enabled = models.BooleanField(
        default=False, help_text="Scale up while the SLO burns fast."
    )
    slo_boost_burn_rate = models.FloatField(
        default=14.4, help_text="Burn rate that triggers the boost."
    )
    slo_boost_step_percent = models.FloatField(
        default=25.0, help_text="Boost step in percent (≥ 1 replica)."
    )
    capacity_initial_per_replica = models.FloatField(
        default=1.0,
        help_text="Demand sizing: what one replica sustains at the SLO, in the demand signal's "
        "unit (req/s for request_rate), from the GPU/model profile; used until learned.",
    )
    capacity_backlog_signal = models.CharField(
        max_length=64,
        blank=True,
        default="queue_length",
        help_text="Demand sizing: the backlog signal (waiting requests), drained over "
        "capacity_backlog_drain_s; empty for none.",
    )
    capacity_backlog_drain_s = models.FloatField(
        null=True,
        blank=True,
        help_text="Demand sizing: seconds to drain the backlog in; empty = cold_start_s "
        "(at least 30 s).",
    )
    capacity_latency_signal = models.CharField(
        max_length=64,
        default="ttft_p95",
        help_text="Demand sizing: the latency that tells whether an interval met the SLO.",
    )
    capacity_latency_slo_s = models.FloatField(
        null=True,
        blank=True,
        help_text="Demand sizing: the latency SLO in seconds; capacity is learned at it. "
        "Empty: learned from busy intervals with a backlog only.",
    )
    capacity_learn_rate = models.FloatField(
        default=0.2, help_text="Demand sizing: EWMA weight of one interval's evidence (0-1]."
    )
    capacity_learn_min_utilization = models.FloatField(
        default=0.5,
        help_text="Demand sizing: intervals below this share of the estimated capacity (and "
        "without a backlog) are idle and teach nothing.",
    )
    capacity_learn_range = models.FloatField(
        default=2.0,
        help_text="Demand sizing: the learned capacity stays within the initial one divided "
        "and multiplied by this.",
    )
    capacity_peak_window_s = models.FloatField(
        default=600.0,
        help_text="Demand sizing: never scale below what the peak demand of this window needs.",
    )
    capacity_pool_size = models.PositiveIntegerField(
        default=1,
        validators=[MinValueValidator(1)],
        help_text="Demand sizing: the replicas the initial capacity per replica was measured "
        "with (the load test's).",
    )
    capacity_pooling = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(engine.MAX_POOLING)],
        help_text="Demand sizing: how much more a replica of a larger pool sustains behind the "
        "gateway queue; capacity per replica scales as 1 - pooling / sqrt(replicas). 0 = none; "
        "fitted from stress tests at two replica counts.",
    )
    capacity_forecast_periods_s = models.JSONField(
        default=list,
        blank=True,
        help_text="Demand sizing: seasonal periods in seconds for the forecast floor, e.g. "
        "[86400] (daily) or [86400, 604800]; empty (default) = no forecast.",
    )
    updated_at = models.DateTimeField(auto_now=True, help_text="Last change.")

    class Meta:
        verbose_name_plural = "autoscaling policies"

    def __str__(self) -> str:
        return f"policy of {self.deployment_id} ({self.mode})"

    @property
    def audit_team_id(self) -> int:
        return self.deployment.team_id

    def to_engine(self) -> engine.Policy:
        dep = self.deployment

        def rates(
            rows: list[dict[str, Any]], default: tuple[engine.ScalingPolicy, ...]
        ) -> tuple[engine.ScalingPolicy, ...]:
            if not rows:
                return default
            return tuple(
                engine.ScalingPolicy(
                    r["type"],  # the engine validates the type and names it if wrong
                    int(r["value"]),
                    int(r["period_s"]),
                )
                for r in rows
            )

        def seconds_of_day(text: str) -> int:
            hours, minutes = str(text).split(":")
            value = int(hours) * 3600 + int(minutes) * 60
            if not 0 <= value <= 86400:
                raise ValueError(f"{text!r} is not a time of day (HH:MM)")
            return value

        by_demand = any(
            isinstance(t, dict) and t.get("kind") == "demand_capacity" for t in self.targets
        )
        up_default = (
            engine.DEMAND_SCALE_UP_POLICIES if by_demand else engine.DEFAULT_SCALE_UP_POLICIES
        )
        down_default = (
            engine.DEMAND_SCALE_DOWN_POLICIES if by_demand else engine.DEFAULT_SCALE_DOWN_POLICIES
        )

        try:
            return engine.Policy(
                min_replicas=dep.min_replicas,
                max_replicas=dep.max_replicas,
                targets=tuple(
                    engine.Target(
                        str(t["signal"]), float(t["value"]), t.get("kind", "per_replica_average")
                    )
                    for t in self.targets
                ),
                mode=self.mode,  # type: ignore[arg-type]
                tolerance=self.tolerance,
                tolerance_abs_replicas=self.tolerance_abs_replicas,
                scale_up_stabilization_s=self.scale_up_stabilization_s,
                scale_down_stabilization_s=self.scale_down_stabilization_s,
                scale_up_policies=rates(self.scale_up_policies, up_default),
                scale_up_select=self.scale_up_select,  # type: ignore[arg-type]
                scale_down_policies=rates(self.scale_down_policies, down_default),
                scale_down_select=self.scale_down_select,  # type: ignore[arg-type]
                panic_enabled=self.panic_enabled,
                stable_window_s=self.stable_window_s,
                panic_window_s=self.panic_window_s,
                panic_threshold=self.panic_threshold,
                scale_to_zero_enabled=self.scale_to_zero_enabled,
                idle_period_s=self.idle_period_s,
                activation_threshold=self.activation_threshold,
                cron_minimums=tuple(
                    engine.CronMinimum(
                        seconds_of_day(c["start"]), seconds_of_day(c["end"]), int(c["min_replicas"])
                    )
                    for c in self.cron_minimums
                ),
                cold_start_s=self.cold_start_s,
                slo_boost=engine.SloBoost(
                    self.slo_boost_enabled, self.slo_boost_burn_rate, self.slo_boost_step_percent
                ),
                capacity=engine.CapacitySizing(
                    initial_per_replica=self.capacity_initial_per_replica,
                    backlog_signal=self.capacity_backlog_signal,
                    backlog_drain_s=self.capacity_backlog_drain_s,
                    latency_signal=self.capacity_latency_signal,
                    latency_slo_s=self.capacity_latency_slo_s,
                    learn_rate=self.capacity_learn_rate,
                    learn_min_utilization=self.capacity_learn_min_utilization,
                    learn_range=self.capacity_learn_range,
                    peak_window_s=self.capacity_peak_window_s,
                    forecast_periods_s=tuple(float(p) for p in self.capacity_forecast_periods_s),
                    pooling=self.capacity_pooling,
                    pool_size=self.capacity_pool_size,
                ),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(_explain(exc)) from exc

    def clean(self) -> None:
        if not isinstance(self.targets, list) or not self.targets:
            raise ValidationError({"targets": "Give at least one target."})
        for field in (
            "scale_up_policies",
            "scale_down_policies",
            "cron_minimums",
            "capacity_forecast_periods_s",
        ):
            if not isinstance(getattr(self, field), list):
                raise ValidationError({field: "Must be a list."})
        try:
            self.to_engine()
        except ValueError as exc:
            raise ValidationError({"non_field_errors": str(exc)}) from exc


def _explain(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"missing key {exc.args[0]!r} in a target, rate limit or cron minimum"
    return str(exc)


class DecisionRecord(models.Model):
    """Every evaluation, also in dry-run: inputs, proposals, the winning rule and why."""

    deployment = models.ForeignKey(
        Deployment,
        on_delete=models.CASCADE,
        related_name="scale_decisions",
        help_text="Deployment.",
    )
    at = models.DateTimeField(db_index=True, help_text="When it was decided.")
    current_replicas = models.PositiveIntegerField(help_text="Replicas when deciding.")
    desired_replicas = models.PositiveIntegerField(help_text="Replicas decided.")
    rule = models.CharField(max_length=48, help_text="The rule that decided.")
    reason = models.TextField(help_text="Why, in one sentence with the figures.")
    proposals = models.JSONField(default=list, help_text="Per-target proposals.")
    events = models.JSONField(default=list, help_text="Events raised (missing metrics, drift...).")
    inputs = models.JSONField(default=dict, help_text="Observations and replica state used.")
    dry_run = models.BooleanField(help_text="Recorded only; nothing was applied.")

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["deployment", "-at"], name="autoscaling_decision_idx")]

    def __str__(self) -> str:
        return (
            f"{self.deployment_id}: {self.current_replicas}→{self.desired_replicas} ({self.rule})"
        )


class ActionStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    SUPERSEDED = "superseded", "Superseded"


class ScaleAction(models.Model):
    """A replica change to apply. Claimed with a conditional update, applied idempotently."""

    deployment = models.ForeignKey(
        Deployment, on_delete=models.CASCADE, related_name="scale_actions", help_text="Deployment."
    )
    decision = models.ForeignKey(
        DecisionRecord,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="actions",
        help_text="The decision that asked for it (none for manual).",
    )
    from_replicas = models.PositiveIntegerField(help_text="Replicas before.")
    to_replicas = models.PositiveIntegerField(help_text="Replicas to set.")
    idempotency_key = models.CharField(
        max_length=128, unique=True, help_text="Deterministic key: the same change twice is one."
    )
    status = models.CharField(
        max_length=16,
        choices=ActionStatus.choices,
        default=ActionStatus.PENDING,
        help_text="State machine position.",
    )
    attempts = models.PositiveIntegerField(default=0, help_text="Actuator calls made.")
    error = models.TextField(blank=True, default="", help_text="Last error, if any.")
    drain = models.JSONField(
        null=True,
        blank=True,
        help_text="Scale-downs behind gateways: the members drained, when every gateway "
        "applied the configuration without them, how long in-flight requests took to finish "
        "and whether the drain timed out. Null when there was no drain.",
    )
    created_at = models.DateTimeField(auto_now_add=True, help_text="When it was created.")
    started_at = models.DateTimeField(null=True, blank=True, help_text="When a worker claimed it.")
    finished_at = models.DateTimeField(null=True, blank=True, help_text="When it ended.")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.deployment_id}: {self.from_replicas}→{self.to_replicas} {self.status}"


class DeploymentControl(models.Model):
    """Per-deployment control state: kill switch, manual pin, what was last applied."""

    deployment = models.OneToOneField(
        Deployment,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="control",
        help_text="Deployment.",
    )
    paused = models.BooleanField(default=False, help_text="Kill switch: decide, never act.")
    pinned_replicas = models.PositiveIntegerField(
        null=True, blank=True, help_text="Hold at this many replicas..."
    )
    pinned_until = models.DateTimeField(null=True, blank=True, help_text="...until this time.")
    pinned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Who pinned it.",
    )
    last_applied = models.PositiveIntegerField(
        null=True, blank=True, help_text="Replicas the control plane last set."
    )
    history = models.JSONField(default=dict, help_text="Decision-engine history (serialized).")

    def __str__(self) -> str:
        # The name, as the audit log shows it ("control of chat-llama-8b", not "of 5").
        return f"control of {self.deployment.name}"

    @property
    def audit_team_id(self) -> int:
        return self.deployment.team_id


class GlobalSwitch(models.Model):
    """Fleet-wide switches, one row per name (e.g. autoscaling-paused)."""

    name = models.CharField(max_length=64, unique=True, help_text="Switch name.")
    enabled = models.BooleanField(default=False, help_text="Whether it is on.")
    changed_at = models.DateTimeField(auto_now=True, help_text="Last change.")
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Who changed it.",
    )

    def __str__(self) -> str:
        return f"{self.name}={'on' if self.enabled else 'off'}"
