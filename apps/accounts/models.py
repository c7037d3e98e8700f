"""Teams, memberships with their roles, and API tokens (stored as hashes). Role checks are
in :mod:`.selectors`, token issue and revocation in :mod:`.services`."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

slug_validator = RegexValidator(
    r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
    "Use 1-63 lowercase letters, digits and hyphens, starting and ending with a letter or digit.",
)


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    OPERATOR = "operator", "Operator"
    ADMIN = "admin", "Admin"


# What each role may do, in increasing order: viewers read, operators change the team's
# inventory and operations, admins also manage the team and its members.
ROLE_RANK = {Role.VIEWER: 1, Role.OPERATOR: 2, Role.ADMIN: 3}


class Team(models.Model):
    name = models.CharField(max_length=100, unique=True, help_text="Human-readable team name.")
    slug = models.CharField(
        max_length=63,
        unique=True,
        validators=[slug_validator],
        help_text="Short unique identifier used in URLs and labels (DNS-label style).",
    )
    description = models.TextField(blank=True, default="", help_text="What the team runs.")
    created_at = models.DateTimeField(auto_now_add=True, help_text="When the team was created.")

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="memberships",
        help_text="The member.",
    )
    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, related_name="memberships", help_text="The team."
    )
    role = models.CharField(
        max_length=16,
        choices=Role.choices,
        default=Role.VIEWER,
        help_text="viewer: read only; operator: change the team's objects; "
        "admin: also manage the team and its members.",
    )
    created_at = models.DateTimeField(auto_now_add=True, help_text="When the member joined.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "team"], name="accounts_membership_unique")
        ]
        ordering = ["team__slug", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} as {self.role}"


class ApiToken(models.Model):
    """A bearer token for the REST API. Only a SHA-256 hash of the secret is stored: the
    secret is shown once, when the token is created."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="api_tokens",
        help_text="The user the token acts as.",
    )
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. 'ci-pipeline'.")
    prefix = models.CharField(
        max_length=16, db_index=True, editable=False, help_text="First characters of the token."
    )
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True, help_text="When the token was created.")
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="When the token stops working; empty means never."
    )
    revoked_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When the token was revoked, if it was."
    )
    last_used_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="Last successful use (minute precision)."
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and not self.is_expired
