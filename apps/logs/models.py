"""Log streams and per-team log settings.

The entries themselves are not a Django model. Their table has a different shape on each
database (on PostgreSQL a parent table partitioned by day with an expression unique index
and a trigram index, on SQLite a plain table), no surrogate primary key (one would cost
eight bytes and an index entry per line, and a partitioned table's keys must include the
partition column anyway), and only :class:`apps.logs.storage.sql.SqlLogStore` reads or
writes it, with SQL of its own. Migration ``0002_entries`` creates it with the statements of
the database it runs on (a ``RunPython`` that checks the vendor: ``RunSQL`` cannot, and an
unmanaged model in Django's state would suggest an ORM access that does not exist). Because
Django does not know the table, ``flush`` (and the test runner's flush after a
transactional test) leaves its rows alone: tests that commit entries remove them
themselves.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models

from apps.accounts.models import Team
from apps.inventory.models import Deployment


class LogStream(models.Model):
    """One label set of one team: what every entry points to.

    ``first_seen_ns`` and ``last_seen_ns`` bound the times of the stream's entries, rounded
    outward to the minute (so a busy stream's row is updated once a minute, not on every
    push); they are an outer bound, used to skip streams quickly, never as the answer to
    "has entries in this range"."""

    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, related_name="log_streams", help_text="Owning team."
    )
    fingerprint = models.CharField(
        max_length=64, help_text="sha256 of the canonical label set (stream_fingerprint)."
    )
    labels = models.JSONField(help_text="The stream's labels, name to value.")
    deployment = models.ForeignKey(
        Deployment,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="log_streams",
        help_text="The deployment whose label matchers matched when the stream first came.",
    )
    first_seen_ns = models.BigIntegerField(help_text="No entry is older (ns since the epoch).")
    last_seen_ns = models.BigIntegerField(help_text="No entry is newer (ns since the epoch).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "fingerprint"], name="logs_stream_unique")
        ]
        indexes = [models.Index(fields=["team", "last_seen_ns"], name="logs_stream_recent")]

    def __str__(self) -> str:
        pairs = ", ".join(f'{name}="{value}"' for name, value in sorted(self.labels.items()))
        return f"{{{pairs}}}"


class TeamLogSettings(models.Model):
    """A team's choices about its logs; a team without a row uses the global settings."""

    team = models.OneToOneField(
        Team, on_delete=models.CASCADE, related_name="log_settings", help_text="The team."
    )
    retention_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Days log entries are kept; empty means LOGS_RETENTION_DAYS.",
    )
    ingest_lines_per_s = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Lines per second the team may push (0: no limit); empty means "
        "LOGS_INGEST_LINES_PER_S.",
    )
    ingest_bytes_per_s = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text="Bytes of lines per second the team may push (0: no limit); empty means "
        "LOGS_INGEST_BYTES_PER_S.",
    )
    ingest_burst_s = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.1)],
        help_text="Seconds of the rates a burst may use at once; empty means LOGS_INGEST_BURST_S.",
    )

    class Meta:
        verbose_name = "team log settings"
        verbose_name_plural = "team log settings"

    def __str__(self) -> str:
        return f"log settings of {self.team}"


class IngestToken(models.Model):
    """A credential log shippers push with, for one team: the team of every line pushed
    with it, whatever the labels or an ``X-Scope-OrgID`` header say. Sent as a bearer token
    or as the password of basic auth; only its hash is kept."""

    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, related_name="log_ingest_tokens", help_text="Owning team."
    )
    name = models.SlugField(max_length=64, help_text="What it is for (unique in the team).")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    token_prefix = models.CharField(
        max_length=16, editable=False, help_text="Start of the token, to recognise it."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True, help_text="Created.")
    last_used_at = models.DateTimeField(null=True, blank=True, help_text="Last accepted push.")
    revoked_at = models.DateTimeField(null=True, blank=True, help_text="Revoked (unusable).")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="logs_ingest_token_name")
        ]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.name}" if self.team_id else self.name
