"""Alerts and everything that decides who hears about them.

Alert (one per team and label set: team + fingerprint) ← ingested from Alertmanager,
threshold rules, SLOs and the control loop. Route (per team, ordered, label matchers) →
AlertGroup (the route's ``group_by`` values; Alertmanager's aggregation group, with its
notification state) → Delivery (one message to one Channel: a row with a state machine,
retried, rate-limited, recorded). Silence and InhibitRule mute alerts before notification.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from apps.accounts.models import Team
from apps.core.fields import EncryptedJSONField
from apps.inventory.models import Deployment

from . import grouping
from .labels import MatcherError, matchers_dump, matchers_load, matchers_parse


class AlertStatus(models.TextChoices):
    FIRING = "firing", "Firing"
    RESOLVED = "resolved", "Resolved"


class AlertSource(models.TextChoices):
    ALERTMANAGER = "alertmanager", "Alertmanager"
    RULE = "rule", "Threshold rule"
    SLO = "slo", "SLO"
    AUTOSCALING = "autoscaling", "Control loop"
    API = "api", "API"
    GOLIVE = "golive", "Go-live checks"


class Severity(models.TextChoices):
    CRITICAL = "critical", "Critical"
    WARNING = "warning", "Warning"
    INFO = "info", "Info"


class ChannelKind(models.TextChoices):
    SLACK = "slack", "Slack"
    FEISHU = "feishu", "Feishu / Lark"
    DINGTALK = "dingtalk", "DingTalk"
    WECOM = "wecom", "WeCom"
    TEAMS = "teams", "Microsoft Teams"
    WEBHOOK = "webhook", "Generic webhook"


class Language(models.TextChoices):
    EN = "en", "English"
    ZH = "zh", "中文"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    MERGED = "merged", "Merged into a digest"


def _validate_matchers(value: object, field: str) -> list[dict[str, str]]:
    try:
        return matchers_dump(matchers_parse(value))
    except MatcherError as exc:
        raise ValidationError({field: f"invalid matchers: {exc}"}) from exc


def silence_matchers_clean(value: object) -> list[dict[str, str]]:
    """A silence's matchers as stored, or ValidationError on ``matchers``: they must parse
    (RE2 patterns included), and one at least must not match the empty string, or the
    silence would mute every alert of its team."""
    matchers = _validate_matchers(value, "matchers")
    if not matchers:
        raise ValidationError({"matchers": "a silence needs at least one matcher"})
    if all(m.matches("") for m in matchers_load(matchers)):
        raise ValidationError({"matchers": "at least one matcher must not match the empty string"})
    return matchers


class Receiver(models.Model):
    """Credentials for an inbound webhook (Alertmanager's ``webhook_config``): sent as a
    bearer token, or as the password of basic auth with the receiver's name as user."""

    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, related_name="alert_receivers", help_text="Owning team."
    )
    name = models.SlugField(max_length=64, unique=True, help_text="Also the basic-auth user.")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    token_prefix = models.CharField(
        max_length=12, editable=False, help_text="Start of the token, to recognise it."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True, help_text="Created.")
    last_used_at = models.DateTimeField(null=True, blank=True, help_text="Last accepted call.")
    revoked_at = models.DateTimeField(null=True, blank=True, help_text="Revoked (unusable).")

    def __str__(self) -> str:
        return self.name


class Alert(models.Model):
    fingerprint = models.CharField(
        max_length=16, db_index=True, help_text="Of the label set (unique within the team)."
    )
    team = models.ForeignKey(
        Team,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="alerts",
        help_text="Owning team (from the receiver, the rule, or the deployment).",
    )
    deployment = models.ForeignKey(
        Deployment,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="alerts",
        help_text="The deployment it is about, when its labels name one.",
    )
    source = models.CharField(
        max_length=16, choices=AlertSource.choices, help_text="Where it came from."
    )
    name = models.CharField(max_length=200, db_index=True, help_text="Label alertname.")
    severity = models.CharField(max_length=32, db_index=True, blank=True, help_text="Label.")
    labels = models.JSONField(default=dict, help_text="Identifying labels.")
    annotations = models.JSONField(default=dict, help_text="summary, description, ...")
    status = models.CharField(
        max_length=8, choices=AlertStatus.choices, db_index=True, help_text="firing or resolved."
    )
    starts_at = models.DateTimeField(help_text="When it started firing.")
    ends_at = models.DateTimeField(null=True, blank=True, help_text="When it resolved.")
    generator_url = models.URLField(
        max_length=2000, blank=True, help_text="Link to the source (e.g. a Prometheus graph)."
    )
    received_at = models.DateTimeField(help_text="Last time a source reported it.")
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        help_text="Who acknowledged it.",
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True, help_text="When.")
    ack_comment = models.CharField(max_length=500, blank=True, help_text="Their note.")

    class Meta:
        ordering = ["-starts_at", "-id"]
        indexes = [models.Index(fields=["team", "status"])]
        # An alert is identified within its team: two teams sending the same label set
        # have two alerts, and neither can see or change the other's.
        constraints = [
            models.UniqueConstraint(
                fields=["team", "fingerprint"], name="alerts_alert_unique_team_fingerprint"
            ),
            models.UniqueConstraint(
                fields=["fingerprint"],
                condition=models.Q(team__isnull=True),
                name="alerts_alert_unique_teamless_fingerprint",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} [{self.status}] {self.fingerprint}"


class Silence(models.Model):
    team = models.ForeignKey(
        Team,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="silences",
        help_text="Team whose alerts it mutes (empty: every team; superusers only).",
    )
    matchers = models.JSONField(
        help_text='Label matchers: {alertname="X", deployment=~"chat.*"} or '
        '[{"name": "alertname", "op": "=", "value": "X"}]; ops =, !=, =~, !~.'
    )
    starts_at = models.DateTimeField(help_text="From.")
    ends_at = models.DateTimeField(help_text="Until.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    comment = models.TextField(help_text="Why (required).")
    created_at = models.DateTimeField(auto_now_add=True, help_text="Created.")

    class Meta:
        ordering = ["-starts_at", "-id"]

    def __str__(self) -> str:
        return f"silence {self.pk}"

    def clean(self) -> None:
        self.matchers = silence_matchers_clean(self.matchers)
        if not (self.comment or "").strip():
            raise ValidationError({"comment": "say why"})
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValidationError({"ends_at": "must be after starts_at"})


class InhibitRule(models.Model):
    """While a firing alert matches ``source_matchers``, alerts matching ``target_matchers``
    with the same values of the ``equal`` labels are muted (Alertmanager's inhibit_rules)."""

    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.CASCADE, related_name="inhibit_rules"
    )
    name = models.CharField(max_length=100, help_text="Name.")
    source_matchers = models.JSONField(help_text="Matchers of the inhibiting alert.")
    target_matchers = models.JSONField(help_text="Matchers of the muted alerts.")
    equal = models.JSONField(default=list, blank=True, help_text="Labels that must be equal.")
    enabled = models.BooleanField(default=True, help_text="Off: ignored.")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        self.source_matchers = _validate_matchers(self.source_matchers, "source_matchers")
        self.target_matchers = _validate_matchers(self.target_matchers, "target_matchers")
        if not self.source_matchers or not self.target_matchers:
            raise ValidationError("give source and target matchers")
        if not isinstance(self.equal, list) or not all(isinstance(x, str) for x in self.equal):
            raise ValidationError({"equal": "a list of label names"})


class Channel(models.Model):
    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, related_name="alert_channels", help_text="Owning team."
    )
    name = models.CharField(max_length=100, help_text="Name, unique in the team.")
    kind = models.CharField(max_length=16, choices=ChannelKind.choices, help_text="Transport.")
    language = models.CharField(
        max_length=2, choices=Language.choices, default=Language.EN, help_text="en or zh."
    )
    config = EncryptedJSONField(
        blank=True,
        help_text="Transport settings (webhook URL, secret, ...), stored encrypted and "
        "never returned by the API.",
    )
    title_template = models.TextField(
        blank=True,
        help_text="Override of the title template (Jinja2 syntax, sandboxed and bounded; "
        "see docs/alerts.md).",
    )
    body_template = models.TextField(
        blank=True,
        help_text="Override of the body template (Jinja2 syntax, sandboxed and bounded; "
        "see docs/alerts.md).",
    )
    enabled = models.BooleanField(default=True, help_text="Off: nothing is sent.")
    disabled_reason = models.TextField(
        blank=True, help_text="Why it was disabled (a permanent error, or by hand)."
    )
    created_at = models.DateTimeField(auto_now_add=True, help_text="Created.")

    class Meta:
        ordering = ["team", "name"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="alerts_channel_unique_name")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class Route(models.Model):
    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, related_name="alert_routes", help_text="Owning team."
    )
    name = models.CharField(max_length=100, help_text="Name.")
    position = models.PositiveIntegerField(default=100, help_text="Lower is tried first.")
    matchers = models.JSONField(
        default=list, blank=True, help_text="Label matchers (empty: every alert of the team)."
    )
    channels = models.ManyToManyField(Channel, related_name="routes", help_text="Channel ids.")
    group_by = models.JSONField(
        default=list,
        blank=True,
        help_text='Labels to group by, e.g. ["alertname", "deployment"]; ["..."] = all.',
    )
    group_wait_s = models.PositiveIntegerField(default=30, help_text="First wait (30 s).")
    group_interval_s = models.PositiveIntegerField(
        default=300, help_text="Between looks at a group (5 min)."
    )
    repeat_interval_s = models.PositiveIntegerField(
        default=4 * 3600, help_text="Resend while firing (4 h)."
    )
    send_resolved = models.BooleanField(default=True, help_text="Notify resolutions.")
    continue_matching = models.BooleanField(
        default=False, help_text="Also try the next routes after this one matches."
    )
    enabled = models.BooleanField(default=True, help_text="Off: skipped.")

    class Meta:
        ordering = ["team", "position", "id"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        self.matchers = _validate_matchers(self.matchers or [], "matchers")
        if not isinstance(self.group_by, list) or not all(
            isinstance(x, str) and x for x in self.group_by
        ):
            raise ValidationError({"group_by": "a list of label names"})
        try:
            self.timers()
        except ValueError as exc:
            raise ValidationError({"group_interval_s": str(exc)}) from exc

    def timers(self) -> grouping.Timers:
        return grouping.Timers(
            float(self.group_wait_s), float(self.group_interval_s), float(self.repeat_interval_s)
        )


class AlertGroup(models.Model):
    """A route's group of alerts with the same ``group_by`` values, and what was last
    notified about it."""

    route = models.ForeignKey(Route, on_delete=models.CASCADE, related_name="groups")
    key_hash = models.CharField(max_length=16)
    labels = models.JSONField(default=dict)
    alerts = models.ManyToManyField(Alert, related_name="groups", blank=True)
    created_at = models.DateTimeField()
    next_flush_at = models.DateTimeField(db_index=True)
    last_notified_at = models.DateTimeField(null=True, blank=True)
    last_firing = models.JSONField(null=True, blank=True)
    last_resolved = models.JSONField(default=list, blank=True)
    flushes = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["route", "key_hash"], name="alerts_group_unique")
        ]

    def __str__(self) -> str:
        return f"group {self.key_hash} of route {self.route_id}"


class Delivery(models.Model):
    """One message to one channel."""

    channel = models.ForeignKey(
        Channel, on_delete=models.CASCADE, related_name="deliveries", help_text="Channel."
    )
    group = models.ForeignKey(
        AlertGroup,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="deliveries",
        help_text="The alert group notified (empty for digests and tests).",
    )
    idempotency_key = models.CharField(
        max_length=120, unique=True, help_text="Deterministic: one message per group look."
    )
    status = models.CharField(
        max_length=10,
        choices=DeliveryStatus.choices,
        default=DeliveryStatus.PENDING,
        help_text="pending, sending, succeeded, failed, merged.",
    )
    notification = models.JSONField(help_text="What is sent (alerts, counts, language).")
    fingerprints = models.JSONField(default=list, help_text="Alerts it stands for.")
    merged_into = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="merged",
        help_text="The digest that carried it during a storm.",
    )
    attempts = models.PositiveIntegerField(default=0, help_text="Send attempts so far.")
    status_code = models.PositiveIntegerField(
        null=True, blank=True, help_text="HTTP status of the last attempt."
    )
    latency_ms = models.FloatField(null=True, blank=True, help_text="Of the last attempt.")
    error = models.TextField(blank=True, help_text="Last error, if any.")
    response = models.TextField(blank=True, help_text="Start of the platform's answer.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True, help_text="Queued.")
    next_attempt_at = models.DateTimeField(db_index=True, help_text="Not sent before this.")
    sent_at = models.DateTimeField(null=True, blank=True, db_index=True, help_text="Delivered.")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["channel", "status", "next_attempt_at"])]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"delivery {self.pk} to {self.channel_id}: {self.status}"


class Comparison(models.TextChoices):
    GT = ">", "above"
    GE = ">=", "at or above"
    LT = "<", "below"
    LE = "<=", "at or below"


class AlertRule(models.Model):
    """A threshold on a catalogue signal of a deployment (or on a PromQL or LogQL
    expression), which fires after the condition has held for ``for_s``."""

    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, related_name="alert_rules", help_text="Owning team."
    )
    name = models.CharField(max_length=100, help_text="Becomes the alertname label.")
    deployment = models.ForeignKey(
        Deployment,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="alert_rules",
        help_text="One deployment (empty: every deployment of the team).",
    )
    signal = models.CharField(
        max_length=64, blank=True, help_text="A metric catalogue signal (or give promql)."
    )
    promql = models.TextField(
        blank=True, help_text="Instead of a signal: PromQL; every series it returns is checked."
    )
    logql = models.TextField(
        blank=True,
        help_text="Instead of a signal: a LogQL metric query over the team's logs (e.g. "
        'sum by (deployment) (count_over_time({namespace="llm"} |= "CUDA out of memory" '
        "[5m]))); every series it returns is checked.",
    )
    comparison = models.CharField(
        max_length=2, choices=Comparison.choices, default=">", help_text="> >= < <=."
    )
    threshold = models.FloatField(help_text="Compared with the value.")
    for_s = models.PositiveIntegerField(default=300, help_text="Must hold this long.")
    severity = models.CharField(
        max_length=16, choices=Severity.choices, default="warning", help_text="Severity label."
    )
    labels = models.JSONField(default=dict, blank=True, help_text="Extra labels.")
    summary = models.CharField(
        max_length=500, blank=True, help_text="Summary; {value} and {threshold} are filled in."
    )
    enabled = models.BooleanField(default=True, help_text="Off: not evaluated.")
    state = models.JSONField(
        default=dict, blank=True, editable=False, help_text="Pending-since per series."
    )

    class Meta:
        ordering = ["team", "name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from apps.metrics.catalogue import Signal

        sources = [bool(self.signal), bool(self.promql.strip()), bool(self.logql.strip())]
        if sources.count(True) != 1:
            raise ValidationError("give one of a signal, a PromQL or a LogQL expression")
        if self.logql.strip():
            from apps.logs.query import LogQLError, is_metric_query, parse_query

            try:
                query = parse_query(self.logql)
            except LogQLError as exc:
                raise ValidationError({"logql": str(exc)}) from exc
            if not is_metric_query(query):
                raise ValidationError(
                    {"logql": "a metric query is needed (e.g. count_over_time(...[5m])), "
                     "not a log query: a rule compares numbers"}
                )  # fmt: skip
        if self.signal and self.signal not in Signal.values:
            raise ValidationError(
                {"signal": f"unknown signal {self.signal!r}; use one of the metric catalogue"}
            )
        if not isinstance(self.labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.labels.items()
        ):
            raise ValidationError({"labels": "an object of strings"})
        if self.deployment_id and self.deployment and self.deployment.team_id != self.team_id:
            raise ValidationError({"deployment": "belongs to another team"})
