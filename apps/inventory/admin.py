from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from apps.audit.admin_mixins import AuditedModelAdmin

from .credentials import cluster_process_identity
from .models import CLUSTER_CONNECTION_FIELDS, Cluster, Deployment, DeploymentReadiness, LLMModel
from .services import cluster_credentials_merge


class ClusterAdminForm(forms.ModelForm):
    class Meta:
        model = Cluster
        # The stored secret is set through the API only (write-only there, never shown here).
        fields = [
            "team",
            "name",
            "kind",
            "description",
            "in_cluster",
            *CLUSTER_CONNECTION_FIELDS,
            "prometheus_url",
            "labels",
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        # As in the API: choosing another source drops the stored secret it replaces.
        try:
            merged = cluster_credentials_merge(
                instance=self.instance if self.instance.pk else None, attrs=cleaned, secrets={}
            )
        except ValidationError as exc:
            raise ValidationError(exc.messages) from exc
        self.instance.credentials = merged["credentials"]
        if "credentials_changed_at" in merged:
            self.instance.credentials_changed_at = merged["credentials_changed_at"]
        return cleaned


@admin.register(Cluster)
class ClusterAdmin(AuditedModelAdmin):
    list_display = ["name", "team", "kind", "default_namespace", "aws_region", "updated_at"]
    list_filter = ["kind", "team", "aws_credentials_source", "process_identity_approved"]
    search_fields = ["name", "description", "aws_account_id"]
    list_select_related = ["team"]
    form = ClusterAdminForm
    readonly_fields = ["process_identity_approved", "credentials_changed_at"]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # Saving here approves the control plane's own identity only for a superuser; any
        # other save of such a cluster withdraws the approval (the actuators then refuse).
        obj.process_identity_approved = bool(
            getattr(request.user, "is_superuser", False) and cluster_process_identity(obj)
        )
        super().save_model(request, obj, form, change)


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
