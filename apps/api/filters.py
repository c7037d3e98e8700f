"""The API's filter backend: django-filter's, without its per-request fixed costs, and
revealing nothing about other teams.

django-filter builds a foreign-key filter (``?model=``, ``?team=``, ``?deployment=``) over
every row of the related model: an unknown id answered 400 ("not one of the available
choices") while another team's id answered 200 with no results, so a caller could tell
which ids exist in teams they are not in. :class:`TeamScopedFilterBackend` narrows every
such filter to the related objects of the caller's teams, so both answer the same 400,
the way :class:`~apps.api.serializers.TeamScopedRelatedField` treats request bodies.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import QuerySet
from django_filters import filters
from django_filters import rest_framework as drf_filters
from rest_framework.request import Request
from rest_framework.views import APIView

from apps.accounts.models import Team
from apps.accounts.selectors import team_scoped

# Query parameters that never filter: the pagination's.
_NOT_FILTERS = frozenset({"limit", "offset"})


class FilterBackend(drf_filters.DjangoFilterBackend):
    """``DjangoFilterBackend`` with two shortcuts that change no answer:

    - the ``FilterSet`` class a viewset declares through ``filterset_fields`` is built once
      per viewset and model, not on every request (django-filter creates a new class each
      time);
    - a request without filter parameters is not filtered at all: an unbound filter does
      nothing, but building and validating the filter form costs as much as serialising
      several rows, on every list and every detail request.
    """

    _auto_classes: dict[tuple[type[APIView], type[Any]], type[drf_filters.FilterSet]] = {}

    def get_filterset_class(
        self, view: APIView, queryset: QuerySet[Any] | None = None
    ) -> type[drf_filters.FilterSet] | None:
        if getattr(view, "filterset_class", None) or queryset is None:
            return super().get_filterset_class(view, queryset)
        key = (type(view), queryset.model)
        cached = self._auto_classes.get(key)
        if cached is None:
            cached = super().get_filterset_class(view, queryset)
            if cached is None:
                return None
            self._auto_classes[key] = cached
        return cached

    def filter_queryset(self, request: Request, queryset: QuerySet[Any], view: APIView) -> Any:
        if _NOT_FILTERS.issuperset(request.query_params.keys()):
            return queryset
        return super().filter_queryset(request, queryset, view)


_MAX_HOPS = 3


_LOOKUPS: dict[type[models.Model], str | None] = {}


def team_lookup(model: type[models.Model]) -> str | None:
    """The lookup from ``model`` to the id of the team owning it ("id" for Team itself,
    "team_id", "deployment__team_id", ...), or None when the model belongs to no team
    (users, for instance). Breadth-first over forward foreign keys, so the shortest path
    wins."""
    if model not in _LOOKUPS:
        _LOOKUPS[model] = _find_team_lookup(model)
    return _LOOKUPS[model]


def _find_team_lookup(model: type[models.Model]) -> str | None:
    if issubclass(model, Team):
        return "id"
    frontier: list[tuple[type[models.Model], str]] = [(model, "")]
    for _ in range(_MAX_HOPS):
        following: list[tuple[type[models.Model], str]] = []
        for current, prefix in frontier:
            for field in current._meta.concrete_fields:
                if not isinstance(field, models.ForeignKey):
                    continue
                related = field.related_model
                assert isinstance(related, type)
                if issubclass(related, Team):
                    return f"{prefix}{field.name}_id"
                following.append((related, f"{prefix}{field.name}__"))
        frontier = following
    return None


class TeamScopedFilterBackend(FilterBackend):
    """The API's filter backend: :class:`FilterBackend` with every foreign-key filter
    narrowed to the caller's teams."""

    def get_filterset(self, request: Request, queryset: QuerySet[Any], view: Any) -> Any:
        filterset = super().get_filterset(request, queryset, view)
        user = request.user
        if filterset is None or getattr(user, "is_superuser", False):
            return filterset
        for filter_ in filterset.filters.values():
            if not isinstance(
                filter_, filters.ModelChoiceFilter | filters.ModelMultipleChoiceFilter
            ):
                continue
            choices = filter_.get_queryset(request)
            if choices is not None:
                lookup = team_lookup(choices.model)
                if lookup is not None:
                    choices = team_scoped(choices, user=user, team_field=lookup)
                filter_.queryset = choices
                # A form field built earlier (the schema generator builds them) would
                # keep the unscoped choices.
                filter_.__dict__.pop("_field", None)
        return filterset
