"""Filters of the toggles API."""

from __future__ import annotations

import django_filters

from .models import DegradationPolicy, Toggle


class ToggleFilter(django_filters.FilterSet):
    team_wide = django_filters.BooleanFilter(
        field_name="deployment",
        lookup_expr="isnull",
        label="true: only the team-wide toggles; false: only per-deployment ones.",
    )

    class Meta:
        model = Toggle
        fields = {
            "team": ["exact"],
            "deployment": ["exact"],
            "preset": ["exact"],
            "value_type": ["exact"],
            "enabled": ["exact"],
            "key": ["exact", "icontains"],
        }


class DegradationPolicyFilter(django_filters.FilterSet):
    class Meta:
        model = DegradationPolicy
        fields = {
            "team": ["exact"],
            "deployment": ["exact"],
            "enabled": ["exact"],
            "dry_run": ["exact"],
            "name": ["exact", "icontains"],
        }
