from django.contrib import admin

from apps.audit.admin_mixins import AuditedModelAdmin

from .models import CustomQuery, DeploymentMetrics, MetricSample


@admin.register(DeploymentMetrics)
class DeploymentMetricsAdmin(admin.ModelAdmin):
    list_display = ["deployment", "status", "reason", "collected_at"]
    list_filter = ["status", "deployment__team"]
    search_fields = ["deployment__name", "reason"]
    list_select_related = ["deployment"]
    readonly_fields = [
        "deployment",
        "status",
        "reason",
        "observations",
        "collected_at",
        "sampled_at",
    ]


@admin.register(MetricSample)
class MetricSampleAdmin(admin.ModelAdmin):
    list_display = ["deployment", "signal", "ts", "value"]
    list_filter = ["signal"]
    search_fields = ["deployment__name"]
    list_select_related = ["deployment"]
    date_hierarchy = "ts"


@admin.register(CustomQuery)
class CustomQueryAdmin(AuditedModelAdmin):
    list_display = ["deployment", "signal", "promql", "created_at"]
    list_filter = ["signal"]
    search_fields = ["deployment__name", "promql"]
    list_select_related = ["deployment"]
