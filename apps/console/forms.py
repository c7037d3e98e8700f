"""Forms of the console: the lists' filters and the autoscaling controls. Choices are
built from what the user may see, so a filter can never name another team's object."""

from __future__ import annotations

from typing import Any

from django import forms

from apps.accounts.selectors import AnyUser, teams_visible_to
from apps.audit.models import AuditAction
from apps.inventory.models import DeploymentStatus, ServingFramework
from apps.slos.models import SloState

from .selectors import DEFAULT_RANGE, RANGES, clusters_visible


def _any(choices: Any, label: str = "any") -> list[tuple[str, str]]:
    return [("", label), *((str(value), str(text)) for value, text in choices)]


class TeamFilterForm(forms.Form):
    """A list's filters, the first of them the team (choices: the user's teams). Each
    valid, non-empty field narrows the queryset by its lookup in :meth:`lookups`; an
    invalid filter is ignored."""

    team = forms.ChoiceField(required=False)

    def __init__(self, *args: Any, user: AnyUser, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._choices("team", teams_visible_to(user=user).values_list("pk", "slug"))

    def _choices(self, name: str, choices: Any) -> None:
        field = self.fields[name]
        assert isinstance(field, forms.ChoiceField)
        field.choices = _any(choices)

    def lookups(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"team_id": data.get("team")}

    def filter(self, queryset: Any) -> Any:
        """The queryset narrowed by the valid filters (an invalid one is ignored)."""
        if not self.is_valid():
            return queryset
        lookups = self.lookups(self.cleaned_data)
        return queryset.filter(**{k: v for k, v in lookups.items() if v not in (None, "")})


class OverviewFilterForm(TeamFilterForm):
    framework = forms.ChoiceField(required=False, choices=_any(ServingFramework.choices))
    cluster = forms.ChoiceField(required=False)
    status = forms.ChoiceField(required=False, choices=_any(DeploymentStatus.choices))

    def __init__(self, *args: Any, user: AnyUser, **kwargs: Any) -> None:
        super().__init__(*args, user=user, **kwargs)
        self._choices("cluster", clusters_visible(user=user).values_list("pk", "name"))

    def lookups(self, data: dict[str, Any]) -> dict[str, Any]:
        return {
            **super().lookups(data),
            "framework": data.get("framework"),
            "cluster_id": data.get("cluster"),
            "status": data.get("status"),
        }


class SloFilterForm(TeamFilterForm):
    state = forms.ChoiceField(required=False, choices=_any(SloState.choices))

    def lookups(self, data: dict[str, Any]) -> dict[str, Any]:
        return {**super().lookups(data), "status__state": data.get("state")}


class AuditFilterForm(TeamFilterForm):
    actor = forms.CharField(required=False, max_length=150, help_text="Username.")
    action = forms.ChoiceField(required=False, choices=_any(AuditAction.choices))
    object_type = forms.ChoiceField(required=False, label="Object type")
    since = forms.DateTimeField(
        required=False,
        label="From (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    until = forms.DateTimeField(
        required=False,
        label="Until (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )

    def __init__(self, *args: Any, user: AnyUser, object_types: list[str], **kwargs: Any) -> None:
        super().__init__(*args, user=user, **kwargs)
        self._choices("object_type", ((name, name) for name in object_types))

    def lookups(self, data: dict[str, Any]) -> dict[str, Any]:
        return {
            **super().lookups(data),
            "actor_repr": data.get("actor"),
            "action": data.get("action"),
            "object_type": data.get("object_type"),
            "timestamp__gte": data.get("since"),
            "timestamp__lt": data.get("until"),
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
