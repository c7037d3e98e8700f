"""Limit/offset pagination for every list, without a COUNT query for a short first page."""

from typing import Any

from django.db.models import QuerySet
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request


class Pagination(LimitOffsetPagination):
    """`?limit=&offset=`; 50 per page by default, 500 at most."""

    default_limit = 50
    max_limit = 500

    def paginate_queryset(
        self, queryset: QuerySet[Any], request: Request, view: Any = None
    ) -> list[Any] | None:
        """As DRF's, except that the first page is read before counting: when it holds
        fewer rows than the limit it is the whole list, so ``count`` is its length and the
        COUNT query is not needed. Other pages are DRF's (count, then the page)."""
        limit = self.get_limit(request)
        if limit is None or self.get_offset(request) != 0:
            return super().paginate_queryset(queryset, request, view)
        self.request = request
        self.limit = limit
        self.offset = 0
        page = list(queryset[:limit])
        self.count = len(page) if len(page) < limit else self.get_count(queryset)
        if self.count > limit and self.template is not None:
            self.display_page_controls = True
        return page if self.count else []

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        response = super().get_paginated_response_schema(schema)
        properties = response["properties"]
        properties["count"]["description"] = "Objects matching the query, over all pages."
        properties["next"]["description"] = "URL of the next page; null on the last page."
        properties["previous"]["description"] = "URL of the previous page; null on the first page."
        properties["results"] = {**properties["results"], "description": "Objects of this page."}
        return response
