from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest

from apps.audit.admin_mixins import AuditedModelAdmin

from .models import IngestToken, LogStream, TeamLogSettings
from .services import ingest_token_create, ingest_token_revoke


@admin.register(TeamLogSettings)
class TeamLogSettingsAdmin(AuditedModelAdmin):
    list_display = [
        "team",
        "retention_days",
        "ingest_lines_per_s",
        "ingest_bytes_per_s",
        "ingest_burst_s",
    ]
    list_select_related = ["team"]
    search_fields = ["team__slug"]


@admin.register(LogStream)
class LogStreamAdmin(admin.ModelAdmin):
    """Streams come from pushes and go with retention: read only here."""

    list_display = ["__str__", "team", "deployment", "first_seen_ns", "last_seen_ns"]
    list_filter = ["team"]
    list_select_related = ["team", "deployment"]
    search_fields = ["fingerprint", "deployment__name"]
    readonly_fields = [
        "team",
        "fingerprint",
        "labels",
        "deployment",
        "first_seen_ns",
        "last_seen_ns",
        "created_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(IngestToken)
class IngestTokenAdmin(admin.ModelAdmin):
    """Adding a token shows its secret once, in the confirmation message; the "revoke"
    action makes tokens unusable. Both go through the services, which audit them."""

    list_display = ["name", "team", "token_prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["team"]
    list_select_related = ["team"]
    search_fields = ["name", "token_prefix", "team__slug"]
    fields = [
        "team",
        "name",
        "token_prefix",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    readonly_fields = ["token_prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [*self.readonly_fields, "team", "name"] if obj is not None else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            return  # nothing of a token can be edited
        token, secret = ingest_token_create(team=obj.team, name=obj.name, actor=request.user)
        obj.pk = token.pk
        messages.warning(
            request,
            f"The ingest token {token.name} is {secret} — copy it now, it is not shown again.",
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Revoke the selected ingest tokens")
    def revoke(self, request: HttpRequest, queryset: Any) -> None:
        for token in queryset:
            ingest_token_revoke(token=token, actor=request.user)
