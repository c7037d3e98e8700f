"""SLO definitions, their evaluated status, status samples and state-change events.
Evaluation is in :mod:`.services` (burn math in :mod:`.burn`)."""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models

from apps.accounts.models import Team, slug_validator
from apps.inventory.models import Deployment, validate_labels

from .burn import PERIODS_S


class SliKind(models.TextChoices):
    LATENCY = "latency", "Latency under a threshold"
    ERROR_RATIO = "error_ratio", "Requests without error"
    AVAILABILITY = "availability", "Time with a replica available"
    CUSTOM_RATIO = "custom_ratio", "Custom good/total ratio"


class LatencyMetric(models.TextChoices):
    TTFT = "ttft", "Time to first token"
    ITL = "itl", "Inter-token latency"
    E2E = "e2e", "End-to-end latency"


class SloWindow(models.TextChoices):
    D7 = "7d", "7 days"
    D28 = "28d", "28 days"
    D30 = "30d", "30 days"


class SloState(models.TextChoices):
    OK = "ok", "Within budget"
    TICKET = "ticket", "Slow burn (ticket)"
    PAGE = "page", "Fast burn (page)"
    LOW_TRAFFIC = "low_traffic", "Burning, but too little traffic to alert"
    NO_DATA = "no_data", "No data"
    UNAVAILABLE = "unavailable", "Metrics unavailable"


class Slo(models.Model):
    """A service level objective over one deployment or the team's deployments matching labels."""

    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, related_name="slos", help_text="Owning team."
    )
    name = models.CharField(
        max_length=63, validators=[slug_validator], help_text="Name, unique within the team."
    )
    description = models.TextField(blank=True, default="", help_text="What it promises.")
    deployment = models.ForeignKey(
        Deployment,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="slos",
        help_text="The deployment it covers; leave empty to select by labels.",
    )
    deployment_labels = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_labels],
        help_text="Covers every deployment of the team whose labels include these "
        "(when no deployment is given). Counts are added across them.",
    )
    sli_kind = models.CharField(
        max_length=16, choices=SliKind.choices, help_text="What is measured."
    )
    latency_metric = models.CharField(
        max_length=8,
        choices=LatencyMetric.choices,
        blank=True,
        default="",
        help_text="Latency SLIs: which latency.",
    )
    threshold_seconds = models.FloatField(
        null=True,
        blank=True,
        help_text="Latency SLIs: requests at or under this many seconds are good. Must be a "
        "bucket boundary of the framework's histogram.",
    )
    good_query = models.TextField(
        blank=True,
        default="",
        help_text="Custom ratio SLIs: PromQL counting good events over $window "
        "(e.g. sum(increase(http_ok_total[$window]))).",
    )
    total_query = models.TextField(
        blank=True, default="", help_text="Custom ratio SLIs: PromQL counting all events."
    )
    objective_percent = models.DecimalField(
        max_digits=7,
        decimal_places=4,
        help_text="Target share of good events, in percent (e.g. 99.5). Strictly between 0 "
        "and 100.",
    )
    window = models.CharField(
        max_length=4,
        choices=SloWindow.choices,
        default=SloWindow.D28,
        help_text="Rolling compliance period.",
    )
    min_requests = models.PositiveIntegerField(
        default=100,
        validators=[MinValueValidator(0)],
        help_text="Minimum-traffic guard: a burn-rate condition fires only if its long "
        "window saw at least this many events.",
    )
    enabled = models.BooleanField(default=True, help_text="Evaluated while enabled.")
    created_at = models.DateTimeField(auto_now_add=True, help_text="When it was created.")
    updated_at = models.DateTimeField(auto_now=True, help_text="Last change.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="slos_slo_unique_name")
        ]
        ordering = ["team__slug", "name"]
        verbose_name = "SLO"

    def __str__(self) -> str:
        return self.name

    @property
    def objective(self) -> float:
        return float(self.objective_percent) / 100.0

    def clean(self) -> None:
        from .promql import check_custom_query
        from .sli import SliError, check_threshold

        errors: dict[str, str] = {}
        obj = self.objective_percent
        if obj is not None and not (Decimal(0) < Decimal(obj) < Decimal(100)):
            errors["objective_percent"] = (
                "The objective must be strictly between 0 and 100 percent: 100 % leaves no "
                "error budget, and 0 % promises nothing."
            )
        if self.window not in PERIODS_S:
            errors["window"] = f"Use one of {', '.join(PERIODS_S)}."
        if self.deployment_id is None and not self.deployment_labels:
            errors["deployment"] = "Give a deployment, or labels that select deployments."
        if self.deployment_id is not None and self.deployment_labels:
            errors["deployment_labels"] = "Give a deployment or labels, not both."
        deployment = self.deployment if self.deployment_id is not None else None
        if deployment is not None and self.team_id is not None:
            if deployment.team_id != self.team_id:
                errors["deployment"] = "The deployment belongs to another team."
        if self.sli_kind == SliKind.LATENCY:
            if not self.latency_metric:
                errors["latency_metric"] = "Latency SLIs need ttft, itl or e2e."
            if self.threshold_seconds is None or self.threshold_seconds <= 0:
                errors["threshold_seconds"] = "Latency SLIs need a positive threshold."
            elif self.latency_metric and deployment is not None:
                try:
                    check_threshold(
                        deployment.framework, self.latency_metric, self.threshold_seconds
                    )
                except SliError as exc:
                    errors["threshold_seconds"] = str(exc)
        elif self.latency_metric or self.threshold_seconds is not None:
            errors["sli_kind"] = "latency_metric and threshold_seconds are for latency SLIs."
        if self.sli_kind == SliKind.CUSTOM_RATIO:
            for field in ("good_query", "total_query"):
                try:
                    check_custom_query(getattr(self, field))
                except ValueError as exc:
                    errors[field] = str(exc)
        elif self.good_query or self.total_query:
            errors["sli_kind"] = "good_query and total_query are for custom ratio SLIs."
        if errors:
            raise ValidationError(errors)


class SloStatus(models.Model):
    """The latest evaluation of an SLO."""

    slo = models.OneToOneField(
        Slo, on_delete=models.CASCADE, primary_key=True, related_name="status"
    )
    state = models.CharField(max_length=16, choices=SloState.choices, help_text="Alert state.")
    reason = models.TextField(blank=True, default="", help_text="Why, with the figures.")
    sli = models.FloatField(null=True, blank=True, help_text="SLI over the period (0-1).")
    budget_remaining = models.FloatField(
        null=True,
        blank=True,
        help_text="Share of the error budget left over the period (1 untouched, <0 overspent).",
    )
    burn_rates = models.JSONField(default=dict, help_text="Burn rate per window name.")
    totals = models.JSONField(default=dict, help_text="Events counted per window name.")
    windows = models.JSONField(default=dict, help_text="Window name → length in seconds.")
    firing = models.JSONField(default=list, help_text="Conditions firing, e.g. page:1h/5m.")
    evaluated_at = models.DateTimeField(help_text="When it was evaluated.")

    class Meta:
        verbose_name_plural = "SLO statuses"

    def __str__(self) -> str:
        return f"{self.slo_id}: {self.state}"


# What an evaluation records, as the admin and the API show it (read-only in both).
SLO_STATUS_FIELDS = (
    "state",
    "reason",
    "sli",
    "budget_remaining",
    "burn_rates",
    "totals",
    "windows",
    "firing",
    "evaluated_at",
)


class SloStatusSample(models.Model):
    """SLO history for charts: one row per evaluation step."""

    slo = models.ForeignKey(Slo, on_delete=models.CASCADE, related_name="history")
    ts = models.DateTimeField(db_index=True)
    state = models.CharField(max_length=16, choices=SloState.choices)
    sli = models.FloatField(null=True)
    budget_remaining = models.FloatField(null=True)
    burn_rates = models.JSONField(default=dict)

    class Meta:
        ordering = ["ts"]
        constraints = [models.UniqueConstraint(fields=["slo", "ts"], name="slos_sample_unique")]

    def __str__(self) -> str:
        return f"{self.slo_id}@{self.ts:%H:%M}: {self.state}"


class SloEvent(models.Model):
    """A change of SLO state: what the alerting pipeline consumes."""

    slo = models.ForeignKey(
        Slo, on_delete=models.CASCADE, related_name="events", help_text="The SLO."
    )
    at = models.DateTimeField(db_index=True, help_text="When the state changed.")
    from_state = models.CharField(
        max_length=16,
        choices=SloState.choices,
        blank=True,
        help_text="Previous state (empty for the first).",
    )
    to_state = models.CharField(max_length=16, choices=SloState.choices, help_text="New state.")
    reason = models.TextField(help_text="Why, with the figures.")
    burn_rates = models.JSONField(default=dict, help_text="Burn rates at the time.")

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.slo_id} {self.from_state or '-'} → {self.to_state}"

    @property
    def audit_team_id(self) -> int:
        return self.slo.team_id
