"""The toggles admin. Toggles, policies and the switch are changed through the services,
so an admin change is validated, audited, kept in the toggle's history and bumps the
team's version like an API change; transitions, history and gateway tokens are read only
(tokens are issued through the API, which shows the secret once)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from apps.audit.admin_mixins import AuditedModelAdmin

from .models import (
    DegradationPolicy,
    DegradationState,
    DegradationSwitch,
    DegradationTransition,
    GatewayToken,
    Toggle,
    ToggleChange,
)
from .presets import PRESETS, Preset
from .services import (
    UPDATABLE,
    degradation_switch_set,
    policy_clean,
    policy_delete,
    toggle_clean,
    toggle_create,
    toggle_delete,
    toggle_update,
)

ADMIN_REASON = "changed in the admin"


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written by the application: listed and shown, never edited here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DeletedThroughServiceMixin:
    """Deletes go through ``delete_service`` (audited, with what the service undoes first);
    the object's history rows (changes, transitions, state) go with it: those are read only
    in the admin, which must not refuse the delete for that."""

    def delete_service(self, obj: Any, actor: Any) -> None:
        raise NotImplementedError

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self.delete_service(obj, request.user)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for obj in queryset:
            self.delete_service(obj, request.user)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        deleted, counts, _, protected = super().get_deleted_objects(objs, request)  # type: ignore[misc]
        return deleted, counts, set(), protected


def service_errors_shown(form: forms.BaseForm, exc: ValidationError) -> None:
    """A service's field errors on the form: on the field when the form shows it, else
    above the form."""
    for field, messages in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, messages)


class ToggleAdminForm(forms.ModelForm):
    reason = forms.CharField(required=False, help_text="Why (kept in the toggle's history).")

    class Meta:
        model = Toggle
        fields = ["team", "deployment", "key", "description", "preset", "value_type", "enabled",
                  "value", "off_value", "rules"]  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("value_type", "value", "off_value"):
            if name in self.fields:
                self.fields[name].required = False

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        instance: Toggle = self.instance
        adding = instance.pk is None
        team = data.get("team") if adding else instance.team
        if team is None:
            return data
        preset = data.get("preset") if adding else instance.preset
        value = data.get("value")
        if value is None and preset in PRESETS:
            value = PRESETS[Preset(preset)].off_value
        try:
            fields = toggle_clean(
                team=team,
                deployment=data.get("deployment") if adding else instance.deployment,
                preset=preset or "",
                value_type=data.get("value_type") if adding else instance.value_type,
                value=value,
                off_value=data.get("off_value"),
                rules=data.get("rules"),
            )
        except ValidationError as exc:
            service_errors_shown(self, exc)
            return data
        data.update({k: v for k, v in fields.items() if k in self.fields})
        return data


@admin.register(Toggle)
class ToggleAdmin(DeletedThroughServiceMixin, admin.ModelAdmin):
    form = ToggleAdminForm
    list_display = ["key", "team", "deployment", "preset", "enabled", "value", "override_level"]
    list_filter = ["preset", "enabled", "team"]
    list_select_related = ["team", "deployment"]
    search_fields = ["key", "description", "deployment__name", "team__slug"]
    readonly_fields = ["override_value", "override_level", "override_source", "created_at",
                       "updated_at"]  # fmt: skip

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fixed = ["team", "deployment", "key", "preset", "value_type"] if obj is not None else []
        return [*fixed, *self.readonly_fields]

    def save_model(self, request: HttpRequest, obj: Toggle, form: Any, change: bool) -> None:
        data = form.cleaned_data
        reason = data.get("reason") or ADMIN_REASON
        if change:
            stored = Toggle.objects.get(pk=obj.pk)
            changes = {name: data[name] for name in UPDATABLE if name in data}
            saved = toggle_update(toggle=stored, actor=request.user, reason=reason, **changes)
        else:
            saved = toggle_create(
                team=data["team"], deployment=data.get("deployment"), key=data["key"],
                actor=request.user, preset=data["preset"], value_type=data.get("value_type"),
                value=data.get("value"), off_value=data.get("off_value"),
                rules=data.get("rules"), enabled=data.get("enabled", False),
                description=data.get("description", ""), reason=reason,
            )  # fmt: skip
        obj.pk = saved.pk
        obj.refresh_from_db()

    def delete_service(self, obj: Toggle, actor: Any) -> None:
        toggle_delete(toggle=obj, actor=actor)


@admin.register(ToggleChange)
class ToggleChangeAdmin(ReadOnlyAdmin):
    list_display = ["at", "toggle", "version", "actor", "enabled", "value", "level", "reason"]
    list_select_related = ["toggle__deployment"]
    search_fields = ["toggle__key", "actor", "reason"]
    date_hierarchy = "at"


class DegradationPolicyAdminForm(forms.ModelForm):
    class Meta:
        model = DegradationPolicy
        fields = ["team", "deployment", "name", "enabled", "dry_run", "triggers", "levels",
                  "min_hold_s", "clear_for_s", "max_duration_s"]  # fmt: skip

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        team, deployment = data.get("team"), data.get("deployment")
        if team is None or deployment is None:
            return data
        try:
            policy_clean(team=team, deployment=deployment, triggers=data.get("triggers"),
                         levels=data.get("levels"))  # fmt: skip
        except ValidationError as exc:
            service_errors_shown(self, exc)
        return data


class DegradationStateInline(admin.StackedInline):
    model = DegradationState
    can_delete = False
    readonly_fields = ["level", "level_since", "degraded_since", "triggered_since",
                       "clear_since", "expired", "pinned_level", "pinned_by", "pin_reason",
                       "pinned_until", "evaluated_at"]  # fmt: skip

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(DegradationPolicy)
class DegradationPolicyAdmin(DeletedThroughServiceMixin, AuditedModelAdmin):
    """Pins and levels are set through the API or the console (with a reason)."""

    form = DegradationPolicyAdminForm
    list_display = ["name", "team", "deployment", "enabled", "dry_run", "level"]
    list_filter = ["enabled", "dry_run", "team"]
    list_select_related = ["team", "deployment", "state"]
    search_fields = ["name", "deployment__name"]
    inlines = [DegradationStateInline]

    def get_inlines(self, request: HttpRequest, obj: Any) -> list[Any]:
        return self.inlines if obj is not None else []  # no state before the policy exists

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # The overrides a policy sets name it: renaming or moving it would orphan them.
        return ["team", "deployment", "name"] if obj is not None else []

    @admin.display(description="Level")
    def level(self, obj: DegradationPolicy) -> int:
        try:
            return obj.state.level
        except DegradationState.DoesNotExist:
            return 0

    def delete_service(self, obj: DegradationPolicy, actor: Any) -> None:
        policy_delete(policy=obj, actor=actor)


@admin.register(DegradationTransition)
class DegradationTransitionAdmin(ReadOnlyAdmin):
    list_display = ["at", "policy", "from_level", "to_level", "dry_run", "actor", "reason"]
    list_filter = ["dry_run", "policy__team"]
    list_select_related = ["policy"]
    search_fields = ["policy__name", "reason", "actor"]
    date_hierarchy = "at"


@admin.register(GatewayToken)
class GatewayTokenAdmin(ReadOnlyAdmin):
    """Issued and revoked through the API (the secret is shown once, there)."""

    list_display = ["name", "team", "token_prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["team"]
    list_select_related = ["team"]
    search_fields = ["name", "token_prefix", "team__slug"]
    exclude = ["token_hash"]


class DegradationSwitchForm(forms.ModelForm):
    reason = forms.CharField(help_text="Why automatic degradation is switched (audited).")

    class Meta:
        model = DegradationSwitch
        fields = ["automatic", "reason"]


@admin.register(DegradationSwitch)
class DegradationSwitchAdmin(admin.ModelAdmin):
    """The one switch row: off stops every policy of every team from changing a level."""

    form = DegradationSwitchForm
    list_display = ["__str__", "changed_by", "changed_at", "reason"]
    readonly_fields = ["changed_by", "changed_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not DegradationSwitch.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: DegradationSwitch, form: Any, change: bool
    ) -> None:
        saved = degradation_switch_set(automatic=form.cleaned_data["automatic"],
                                       actor=request.user,
                                       reason=form.cleaned_data["reason"])  # fmt: skip
        obj.pk = saved.pk
