from typing import Any

from rest_framework.pagination import LimitOffsetPagination


class Pagination(LimitOffsetPagination):
    """`?limit=&offset=`; 50 per page by default, 500 at most."""

    default_limit = 50
    max_limit = 500

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        response = super().get_paginated_response_schema(schema)
        properties = response["properties"]
        properties["count"]["description"] = "Objects matching the query, over all pages."
        properties["next"]["description"] = "URL of the next page; null on the last page."
        properties["previous"]["description"] = "URL of the previous page; null on the first page."
        properties["results"] = {**properties["results"], "description": "Objects of this page."}
        return response
