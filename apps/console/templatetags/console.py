"""Template helpers of the console: times the browser shows in the user's time zone (UTC
on hover), figures with their unit or a dash, and the chart component's data block."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import template
from django.utils.html import format_html, json_script

register = template.Library()

DASH = "\u2013"  # en dash: no value


@register.simple_tag
def ts(value: datetime | None) -> str:
    """A ``<time>`` element: UTC in the page (readable without JavaScript); ``console.js``
    rewrites the text in the browser's time zone and keeps UTC in the title."""
    if value is None:
        return DASH
    utc = value.strftime("%Y-%m-%d %H:%M:%S UTC")
    return format_html('<time datetime="{}" title="{}">{}</time>', value.isoformat(), utc, utc)


@register.filter
def num(value: float | int | None, digits: int = 1) -> str:
    if value is None:
        return DASH
    return f"{value:,.{digits}f}"


@register.filter
def pct(value: float | None, digits: int = 0) -> str:
    """A 0-1 share as a percentage."""
    if value is None:
        return DASH
    return f"{value * 100:.{digits}f}%"


@register.filter
def budget(value: float | None) -> str:
    """Error budget left (1 untouched, 0 spent): a percentage while some is left; once
    overspent, "exhausted" and by how many budgets, never a negative percentage."""
    if value is None:
        return DASH
    if value >= 0:
        return pct(value)
    over = -value
    if over < 0.05:
        return "exhausted"
    return (
        f"exhausted (overspent {over:.0f}x)" if over >= 10 else f"exhausted (overspent {over:.1f}x)"
    )


@register.filter
def rate(value: float | None) -> str:
    """A burn rate: how many times the pace that spends the budget exactly."""
    if value is None:
        return DASH
    return f"{value:,.2f}x" if value < 10 else f"{value:,.1f}x"


@register.filter
def ms(value: float | None) -> str:
    """Seconds as milliseconds."""
    if value is None:
        return DASH
    return f"{value * 1000:,.0f} ms"


@register.filter
def split(value: str, separator: str) -> list[str]:
    return [part.strip() for part in value.split(separator)]


@register.simple_tag
def chart(
    element_id: str,
    data: dict[str, Any],
    title: str = "",
    height: int = 220,
    kind: str = "chart",
    key: object = "",
) -> str:
    """The chart component: a figure that ``charts.js`` fills from the JSON block next to
    it (``data`` from :func:`apps.console.selectors.chart_data`). ``kind="sparkline"``
    draws a small one without axes or legend; ``key`` makes the id unique in a table."""
    if key != "":
        element_id = f"{element_id}-{key}"
    points = sum(1 for column in data.get("y", []) for v in column if v is not None)
    return format_html(
        '<figure class="{}" data-chart="{}-data" data-height="{}" data-points="{}">'
        '{}<div class="chart-canvas" role="img" aria-label="{}"></div>{}</figure>',
        kind,
        element_id,
        height,
        points,
        format_html("<figcaption>{}</figcaption>", title) if title else "",
        title or " and ".join(data.get("labels", [])) or "chart",
        json_script(data, f"{element_id}-data"),
    )
