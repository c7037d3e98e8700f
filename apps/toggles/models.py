"""Degradation toggles, the gateway tokens that read them, and the automatic degradation
policies that move them through levels."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models

from apps.accounts.models import Team
from apps.inventory.models import Deployment

from .evaluation import ValueType
from .presets import Preset

KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"
key_validator = RegexValidator(
    KEY_PATTERN, "Letters, digits, '_', '.' and '-', starting with a letter or digit."
)


class ToggleValueType(models.TextChoices):
    BOOLEAN = ValueType.BOOLEAN.value, "Boolean"
    NUMBER = ValueType.NUMBER.value, "Number"
    STRING = ValueType.STRING.value, "String"
    OBJECT = ValueType.OBJECT.value, "JSON"


class TogglePreset(models.TextChoices):
    CUSTOM = Preset.CUSTOM.value, "Custom"
    MAX_OUTPUT_TOKENS = Preset.MAX_OUTPUT_TOKENS.value, "Max output tokens"
    MAX_CONTEXT_TOKENS = Preset.MAX_CONTEXT_TOKENS.value, "Max context tokens"
    SHED_FRACTION = Preset.SHED_FRACTION.value, "Shed fraction by priority class"
    FEATURE = Preset.FEATURE.value, "Feature switch"
    FALLBACK_DEPLOYMENT = Preset.FALLBACK_DEPLOYMENT.value, "Fallback deployment"
    CACHE_ONLY = Preset.CACHE_ONLY.value, "Cache only"
    MAINTENANCE = Preset.MAINTENANCE.value, "Maintenance mode"


class Toggle(models.Model):
    """A value gateways read, per team and optionally per deployment.

    ``override_*`` is what a degradation policy's level (or a pin) serves to everyone on
    top of the toggle's own settings; clearing it gives the toggle back its own value.
    Every change bumps the team's :class:`ToggleVersion` in the same transaction."""

    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, related_name="toggles", help_text="Owning team."
    )
    deployment = models.ForeignKey(
        Deployment,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="toggles",
        help_text="The deployment it applies to; empty: the whole team.",
    )
    key = models.CharField(
        max_length=100, validators=[key_validator], help_text="The flag key gateways ask for."
    )
    description = models.TextField(blank=True, default="")
    preset = models.CharField(
        max_length=32,
        choices=TogglePreset.choices,
        default=TogglePreset.CUSTOM,
        help_text="A degradation preset fixes the type, off value and valid values.",
    )
    value_type = models.CharField(max_length=16, choices=ToggleValueType.choices)
    enabled = models.BooleanField(
        default=False, help_text="Off: every caller gets the off value (reason DISABLED)."
    )
    value = models.JSONField(blank=True, help_text="Served when on and no rule matches.")
    off_value = models.JSONField(blank=True, help_text="Served when off.")
    rules = models.JSONField(
        default=list, blank=True, help_text="Targeting rules, first match wins."
    )
    override_value = models.JSONField(null=True, blank=True, editable=False)
    override_level = models.PositiveSmallIntegerField(null=True, blank=True, editable=False)
    override_source = models.CharField(max_length=200, blank=True, default="", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["team", "key"],
                condition=models.Q(deployment__isnull=True),
                name="toggles_team_key_unique",
            ),
            models.UniqueConstraint(
                fields=["team", "deployment", "key"], name="toggles_deployment_key_unique"
            ),
        ]
        ordering = ["team_id", "deployment_id", "key"]

    def __str__(self) -> str:
        where = f"{self.deployment}/" if self.deployment_id else ""
        return f"{where}{self.key}"

    @property
    def overridden(self) -> bool:
        return self.override_level is not None


class ToggleVersion(models.Model):
    """The team's toggle version: bumped by every change to its toggles, so a gateway's
    ETag and the read path's cache are one integer comparison."""

    team = models.OneToOneField(
        Team, on_delete=models.CASCADE, related_name="toggle_version", primary_key=True
    )
    version = models.PositiveBigIntegerField(default=0)
    changed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.team_id}@{self.version}"


class ToggleChange(models.Model):
    """One change of a toggle's served state, for its history on the deployment's charts."""

    toggle = models.ForeignKey(Toggle, on_delete=models.CASCADE, related_name="changes")
    at = models.DateTimeField(db_index=True)
    version = models.PositiveBigIntegerField(help_text="Team toggle version after the change.")
    actor = models.CharField(max_length=200, help_text="User name, or policy:<name>.")
    reason = models.TextField(blank=True, default="")
    enabled = models.BooleanField()
    value = models.JSONField(null=True, help_text="What an unmatched caller gets after it.")
    level = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["toggle", "at"], name="toggles_change_at")]

    def __str__(self) -> str:
        return f"{self.toggle_id} v{self.version} by {self.actor}"


class GatewayToken(models.Model):
    """A credential of one team's gateways: evaluates and reads that team's toggles (OFREP,
    snapshots, change stream), fetches its gateways' nginx configuration and posts what
    their agents applied, and nothing else. Only its hash is kept."""

    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, related_name="gateway_tokens", help_text="Owning team."
    )
    name = models.SlugField(max_length=64, help_text="What it is for (unique in the team).")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    token_prefix = models.CharField(max_length=16, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="toggles_gateway_token_name")
        ]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.name}" if self.team_id else self.name


class DegradationPolicy(models.Model):
    """Triggers that move a deployment's toggles through ordered levels.

    ``triggers``: a list of ``{"kind": ...}`` conditions, any of which degrades:
    ``slo_state`` (``slo`` id, ``states``), ``alert`` (``matchers``), ``autoscaler_at_max``
    (with an SLO burning), ``signal`` (``signal``, ``op``, ``threshold``).
    ``levels``: a list (level 1 first) of ``{"name", "set": {toggle key: value}}``; a level
    keeps what the levels below it set unless it sets the same key."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="degradation_policies")
    deployment = models.ForeignKey(
        Deployment, on_delete=models.CASCADE, related_name="degradation_policies"
    )
    name = models.SlugField(max_length=64)
    enabled = models.BooleanField(default=True)
    dry_run = models.BooleanField(
        default=False, help_text="Record the transitions it would make, change nothing."
    )
    triggers = models.JSONField(default=list)
    levels = models.JSONField(default=list)
    min_hold_s = models.PositiveIntegerField(
        default=300, help_text="Least time at a level before going up or down again."
    )
    clear_for_s = models.PositiveIntegerField(
        default=600, help_text="How long every trigger must be clear before stepping down."
    )
    max_duration_s = models.PositiveIntegerField(
        default=4 * 3600,
        validators=[MinValueValidator(60)],
        help_text="Longest time degraded; then back to level 0 and a notification.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="toggles_policy_name"),
        ]
        ordering = ["team_id", "name"]
        verbose_name_plural = "degradation policies"

    def __str__(self) -> str:
        return self.name


class DegradationState(models.Model):
    """Where a policy stands: its level, since when, and a pin if someone set one."""

    policy = models.OneToOneField(
        DegradationPolicy, on_delete=models.CASCADE, related_name="state", primary_key=True
    )
    level = models.PositiveSmallIntegerField(default=0)
    level_since = models.DateTimeField(null=True, blank=True)
    degraded_since = models.DateTimeField(null=True, blank=True)
    triggered_since = models.DateTimeField(null=True, blank=True)
    clear_since = models.DateTimeField(null=True, blank=True)
    expired = models.BooleanField(
        default=False, help_text="Max duration reached; stays at 0 until the triggers clear."
    )
    pinned_level = models.PositiveSmallIntegerField(null=True, blank=True)
    pinned_by = models.CharField(max_length=150, blank=True, default="")
    pin_reason = models.TextField(blank=True, default="")
    pinned_until = models.DateTimeField(null=True, blank=True)
    evaluated_at = models.DateTimeField(null=True, blank=True)
    # In dry run the level it would be at (and since when), so that its recorded
    # transitions step one level at a time as the live ones would; the live level otherwise.
    dry_level = models.PositiveSmallIntegerField(default=0)
    dry_level_since = models.DateTimeField(null=True, blank=True)
    dry_degraded_since = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.policy} at level {self.level}"


class DegradationTransition(models.Model):
    """One level change a policy made (or, in dry run, would have made), with its reason."""

    policy = models.ForeignKey(
        DegradationPolicy, on_delete=models.CASCADE, related_name="transitions"
    )
    at = models.DateTimeField(db_index=True)
    from_level = models.PositiveSmallIntegerField()
    to_level = models.PositiveSmallIntegerField()
    reason = models.TextField()
    evidence = models.JSONField(default=dict, blank=True)
    dry_run = models.BooleanField(default=False)
    actor = models.CharField(max_length=150, default="system")

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.policy}: {self.from_level} -> {self.to_level}"


class DegradationSwitch(models.Model):
    """The global off switch of automatic degradation (one row). Off: no policy changes a
    level; pins and manual changes still work."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    automatic = models.BooleanField(default=True)
    changed_by = models.CharField(max_length=150, blank=True, default="")
    changed_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True, default="")

    def __str__(self) -> str:
        return "automatic degradation " + ("on" if self.automatic else "off")
