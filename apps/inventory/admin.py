from django.contrib import admin

from apps.audit.admin_mixins import AuditedModelAdmin

from .models import Cluster, Deployment, DeploymentReadiness, LLMModel


@admin.register(Cluster)
class ClusterAdmin(AuditedModelAdmin):
    list_display = ["name", "team", "kind", "default_namespace", "aws_region", "updated_at"]
    list_filter = ["kind", "team", "aws_credentials_source"]
    search_fields = ["name", "description", "aws_account_id"]
    list_select_related = ["team"]


@admin.register(LLMModel)
class LLMModelAdmin(AuditedModelAdmin):
    list_display = ["name", "version", "team", "parameter_count", "created_at"]
    list_filter = ["team"]
    search_fields = ["name", "version", "checksum"]
    list_select_related = ["team"]


class ReadinessInline(admin.StackedInline):
    model = DeploymentReadiness
    can_delete = False
    readonly_fields = ["updated_at", "updated_by"]


@admin.register(Deployment)
class DeploymentAdmin(AuditedModelAdmin):
    list_display = [
        "name",
        "team",
        "model",
        "framework",
        "target_kind",
        "gpu_type",
        "min_replicas",
        "max_replicas",
        "status",
        "is_ready",
    ]
    list_filter = ["status", "framework", "target_kind", "gpu_type", "team", "cluster"]
    search_fields = ["name", "description", "model__name", "target_name", "prometheus_selector"]
    list_select_related = ["team", "model", "cluster", "readiness"]
    autocomplete_fields = ["model", "cluster"]
    inlines = [ReadinessInline]

    @admin.display(boolean=True, description="Ready")
    def is_ready(self, obj: Deployment) -> bool:
        from .selectors import deployment_readiness

        return deployment_readiness(deployment=obj).ready
