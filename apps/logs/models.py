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

    class Meta:
        verbose_name = "team log settings"
        verbose_name_plural = "team log settings"

    def __str__(self) -> str:
        return f"log settings of {self.team}"
