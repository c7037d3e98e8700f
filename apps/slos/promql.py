from __future__ import annotations

from apps.metrics.promql_check import PromQLError, check_promql


def check_custom_query(text: str) -> str:
    """A custom SLI query must be well-formed PromQL and use $window for its range."""
    try:
        expr = check_promql(text or "")
    except PromQLError as exc:
        raise ValueError(f"Invalid PromQL: {exc}.") from exc
    if "$window" not in expr:
        raise ValueError("Use $window where the range goes, e.g. increase(x[$window]).")
    return expr
