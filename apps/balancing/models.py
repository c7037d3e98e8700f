"""Balancing policies per deployment, the nginx gateways that front deployments, and what
each gateway reports it applied."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from apps.accounts.models import Team
from apps.inventory.models import Deployment

from .spec import Algorithm as SpecAlgorithm
from .spec import PolicySpec

gateway_name_validator = RegexValidator(
    r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
    "Lower-case letters, digits and '-', starting and ending with a letter or digit.",
)


class Algorithm(models.TextChoices):
    ROUND_ROBIN = SpecAlgorithm.ROUND_ROBIN.value, "Round robin"
    WEIGHTED_ROUND_ROBIN = SpecAlgorithm.WEIGHTED_ROUND_ROBIN.value, "Weighted round robin"
    LEAST_CONN = SpecAlgorithm.LEAST_CONN.value, "Least connections"
    IP_HASH = SpecAlgorithm.IP_HASH.value, "Client IP hash"
    CONSISTENT_HASH = SpecAlgorithm.CONSISTENT_HASH.value, "Consistent hash on a request key"
    RANDOM_TWO = SpecAlgorithm.RANDOM_TWO.value, "Random, best of two"


class ShedStatus(models.IntegerChoices):
    TOO_MANY_REQUESTS = 429, "429 Too Many Requests"
    SERVICE_UNAVAILABLE = 503, "503 Service Unavailable"


class BalancingPolicy(models.Model):
    """How a deployment's gateway upstream spreads, retries and limits requests. Checked
    by :func:`apps.balancing.spec.policy_errors` in the services before it is saved."""

    deployment = models.OneToOneField(
        Deployment, on_delete=models.CASCADE, related_name="balancing_policy"
    )
    algorithm = models.CharField(
        max_length=32,
        choices=Algorithm.choices,
        default=Algorithm.ROUND_ROBIN,
        help_text="How nginx picks a member for each request.",
    )
    hash_key = models.CharField(
        max_length=65,
        blank=True,
        default="",
        help_text="consistent_hash only: a request header (X-Session-Id) or an nginx variable "
        "($remote_addr).",
    )
    weights = models.JSONField(
        default=dict, blank=True, help_text='{"<pod name or address[:port]>": weight}.'
    )
    backups = models.JSONField(
        default=list, blank=True, help_text="Members used only when the others are unavailable."
    )
    max_fails = models.PositiveSmallIntegerField(
        default=1, help_text="Failed attempts within fail_timeout_s that mark a member down."
    )
    fail_timeout_s = models.PositiveIntegerField(
        default=10, help_text="Window of max_fails, and how long a failed member is skipped."
    )
    keepalive = models.PositiveIntegerField(default=32, help_text="Idle connections kept.")
    connect_timeout_s = models.PositiveIntegerField(
        default=5, help_text="Seconds to open a connection to a member."
    )
    read_timeout_s = models.PositiveIntegerField(
        default=600, help_text="Between two reads of a response: long for streamed tokens."
    )
    send_timeout_s = models.PositiveIntegerField(
        default=600, help_text="Between two writes of a request body to a member."
    )
    next_upstream_tries = models.PositiveSmallIntegerField(
        default=2, help_text="Most members one request may try (retries only when safe)."
    )
    next_upstream_timeout_s = models.PositiveIntegerField(
        default=10, help_text="Time within which a request may move to another member."
    )
    tenant_header = models.CharField(
        max_length=64, default="X-Tenant", help_text="Request header naming the tenant."
    )
    priority_header = models.CharField(
        max_length=64,
        default="X-Priority",
        help_text="Request header with the priority class that shedding compares.",
    )
    limit_req_rate = models.CharField(
        max_length=16, blank=True, default="", help_text="Per tenant, e.g. 10r/s; empty: none."
    )
    limit_req_burst = models.PositiveIntegerField(
        default=0, help_text="Requests a tenant may exceed limit_req_rate by at once."
    )
    shed_status = models.PositiveSmallIntegerField(
        choices=ShedStatus.choices,
        default=ShedStatus.TOO_MANY_REQUESTS,
        help_text="Status of a shed request: 429 or 503.",
    )
    retry_after_s = models.PositiveIntegerField(
        default=5, help_text="Retry-After of shed and maintenance answers."
    )
    created_at = models.DateTimeField(auto_now_add=True, help_text="Created.")
    updated_at = models.DateTimeField(auto_now=True, help_text="Last change.")

    class Meta:
        verbose_name_plural = "balancing policies"

    def __str__(self) -> str:
        return f"{self.deployment} ({self.algorithm})"

    @property
    def team_id(self) -> int:
        return self.deployment.team_id

    def spec(self) -> PolicySpec:
        return PolicySpec(**{name: getattr(self, name) for name in PolicySpec.__dataclass_fields__})


class Gateway(models.Model):
    """An nginx host fronting some of the team's deployments on one port; its agent
    fetches the rendered configuration and reports what it applied."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="gateways")
    name = models.CharField(
        max_length=63,
        validators=[gateway_name_validator],
        help_text="Unique in the team; the agent fetches /api/v1/balancing/gateways/<name>/config.",
    )
    deployments: models.ManyToManyField[Deployment, GatewayDeployment] = models.ManyToManyField(
        Deployment,
        related_name="gateways",
        blank=True,
        help_text="In order: the first one also answers on '/'.",
        through="GatewayDeployment",
    )
    listen_address = models.GenericIPAddressField(
        protocol="IPv4",
        null=True,
        blank=True,
        help_text="IPv4 address nginx listens on for the deployments' traffic; empty: every "
        "address of the host.",
    )
    listen_port = models.PositiveIntegerField(
        default=8080,
        validators=[MinValueValidator(1), MaxValueValidator(65535)],
        help_text="Port nginx listens on for the deployments' traffic.",
    )
    last_seen_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When its agent last fetched the configuration (a 304 counts): a gateway "
        "seen within BALANCING_GATEWAY_STALE_S is one a drain waits for.",
    )
    created_at = models.DateTimeField(auto_now_add=True, help_text="Created.")
    updated_at = models.DateTimeField(auto_now=True, help_text="Last change.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="balancing_gateway_team_name")
        ]

    def __str__(self) -> str:
        return self.name


class GatewayDeployment(models.Model):
    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE)
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["gateway", "deployment"], name="balancing_gateway_deployment_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.gateway_id}#{self.position}: {self.deployment_id}"


class ReportResult(models.TextChoices):
    APPLIED = "applied", "Applied"
    INVALID = "invalid", "Refused by nginx -t (last good kept)"
    FAILED = "failed", "Reload failed"


class GatewayReport(models.Model):
    """What a gateway's agent applied (or failed to), as it says."""

    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="reports")
    version = models.CharField(max_length=64, help_text="sha256 of the configuration text.")
    result = models.CharField(
        max_length=16, choices=ReportResult.choices, help_text="What applying it gave."
    )
    error = models.TextField(blank=True, default="", help_text="Why it failed, if it did.")
    applied_at = models.DateTimeField(help_text="When the agent applied it (its clock).")
    received_at = models.DateTimeField(auto_now_add=True, help_text="When the report came.")

    class Meta:
        indexes = [models.Index(fields=["gateway", "-received_at"])]

    def __str__(self) -> str:
        return f"{self.gateway} {self.version[:12]} {self.result}"


class DrainingMember(models.Model):
    """A member chosen for removal: rendered out of its deployment's upstreams (no new
    requests) while the requests it serves finish, until the scale-down that removes it
    ends or ``expires_at`` passes (a worker that died mid-drain does not keep it out)."""

    deployment = models.ForeignKey(
        Deployment, on_delete=models.CASCADE, related_name="draining_members"
    )
    name = models.CharField(max_length=253, help_text="Pod or instance id of the member.")
    endpoint = models.CharField(
        max_length=300, blank=True, default="", help_text="address:port when chosen."
    )
    scale_action_id = models.BigIntegerField(
        null=True, blank=True, help_text="The scale action draining it, if any."
    )
    started_at = models.DateTimeField(auto_now_add=True, help_text="When the drain began.")
    expires_at = models.DateTimeField(help_text="After this it counts as a member again.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["deployment", "name"], name="balancing_draining_member_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.deployment_id}: {self.name} draining"
