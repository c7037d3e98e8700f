"""The API's filter backend: django-filter's, without its per-request fixed costs."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django_filters import rest_framework as filters
from rest_framework.request import Request
from rest_framework.views import APIView

# Query parameters that never filter: the pagination's.
_NOT_FILTERS = frozenset({"limit", "offset"})


class FilterBackend(filters.DjangoFilterBackend):
    """``DjangoFilterBackend`` with two shortcuts that change no answer:

    - the ``FilterSet`` class a viewset declares through ``filterset_fields`` is built once
      per viewset and model, not on every request (django-filter creates a new class each
      time);
    - a request without filter parameters is not filtered at all: an unbound filter does
      nothing, but building and validating the filter form costs as much as serialising
      several rows, on every list and every detail request.
    """

    _auto_classes: dict[tuple[type[APIView], type[Any]], type[filters.FilterSet]] = {}

    def get_filterset_class(
        self, view: APIView, queryset: QuerySet[Any] | None = None
    ) -> type[filters.FilterSet] | None:
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
