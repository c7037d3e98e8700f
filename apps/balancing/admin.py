"""Admin for balancing policies (saved through the services: validated and audited),
gateways with the deployments they front, and the agents' reports (read only)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from apps.toggles.admin import DeletedThroughServiceMixin, ReadOnlyAdmin, service_errors_shown

from .models import BalancingPolicy, Gateway, GatewayDeployment, GatewayReport
from .services import POLICY_FIELDS, policy_check, policy_create, policy_delete, policy_update
from .spec import PolicySpec


class BalancingPolicyAdminForm(forms.ModelForm):
    class Meta:
        model = BalancingPolicy
        fields = ["deployment", *POLICY_FIELDS]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        given = {name: data[name] for name in POLICY_FIELDS if name in data}
        try:
            policy_check(spec=replace(PolicySpec(), **given))
        except ValidationError as exc:
            service_errors_shown(self, exc)
        return data


@admin.register(BalancingPolicy)
class BalancingPolicyAdmin(DeletedThroughServiceMixin, admin.ModelAdmin):
    form = BalancingPolicyAdminForm
    list_display = ["deployment", "algorithm", "hash_key", "limit_req_rate", "updated_at"]
    list_filter = ["algorithm"]
    list_select_related = ["deployment"]
    search_fields = ["deployment__name"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["deployment"] if obj is not None else []

    def save_model(
        self, request: HttpRequest, obj: BalancingPolicy, form: Any, change: bool
    ) -> None:
        data = form.cleaned_data
        fields = {name: data[name] for name in POLICY_FIELDS if name in data}
        if change:
            stored = BalancingPolicy.objects.get(pk=obj.pk)
            saved = policy_update(policy=stored, actor=request.user, **fields)
        else:
            saved = policy_create(deployment=data["deployment"], actor=request.user, **fields)
        obj.pk = saved.pk
        obj.refresh_from_db()

    def delete_service(self, obj: BalancingPolicy, actor: Any) -> None:
        policy_delete(policy=obj, actor=actor)


class GatewayDeploymentInline(admin.TabularInline):
    model = GatewayDeployment
    extra = 1
    fields = ["deployment", "position"]


@admin.register(Gateway)
class GatewayAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "listen_address", "listen_port", "updated_at"]
    list_filter = ["team"]
    search_fields = ["name", "team__slug"]
    inlines = [GatewayDeploymentInline]


@admin.register(GatewayReport)
class GatewayReportAdmin(ReadOnlyAdmin):
    list_display = ["gateway", "version", "result", "applied_at", "received_at"]
    list_filter = ["result"]
    list_select_related = ["gateway"]
    search_fields = ["gateway__name", "version"]
