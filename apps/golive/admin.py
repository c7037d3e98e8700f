"""Admin for the go-live records. All read only: a stage moves, a gate is overridden and a
load test starts through the API or the console, where the gate and the audit apply."""

from __future__ import annotations

from django.contrib import admin

from apps.toggles.admin import ReadOnlyAdmin

from .models import ArtifactReport, CheckResult, DeploymentStage, GateOverride, LoadTestRun


@admin.register(DeploymentStage)
class DeploymentStageAdmin(ReadOnlyAdmin):
    list_display = ["deployment", "stage", "require_tls", "changed_by", "changed_at"]
    list_filter = ["stage", "require_tls"]
    list_select_related = ["deployment", "changed_by"]
    search_fields = ["deployment__name"]


@admin.register(CheckResult)
class CheckResultAdmin(ReadOnlyAdmin):
    list_display = ["deployment", "key", "status", "required", "message", "checked_at"]
    list_filter = ["status", "group", "required"]
    list_select_related = ["deployment"]
    search_fields = ["deployment__name", "key", "message"]
    date_hierarchy = "checked_at"


@admin.register(ArtifactReport)
class ArtifactReportAdmin(ReadOnlyAdmin):
    list_display = ["deployment", "digest", "reported_by", "reported_at"]
    list_select_related = ["deployment", "reported_by"]
    search_fields = ["deployment__name", "digest"]


@admin.register(LoadTestRun)
class LoadTestRunAdmin(ReadOnlyAdmin):
    list_display = [
        "deployment",
        "mode",
        "status",
        "passed",
        "capacity_rps_per_replica",
        "created_by",
        "created_at",
    ]
    list_filter = ["mode", "status", "passed"]
    list_select_related = ["deployment", "created_by"]
    search_fields = ["deployment__name"]


@admin.register(GateOverride)
class GateOverrideAdmin(ReadOnlyAdmin):
    list_display = ["deployment", "target", "actor", "reason", "created_at"]
    list_filter = ["target"]
    list_select_related = ["deployment", "actor"]
    search_fields = ["deployment__name", "reason"]
