from django.contrib import admin

from apps.audit.admin_mixins import AuditedModelAdmin

from .models import AutoscalingPolicy, DecisionRecord, DeploymentControl, GlobalSwitch, ScaleAction


@admin.register(AutoscalingPolicy)
class AutoscalingPolicyAdmin(AuditedModelAdmin):
    list_display = [
        "deployment",
        "mode",
        "capacity_initial_per_replica",
        "capacity_latency_slo_s",
        "panic_enabled",
        "scale_to_zero_enabled",
        "updated_at",
    ]
    list_filter = ["mode", "panic_enabled", "scale_to_zero_enabled"]
    search_fields = ["deployment__name"]
    list_select_related = ["deployment"]


@admin.register(DecisionRecord)
class DecisionRecordAdmin(admin.ModelAdmin):
    list_display = ["at", "deployment", "current_replicas", "desired_replicas", "rule", "dry_run"]
    list_filter = ["rule", "dry_run"]
    search_fields = ["deployment__name", "reason"]
    list_select_related = ["deployment"]
    date_hierarchy = "at"


@admin.register(ScaleAction)
class ScaleActionAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "deployment",
        "from_replicas",
        "to_replicas",
        "status",
        "attempts",
    ]
    list_filter = ["status"]
    search_fields = ["deployment__name", "idempotency_key", "error"]
    list_select_related = ["deployment"]


@admin.register(DeploymentControl)
class DeploymentControlAdmin(AuditedModelAdmin):
    list_display = ["deployment", "paused", "pinned_replicas", "pinned_until", "last_applied"]
    list_filter = ["paused"]
    search_fields = ["deployment__name"]


@admin.register(GlobalSwitch)
class GlobalSwitchAdmin(AuditedModelAdmin):
    list_display = ["name", "enabled", "changed_at", "changed_by"]
