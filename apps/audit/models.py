"""The audit log: one append-only row per change to an object, written by
:func:`apps.audit.services.audited`."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditAction(models.TextChoices):
    CREATE = "create", "Create"
    UPDATE = "update", "Update"
    DELETE = "delete", "Delete"
    ACTION = "action", "Action"


class AuditEntry(models.Model):
    """One change to one object. Rows are written once and never updated."""

    timestamp = models.DateTimeField(
        auto_now_add=True, db_index=True, help_text="When it happened."
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The user who made the change; empty for the system.",
    )
    actor_repr = models.CharField(
        max_length=150, help_text="The actor's username at the time (kept if the user is deleted)."
    )
    team = models.ForeignKey(
        "accounts.Team",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The team that owns the object, when it belongs to one.",
    )
    action = models.CharField(
        max_length=16, choices=AuditAction.choices, help_text="What was done."
    )
    verb = models.CharField(
        max_length=64,
        blank=True,
        default="",
        help_text="For action entries, which action (e.g. 'revoke', 'scale').",
    )
    object_type = models.CharField(
        max_length=100, db_index=True, help_text="app_label.model of the changed object."
    )
    object_id = models.CharField(
        max_length=64, db_index=True, help_text="Primary key of the object."
    )
    object_repr = models.CharField(max_length=200, help_text="The object's name at the time.")
    changes = models.JSONField(
        default=dict,
        help_text="Field-level diff: {field: [old, new]}. Creates have old=null, deletes new=null.",
    )
    source = models.CharField(
        max_length=16, help_text="Where the change came from: api, admin, console or system."
    )
    source_ip = models.GenericIPAddressField(
        null=True, blank=True, help_text="Client address of the request."
    )
    request_id = models.CharField(
        max_length=128,
        blank=True,
        default="",
        db_index=True,
        help_text="Request id (X-Request-ID).",
    )

    class Meta:
        ordering = ["-timestamp", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"], name="audit_object_idx")]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return (
            f"{self.timestamp:%Y-%m-%d %H:%M:%S} {self.actor_repr} {self.action} {self.object_repr}"
        )
