"""The latest observations per deployment, chart samples and saved custom queries.
Collection is in :mod:`.services`, reads in :mod:`.selectors`."""

from __future__ import annotations

from django.db import models

from apps.inventory.models import Deployment

from .catalogue import Signal


class MetricsStatus(models.TextChoices):
    OK = "ok", "All signals fresh"
    PARTIAL = "partial", "Some signals missing"
    UNAVAILABLE = "unavailable", "Metrics unavailable"


class DeploymentMetrics(models.Model):
    """The latest observations of one deployment, rewritten every collection cycle."""

    deployment = models.OneToOneField(
        Deployment, on_delete=models.CASCADE, primary_key=True, related_name="metrics_state"
    )
    status = models.CharField(
        max_length=16, choices=MetricsStatus.choices, help_text="Health of the last collection."
    )
    reason = models.TextField(
        blank=True, default="", help_text="Why metrics are partial or unavailable."
    )
    observations = models.JSONField(
        default=dict,
        help_text="{signal: {value, ts, status, reason}}; ts is the scrape time (unix s), "
        "status one of ok, missing, stale, unsupported, unavailable.",
    )
    collected_at = models.DateTimeField(help_text="When the collector last ran for it.")
    sampled_at = models.DateTimeField(
        null=True, blank=True, help_text="Last time a downsampled point was stored for charts."
    )

    class Meta:
        verbose_name_plural = "deployment metrics"

    def __str__(self) -> str:
        return f"metrics of {self.deployment_id}: {self.status}"

    @property
    def audit_team_id(self) -> int:
        return self.deployment.team_id


class MetricSample(models.Model):
    """A downsampled point for charts (one per deployment, signal and resolution step)."""

    deployment = models.ForeignKey(
        Deployment, on_delete=models.CASCADE, related_name="metric_samples"
    )
    signal = models.CharField(max_length=32, choices=Signal.choices)
    ts = models.DateTimeField(help_text="Start of the step the point stands for.")
    value = models.FloatField()

    class Meta:
        indexes = [models.Index(fields=["deployment", "signal", "ts"], name="metrics_sample_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["deployment", "signal", "ts"], name="metrics_sample_unique"
            )
        ]
        ordering = ["ts"]

    def __str__(self) -> str:
        return f"{self.deployment_id} {self.signal}@{self.ts:%H:%M}={self.value:g}"


class CustomQuery(models.Model):
    """A deployment's own PromQL for one signal, replacing the catalogue's."""

    deployment = models.ForeignKey(
        Deployment,
        on_delete=models.CASCADE,
        related_name="custom_queries",
        help_text="The deployment.",
    )
    signal = models.CharField(
        max_length=32, choices=Signal.choices, help_text="The signal this query provides."
    )
    promql = models.TextField(
        help_text="A PromQL expression returning one series (the deployment's value)."
    )
    created_at = models.DateTimeField(auto_now_add=True, help_text="When it was added.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["deployment", "signal"], name="metrics_custom_unique")
        ]

    def __str__(self) -> str:
        return f"{self.deployment_id}:{self.signal}"

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from .promql_check import PromQLError, check_promql

        try:
            self.promql = check_promql(self.promql or "")
        except PromQLError as exc:
            raise ValidationError({"promql": f"Invalid PromQL: {exc}."}) from exc

    @property
    def audit_team_id(self) -> int:
        return self.deployment.team_id
