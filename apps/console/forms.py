"""Forms of the console: the overview's filters and the autoscaling controls. Choices are
built from what the user may see, so a filter can never name another team's object."""

from __future__ import annotations

from typing import Any

from django import forms

from apps.accounts.selectors import AnyUser, teams_visible_to
from apps.inventory.models import DeploymentStatus, ServingFramework

from .selectors import DEFAULT_RANGE, RANGES, clusters_visible


def _any(choices: Any, label: str = "any") -> list[tuple[str, str]]:
    return [("", label), *((str(value), str(text)) for value, text in choices)]


class OverviewFilterForm(forms.Form):
    team = forms.ChoiceField(required=False)
    framework = forms.ChoiceField(required=False, choices=_any(ServingFramework.choices))
    cluster = forms.ChoiceField(required=False)
    status = forms.ChoiceField(required=False, choices=_any(DeploymentStatus.choices))

    def __init__(self, *args: Any, user: AnyUser, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        team, cluster = self.fields["team"], self.fields["cluster"]
        assert isinstance(team, forms.ChoiceField)
        assert isinstance(cluster, forms.ChoiceField)
        team.choices = _any(teams_visible_to(user=user).values_list("pk", "slug"))
        cluster.choices = _any(clusters_visible(user=user).values_list("pk", "name"))

    def filter(self, queryset: Any) -> Any:
        """The queryset narrowed by the valid filters (an invalid one is ignored)."""
        if not self.is_valid():
            return queryset
        data = self.cleaned_data
        lookups = {
            "team_id": data.get("team"),
            "framework": data.get("framework"),
            "cluster_id": data.get("cluster"),
            "status": data.get("status"),
        }
        return queryset.filter(**{k: v for k, v in lookups.items() if v})


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
