"""The go-live state of a deployment: its stage, the checks run on it over time, the
artifact digests its deploy pipeline reported, its load-test runs and the overrides of the
gate. Reads are in :mod:`.selectors`, changes in :mod:`.services`; the checks themselves
are pure functions in :mod:`.checks`."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.inventory.models import Deployment


class Stage(models.TextChoices):
    PREPARATION = "preparation", "Preparation"
    VALIDATION = "validation", "Validation"
    PRODUCTION = "production", "Production"
    OPERATIONS = "operations", "Operations"


# Stages in which the deployment is live (Deployment.status == active).
LIVE_STAGES = (Stage.PRODUCTION, Stage.OPERATIONS)
STAGE_ORDER = (Stage.PREPARATION, Stage.VALIDATION, Stage.PRODUCTION, Stage.OPERATIONS)


class CheckGroup(models.TextChoices):
    MODEL = "model", "Model"
    ENVIRONMENT = "environment", "Environment"
    CONFIGURATION = "configuration", "Configuration"
    TESTS = "tests", "Tests"
    MONITORING = "monitoring", "Monitoring"


class CheckStatus(models.TextChoices):
    PASS = "pass", "Pass"
    FAIL = "fail", "Fail"
    UNKNOWN = "unknown", "Unknown"


class GateTarget(models.TextChoices):
    PRODUCTION = "production", "Advance to production (deployment active)"
    ENFORCE = "enforce", "Scaling policy leaves dry-run for enforce"


class DeploymentStage(models.Model):
    """Where a deployment is on its way to production, and what the checks require of it."""

    deployment = models.OneToOneField(
        Deployment,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="golive_stage",
        help_text="The deployment.",
    )
    stage = models.CharField(
        max_length=16,
        choices=Stage.choices,
        default=Stage.PREPARATION,
        help_text="preparation, validation, production or operations (the last two: active).",
    )
    require_tls = models.BooleanField(
        default=False,
        help_text="The endpoint must be served over https (the TLS check fails otherwise).",
    )
    changed_at = models.DateTimeField(auto_now=True, help_text="Last change.")
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Who changed it last (empty: the system).",
    )

    def __str__(self) -> str:
        return f"{self.deployment_id}: {self.stage}"

    @property
    def audit_team_id(self) -> int:
        return self.deployment.team_id


class CheckResult(models.Model):
    """One check's outcome at one time, with what it saw and where to look."""

    deployment = models.ForeignKey(
        Deployment, on_delete=models.CASCADE, related_name="golive_checks", help_text="Deployment."
    )
    key = models.CharField(max_length=48, help_text="Check key, e.g. model.served_version.")
    group = models.CharField(max_length=16, choices=CheckGroup.choices, help_text="Group.")
    status = models.CharField(
        max_length=8, choices=CheckStatus.choices, help_text="pass, fail or unknown."
    )
    required = models.BooleanField(help_text="Whether the gate requires it to pass.")
    observed = models.JSONField(
        default=dict, help_text="What was seen and what was expected (check-specific keys)."
    )
    message = models.TextField(help_text="One sentence: why it passed, failed or is unknown.")
    evidence_url = models.CharField(
        max_length=2000,
        blank=True,
        default="",
        help_text="Where to see the evidence: a console or API path, a PromQL or LogQL query.",
    )
    checked_at = models.DateTimeField(db_index=True, help_text="When it was checked.")

    class Meta:
        ordering = ["-checked_at", "-id"]
        indexes = [
            models.Index(fields=["deployment", "key", "-checked_at"], name="golive_check_latest")
        ]

    def __str__(self) -> str:
        return f"{self.key} of {self.deployment_id}: {self.status}"


class ArtifactReport(models.Model):
    """Digests of the files a deploy pipeline put on the serving nodes."""

    deployment = models.ForeignKey(
        Deployment,
        on_delete=models.CASCADE,
        related_name="golive_artifacts",
        help_text="Deployment.",
    )
    files = models.JSONField(
        default=list, help_text='Files as reported: [{"path": ..., "sha256": <64 hex>}].'
    )
    digest = models.CharField(
        max_length=80,
        blank=True,
        default="",
        help_text="Overall digest as sha256:<64 hex>, compared with the model's checksum.",
    )
    reported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Who reported it.",
    )
    reported_at = models.DateTimeField(auto_now_add=True, help_text="When it was reported.")

    class Meta:
        ordering = ["-reported_at", "-id"]

    def __str__(self) -> str:
        return f"artifacts of {self.deployment_id} at {self.reported_at:%Y-%m-%d %H:%M}"

    @property
    def audit_team_id(self) -> int:
        return self.deployment.team_id


class LoadTestMode(models.TextChoices):
    FUNCTIONAL = "functional", "Functional"
    PERFORMANCE = "performance", "Performance"
    STRESS = "stress", "Stress"


class LoadTestStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED_LOAD_TEST = (LoadTestStatus.DONE, LoadTestStatus.FAILED, LoadTestStatus.CANCELLED)


class LoadTestRun(models.Model):
    """One run of the built-in load test against a deployment's endpoint."""

    deployment = models.ForeignKey(
        Deployment, on_delete=models.CASCADE, related_name="golive_loadtests", help_text="Target."
    )
    mode = models.CharField(
        max_length=12, choices=LoadTestMode.choices, help_text="functional, performance, stress."
    )
    plan = models.JSONField(help_text="The load-test plan as given to the engine.")
    status = models.CharField(
        max_length=10,
        choices=LoadTestStatus.choices,
        default=LoadTestStatus.QUEUED,
        help_text="queued, running, done, failed or cancelled.",
    )
    passed = models.BooleanField(
        null=True, blank=True, help_text="Whether the run met its criteria (empty: not done)."
    )
    result = models.JSONField(
        null=True, blank=True, help_text="The engine's result (steps, functional checks...)."
    )
    progress = models.JSONField(
        null=True, blank=True, help_text="The engine's latest progress report while it runs."
    )
    error = models.TextField(blank=True, default="", help_text="Why it failed, if it did.")
    capacity_rps_per_replica = models.FloatField(
        null=True,
        blank=True,
        help_text="Stress: requests/s one replica sustains within the SLO (measured).",
    )
    confirmed_production = models.BooleanField(
        default=False, help_text="Run against an active production deployment on purpose."
    )
    cancel_requested = models.BooleanField(
        default=False, help_text="A cancel was asked; the engine stops at its next check."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Who asked for it.",
    )
    created_at = models.DateTimeField(auto_now_add=True, help_text="When it was asked for.")
    started_at = models.DateTimeField(null=True, blank=True, help_text="When it started.")
    finished_at = models.DateTimeField(null=True, blank=True, help_text="When it ended.")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["deployment", "mode", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.mode} load test {self.pk} of {self.deployment_id}: {self.status}"

    @property
    def audit_team_id(self) -> int:
        return self.deployment.team_id


class GateOverride(models.Model):
    """A team admin let a deployment through the gate although required checks failed."""

    deployment = models.ForeignKey(
        Deployment,
        on_delete=models.CASCADE,
        related_name="golive_overrides",
        help_text="Deployment.",
    )
    target = models.CharField(
        max_length=12, choices=GateTarget.choices, help_text="production or enforce."
    )
    reason = models.TextField(help_text="Why (required).")
    failing_checks = models.JSONField(
        default=list, help_text="The required checks that were not passing, with their status."
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Who overrode (empty: the system, e.g. the demo seed).",
    )
    created_at = models.DateTimeField(auto_now_add=True, help_text="When.")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"override of {self.deployment_id} to {self.target}"

    @property
    def audit_team_id(self) -> int:
        return self.deployment.team_id
