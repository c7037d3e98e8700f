"""Forms of the console: filters (the table/filter pattern), the autoscaling controls and
the alerts page's. Choices are built from what the user may see, so a filter can never name
another team's object."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from apps.accounts.selectors import AnyUser, teams_visible_to
from apps.alerts.models import AlertStatus, Severity, silence_matchers_clean
from apps.inventory.models import DeploymentStatus, ServingFramework

from .selectors import DEFAULT_RANGE, RANGES, clusters_visible, deployments_visible


def _any(choices: Any, label: str = "any") -> list[tuple[str, str]]:
    return [("", label), *((str(value), str(text)) for value, text in choices)]


class FilterForm(forms.Form):
    """The table/filter pattern's form: each valid, non-empty field narrows the queryset by
    its lookup in ``lookups``; the choices of fields naming objects (``scoped_choices``)
    are those the user may see."""

    lookups: dict[str, str] = {}

    def __init__(self, *args: Any, user: AnyUser, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, choices in self.scoped_choices(user).items():
            field = self.fields[name]
            assert isinstance(field, forms.ChoiceField)
            field.choices = _any(choices)

    def scoped_choices(self, user: AnyUser) -> dict[str, Any]:
        """Field name → (value, label) pairs of the user's objects."""
        return {}

    def filter(self, queryset: Any) -> Any:
        """The queryset narrowed by the valid filters (an invalid one is ignored)."""
        if not self.is_valid():
            return queryset
        wanted = {lookup: self.cleaned_data.get(name) for name, lookup in self.lookups.items()}
        return queryset.filter(**{k: v for k, v in wanted.items() if v})


class OverviewFilterForm(FilterForm):
    team = forms.ChoiceField(required=False)
    framework = forms.ChoiceField(required=False, choices=_any(ServingFramework.choices))
    cluster = forms.ChoiceField(required=False)
    status = forms.ChoiceField(required=False, choices=_any(DeploymentStatus.choices))

    lookups = {
        "team": "team_id",
        "framework": "framework",
        "cluster": "cluster_id",
        "status": "status",
    }

    def scoped_choices(self, user: AnyUser) -> dict[str, Any]:
        return {
            "team": teams_visible_to(user=user).values_list("pk", "slug"),
            "cluster": clusters_visible(user=user).values_list("pk", "name"),
        }


class RangeForm(forms.Form):
    range = forms.ChoiceField(
        choices=[(key, f"last {key}") for key in RANGES], required=False, initial=DEFAULT_RANGE
    )

    def range_key(self) -> str:
        return (self.cleaned_data.get("range") if self.is_valid() else None) or DEFAULT_RANGE


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=500, help_text="Why; kept in the audit log.", strip=True, required=True
    )


class PinForm(ReasonForm):
    replicas = forms.IntegerField(min_value=0, help_text="Replica count to hold.")
    minutes = forms.IntegerField(
        min_value=1, max_value=7 * 24 * 60, initial=60, help_text="Until now + this many minutes."
    )

    field_order = ["replicas", "minutes", "reason"]


# =========================================================================== alerts page


class AlertFilterForm(FilterForm):
    team = forms.ChoiceField(required=False)
    state = forms.ChoiceField(required=False, choices=_any(AlertStatus.choices))
    severity = forms.ChoiceField(required=False, choices=_any(Severity.choices))
    deployment = forms.ChoiceField(required=False)

    lookups = {
        "team": "team_id",
        "state": "status",
        "severity": "severity",
        "deployment": "deployment_id",
    }

    def scoped_choices(self, user: AnyUser) -> dict[str, Any]:
        return {
            "team": teams_visible_to(user=user).values_list("pk", "slug"),
            "deployment": deployments_visible(user=user).values_list("pk", "name"),
        }


class AcknowledgeForm(forms.Form):
    comment = forms.CharField(
        max_length=500, required=False, strip=True, help_text="Optional note."
    )


MATCHER_OPS = [("=", "="), ("!=", "!="), ("=~", "=~ (regex)"), ("!~", "!~ (regex)")]


class MatcherForm(forms.Form):
    """One label matcher of a silence; an added row left blank is ignored."""

    name = forms.CharField(max_length=100)
    op = forms.ChoiceField(choices=MATCHER_OPS, initial="=")
    value = forms.CharField(max_length=1000, required=False, strip=False)


MatcherFormSet = forms.formset_factory(MatcherForm, extra=1, can_delete=True, max_num=50)

SILENCE_DURATIONS: dict[str, tuple[str, timedelta]] = {
    "30m": ("30 minutes", timedelta(minutes=30)),
    "1h": ("1 hour", timedelta(hours=1)),
    "2h": ("2 hours", timedelta(hours=2)),
    "4h": ("4 hours", timedelta(hours=4)),
    "12h": ("12 hours", timedelta(hours=12)),
    "1d": ("1 day", timedelta(days=1)),
    "3d": ("3 days", timedelta(days=3)),
    "7d": ("7 days", timedelta(days=7)),
}


class SilenceForm(forms.Form):
    """A silence from an alert's labels: its matchers (a formset pre-filled with the labels,
    each editable and removable), how long, and why."""

    duration = forms.ChoiceField(
        choices=[(key, label) for key, (label, _) in SILENCE_DURATIONS.items()], initial="2h"
    )
    comment = forms.CharField(
        max_length=2000, widget=forms.Textarea(attrs={"rows": 2}), help_text="Why (required)."
    )

    def __init__(self, data: Any = None, *, labels: Mapping[str, str]) -> None:
        super().__init__(data)
        self.matchers = MatcherFormSet(
            data,
            prefix="m",
            initial=[{"name": k, "op": "=", "value": v} for k, v in sorted(labels.items())],
        )
        self.matcher_errors: list[str] = []

    def length(self) -> timedelta:
        key = self.data.get("duration") if self.is_bound else None
        return SILENCE_DURATIONS.get(key or "", SILENCE_DURATIONS["2h"])[1]

    def cleaned_matchers(self) -> list[dict[str, str]] | None:
        """The matchers as the silence would store them, checked as ``Silence.clean`` checks
        them (RE2 patterns, not all matching the empty string); ``None`` when they are not
        valid, with the reasons in ``matcher_errors``."""
        if not self.is_bound:
            raw = [dict(row) for row in self.matchers.initial or ()]
        elif not self.matchers.is_valid():
            self.matcher_errors = [
                f"matcher {i}, {field}: {' '.join(str(e) for e in errors)}"
                for i, form in enumerate(self.matchers.forms, 1)
                if not form.cleaned_data.get("DELETE")
                for field, errors in form.errors.items()
            ] + [str(e) for e in self.matchers.non_form_errors()]
            return None
        else:
            raw = [
                {"name": f.cleaned_data["name"], "op": f.cleaned_data["op"],
                 "value": f.cleaned_data["value"]}
                for f in self.matchers.forms
                if f.cleaned_data.get("name") and not f.cleaned_data.get("DELETE")
            ]  # fmt: skip
        try:
            return silence_matchers_clean(raw)
        except ValidationError as exc:
            self.matcher_errors = exc.messages
            return None

    def add_service_errors(self, exc: ValidationError) -> None:
        """The service's field errors on this form (matchers and times as form-wide)."""
        for name, errors in exc.message_dict.items():
            self.add_error(name if name in self.fields else None, errors)
