"""Request and response shapes of the toggles API: toggles and their history, degradation
policies with their state and transitions, pins and the global switch. Validation of
values, rules, triggers and levels is the services' (:mod:`.services`); a
``django.core.exceptions.ValidationError`` they raise answers 400 naming the field."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.accounts.serializers import owning_team_field
from apps.api.serializers import NameFieldsMixin, TeamScopedRelatedField
from apps.inventory.models import Deployment

from .models import (
    DegradationPolicy,
    DegradationState,
    DegradationSwitch,
    DegradationTransition,
    Toggle,
    ToggleChange,
)
from .services import policy_clean

REASON_MAX = 1000
MAX_SECONDS = 30 * 86400  # hold, clear and degraded times: at most 30 days


def reason_field(*, required: bool, help_text: str) -> serializers.CharField:
    if required:
        return serializers.CharField(max_length=REASON_MAX, write_only=True, help_text=help_text)
    return serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=REASON_MAX,
        write_only=True,
        help_text=help_text,
    )


@extend_schema_field(OpenApiTypes.ANY)
class AnyJsonField(serializers.JSONField):
    """Any JSON value (a boolean, number, string, object or list, per the toggle's type)."""


def served_value(toggle: Toggle) -> Any:
    """What a caller no rule matches gets: the override, else the value when on, else the
    off value."""
    if toggle.overridden:
        return toggle.override_value
    return toggle.value if toggle.enabled else toggle.off_value


class ToggleSerializer(serializers.ModelSerializer[Toggle]):
    team = owning_team_field()
    deployment = TeamScopedRelatedField(
        queryset=Deployment.objects.all(),
        allow_null=True,
        required=False,
        help_text="Deployment (id) it applies to; null for the whole team.",
    )
    value = AnyJsonField(
        required=False,
        help_text="Served when on and no rule matches; a preset's off value if omitted.",
    )
    off_value = AnyJsonField(
        required=False,
        allow_null=True,
        help_text="Served when off; a preset fixes it (required for custom toggles).",
    )
    rules = serializers.JSONField(
        required=False,
        help_text="Targeting rules, first match wins: "
        '[{"conditions": [{"attribute", "op", "value"}], "value"}] or "split": '
        '[{"variant", "value", "weight"}] instead of "value"; ops eq, ne, in, not_in, '
        "matches (RE2), gt, ge, lt, le.",
    )
    value_type = serializers.ChoiceField(
        choices=Toggle._meta.get_field("value_type").choices,  # type: ignore[arg-type]
        required=False,
        help_text="boolean, number, string or object; a preset fixes it.",
    )
    served = serializers.SerializerMethodField(
        help_text="What a caller no rule matches gets now (override, value or off value)."
    )
    override_value = AnyJsonField(
        read_only=True, help_text="Value a degradation level or pin serves to everyone."
    )
    reason = reason_field(required=False, help_text="Why (kept in the toggle's history).")

    class Meta:
        model = Toggle
        fields = [
            "id",
            "team",
            "deployment",
            "key",
            "description",
            "preset",
            "value_type",
            "enabled",
            "value",
            "off_value",
            "rules",
            "served",
            "override_value",
            "override_level",
            "override_source",
            "reason",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "id",
            "override_value",
            "override_level",
            "override_source",
            "created_at",
            "updated_at",
        ]
        # Uniqueness of the key is the service's check (with a message naming the key).
        validators: list[Any] = []
        extra_kwargs = {
            "id": {"help_text": "Toggle id."},
            "description": {"help_text": "What it is for."},
            "override_level": {"help_text": "Degradation level serving the override, if any."},
            "override_source": {"help_text": "Who set the override (policy:<name>)."},
            "created_at": {"help_text": "Creation time."},
            "updated_at": {"help_text": "Last change."},
        }

    # Fixed at creation: a toggle moved to another scope or type would be another toggle.
    FIXED = ("team", "deployment", "key", "preset", "value_type")

    @extend_schema_field(OpenApiTypes.ANY)
    def get_served(self, obj: Toggle) -> Any:
        return served_value(obj)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.instance is not None:
            errors = {
                name: ["Fixed when the toggle is created; create another toggle instead."]
                for name in self.FIXED
                if name in attrs and attrs[name] != getattr(self.instance, name)
            }
            if errors:
                raise serializers.ValidationError(errors)
        elif "team" not in attrs:
            raise serializers.ValidationError({"team": ["This field is required."]})
        return attrs


class FlipSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(help_text="On (serve the value) or off (the off value).")
    reason = reason_field(required=True, help_text="Why; kept in the history and the audit log.")


class ToggleChangeSerializer(serializers.ModelSerializer[ToggleChange]):
    value = AnyJsonField(read_only=True, help_text="What an unmatched caller got after it.")

    class Meta:
        model = ToggleChange
        fields = ["id", "at", "version", "actor", "reason", "enabled", "value", "level"]
        read_only_fields = fields
        extra_kwargs = {
            "id": {"help_text": "Change id."},
            "at": {"help_text": "When."},
            "version": {"help_text": "Team toggle version after the change."},
            "actor": {"help_text": "User name, or policy:<name>."},
            "reason": {"help_text": "Why."},
            "enabled": {"help_text": "On (or overridden) after the change."},
            "level": {"help_text": "Degradation level serving it, if any."},
        }


class DegradationStateSerializer(serializers.ModelSerializer[DegradationState]):
    class Meta:
        model = DegradationState
        fields = [
            "level",
            "level_since",
            "degraded_since",
            "expired",
            "pinned_level",
            "pinned_by",
            "pin_reason",
            "pinned_until",
            "evaluated_at",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "level": {"help_text": "Current level (0: not degraded)."},
            "level_since": {"help_text": "Since when at this level."},
            "degraded_since": {"help_text": "Since when above level 0."},
            "expired": {"help_text": "Max duration reached; held at 0 until triggers clear."},
            "pinned_level": {"help_text": "Level held by a pin, if pinned."},
            "pinned_by": {"help_text": "Who pinned it."},
            "pin_reason": {"help_text": "Why it is pinned."},
            "pinned_until": {"help_text": "When the pin ends by itself; null: until unpinned."},
            "evaluated_at": {"help_text": "Last evaluation of the triggers."},
        }


class DegradationPolicySerializer(NameFieldsMixin, serializers.ModelSerializer[DegradationPolicy]):
    team: serializers.PrimaryKeyRelatedField[Any] = serializers.PrimaryKeyRelatedField(
        read_only=True, help_text="Owning team (id): the deployment's."
    )
    deployment = TeamScopedRelatedField(
        queryset=Deployment.objects.all(), help_text="Deployment (id) whose toggles it moves."
    )
    triggers = serializers.JSONField(
        help_text='Conditions, any of which degrades: [{"kind": "slo_state", "slo": id, '
        '"states": [...]}, {"kind": "alert", "matchers": [...]}, {"kind": '
        '"autoscaler_at_max"}, {"kind": "signal", "signal", "op", "threshold"}].'
    )
    levels = serializers.JSONField(
        help_text='Ordered levels, level 1 first: [{"name", "set": {toggle key: value}}]; '
        "a level keeps what the levels below it set."
    )
    state = serializers.SerializerMethodField(help_text="Where it stands; null before any run.")

    class Meta:
        model = DegradationPolicy
        fields = [
            "id",
            "team",
            "deployment",
            "name",
            "enabled",
            "dry_run",
            "triggers",
            "levels",
            "min_hold_s",
            "clear_for_s",
            "max_duration_s",
            "state",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]
        validators: list[Any] = []
        extra_kwargs = {
            "id": {"help_text": "Policy id."},
            "name": {"help_text": "Name, unique in the team (fixed once created)."},
            "enabled": {"help_text": "Evaluated by the automation."},
            "dry_run": {"help_text": "Record the transitions it would make, change nothing."},
            "min_hold_s": {
                "help_text": "Least seconds at a level before moving again.",
                "max_value": MAX_SECONDS,
            },
            "clear_for_s": {
                "help_text": "Seconds every trigger must be clear to step down.",
                "max_value": MAX_SECONDS,
            },
            "max_duration_s": {
                "help_text": "Longest degraded time (s); then back to 0.",
                "max_value": MAX_SECONDS,
            },
            "created_at": {"help_text": "Creation time."},
            "updated_at": {"help_text": "Last change."},
        }

    @extend_schema_field(DegradationStateSerializer(allow_null=True))
    def get_state(self, obj: DegradationPolicy) -> dict[str, Any] | None:
        try:
            return DegradationStateSerializer(obj.state).data
        except DegradationState.DoesNotExist:
            return None

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        instance: DegradationPolicy | None = self.instance
        deployment: Deployment = attrs.get("deployment") or instance.deployment  # type: ignore[union-attr]
        if instance is not None:
            if deployment.pk != instance.deployment_id:
                raise serializers.ValidationError(
                    {"deployment": ["A policy stays with its deployment; create another."]}
                )
            if "name" in attrs and attrs["name"] != instance.name:
                # Its toggles' overrides name it (override_source "policy:<name>").
                raise serializers.ValidationError(
                    {"name": ["Fixed once created; create another policy instead."]}
                )
        name = attrs.get("name", instance.name if instance else "")
        clash = DegradationPolicy.objects.filter(team_id=deployment.team_id, name=name)
        if instance is not None:
            clash = clash.exclude(pk=instance.pk)
        if clash.exists():
            raise serializers.ValidationError({"name": ["The team already has a policy named so."]})
        triggers = attrs.get("triggers", instance.triggers if instance else [])
        levels = attrs.get("levels", instance.levels if instance else [])
        # A django ValidationError raised in validate() answers 400 per field (DRF maps it).
        _, parsed_levels = policy_clean(
            team=deployment.team, deployment=deployment, triggers=triggers, levels=levels
        )
        if instance is not None:
            level = (
                DegradationState.objects.filter(policy=instance)
                .values_list("level", flat=True)
                .first()
                or 0
            )
            if level > len(parsed_levels):
                raise serializers.ValidationError(
                    {
                        "levels": [
                            f"The policy is at level {level}; pin it to a lower level "
                            "before removing that level."
                        ]
                    }
                )
        attrs["team"] = deployment.team
        return attrs


class DegradationTransitionSerializer(serializers.ModelSerializer[DegradationTransition]):
    class Meta:
        model = DegradationTransition
        fields = ["id", "at", "from_level", "to_level", "reason", "evidence", "dry_run", "actor"]
        read_only_fields = fields
        extra_kwargs = {
            "id": {"help_text": "Transition id."},
            "at": {"help_text": "When."},
            "from_level": {"help_text": "Level before."},
            "to_level": {"help_text": "Level after."},
            "reason": {"help_text": "Why."},
            "evidence": {"help_text": "What the triggers saw."},
            "dry_run": {"help_text": "Recorded only: nothing changed."},
            "actor": {"help_text": "User name, or policy:<name>."},
        }


class LevelPinSerializer(serializers.Serializer):
    level = serializers.IntegerField(
        min_value=0, max_value=100, help_text="Level to hold (0: not degraded)."
    )
    reason = reason_field(required=True, help_text="Why; kept with the pin and audited.")
    until = serializers.DateTimeField(
        required=False, allow_null=True, help_text="When the pin ends by itself; omit: never."
    )

    def validate_until(self, value: Any) -> Any:
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("Must be in the future.")
        return value


class LevelUnpinSerializer(serializers.Serializer):
    reason = reason_field(required=True, help_text="Why automation takes over again.")


class DegradationSwitchSerializer(serializers.ModelSerializer[DegradationSwitch]):
    automatic = serializers.BooleanField(
        help_text="Off: no policy changes a level (pins and manual flips still work)."
    )
    reason = serializers.CharField(
        max_length=REASON_MAX,
        help_text="Why it was last switched (required to switch).",
    )

    class Meta:
        model = DegradationSwitch
        fields = ["automatic", "reason", "changed_by", "changed_at"]
        read_only_fields = ["changed_by", "changed_at"]
        extra_kwargs = {
            "changed_by": {"help_text": "Who switched it last."},
            "changed_at": {"help_text": "When."},
        }
