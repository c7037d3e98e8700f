from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.audit.admin_mixins import AuditedModelAdmin

from .models import LogStream, TeamLogSettings


@admin.register(TeamLogSettings)
class TeamLogSettingsAdmin(AuditedModelAdmin):
    list_display = ["team", "retention_days"]
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
