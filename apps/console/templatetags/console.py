"""Template helpers of the console: times the browser shows in the user's time zone (UTC
on hover), figures with their unit or a dash, the chart component's data block and links
to the Logs page."""

from __future__ import annotations

import json
from datetime import datetime
from html import escape as _escape
from typing import Any

from django import template
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from apps.inventory.models import Deployment, DeploymentStatus, ServingFramework
from apps.logs.links import console_logs_url

register = template.Library()

DASH = "\u2013"  # en dash: no value
# What Django's json_script escapes, so the JSON cannot close its <script> element.
_JSON_SCRIPT_ESCAPES = {ord(">"): "\\u003E", ord("<"): "\\u003C", ord("&"): "\\u0026"}


@register.simple_tag
def ts(value: datetime | None, ms: bool = False) -> str:
    """A ``<time>`` element: UTC in the page (readable without JavaScript); ``console.js``
    rewrites the text in the browser's time zone and keeps UTC in the title. ``ms`` adds
    the milliseconds (log lines)."""
    if value is None:
        return DASH
    if ms:
        utc = value.strftime("%Y-%m-%d %H:%M:%S.") + f"{value.microsecond // 1000:03d} UTC"
        return format_html(
            '<time datetime="{}" title="{}" data-ms>{}</time>', value.isoformat(), utc, utc
        )
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
    # Not a number also when the SLO was never evaluated: ``row.status.budget_remaining``
    # then does not resolve and the template engine passes "" through the filter.
    if not isinstance(value, int | float):
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
    label = title or " and ".join(data.get("labels", [])) or "chart"
    caption = f"<figcaption>{_escape(title)}</figcaption>" if title else ""
    script = json.dumps(data, separators=(",", ":")).translate(_JSON_SCRIPT_ESCAPES)
    return mark_safe(  # noqa: S308 - every interpolated value is escaped above or here
        f'<figure class="{_escape(kind)}" data-chart="{_escape(element_id)}-data" '
        f'data-height="{int(height)}" data-points="{points}">{caption}'
        f'<div class="chart-canvas" role="img" aria-label="{_escape(label)}"></div>'
        f'<script id="{_escape(element_id)}-data" type="application/json">{script}</script>'
        "</figure>"
    )


@register.simple_tag
def logs_url(
    deployment: Deployment | None,
    at: datetime | None = None,
    until: datetime | None = None,
    since: str = "",
) -> str:
    """The Logs page on ``deployment``'s streams around ``at`` .. ``until`` (the range the
    API's ``logs`` links give), or over the last ``since``; empty without a deployment."""
    if deployment is None:
        return ""
    return console_logs_url(deployment=deployment, at=at, until=until, since=since or None)


# The overview's rows are rendered here rather than by a template loop: a fleet of 1,000
# deployments is 1,000 rows of ten cells, and Django's template engine spends about 0.2 ms
# per row on variable lookups and filters, most of the page's time budget. The markup is
# the same a template would write; every text value is escaped with the standard library's
# html.escape (what Django's escape does, without its lazy-string wrapper, which costs
# more than the escaping on 30,000 values).
_STATUS = dict(DeploymentStatus.choices)
_FRAMEWORK = dict(ServingFramework.choices)


def _or_dash(value: int | None) -> str:
    return DASH if value is None else str(value)


def _row(row: Any, url: str, slo_url: str) -> str:
    d = row.deployment
    badges = ' <span class="badge warn">paused</span>' if row.paused else ""
    if row.pinned is not None:
        badges += f' <span class="badge warn">pinned {int(row.pinned)}</span>'
    ttft_bad = " bad" if row.ttft_over else ""
    over = ' <span class="visually-hidden">(over the objective)</span>' if row.ttft_over else ""
    budget_bad = " bad" if row.budget_left is not None and row.budget_left < 0 else ""
    cluster = d.cluster_name or DASH
    budget_cell = _escape(budget(row.budget_left))
    if row.budget_slo_id is not None:
        budget_cell = f'<a href="{slo_url}{int(row.budget_slo_id)}/">{budget_cell}</a>'
    return (
        f'<tr><th scope="row"><a href="{url}{int(d.pk)}/">{_escape(d.name)}</a> '
        f'<span class="badge status-{_escape(d.status)}">'
        f"{_escape(_STATUS.get(d.status, d.status))}</span>{badges}</th>"
        f"<td>{_escape(d.team_slug)}</td>"
        f"<td>{_escape(_FRAMEWORK.get(d.framework, d.framework))} \u00b7 {_escape(cluster)}</td>"
        f'<td class="num" data-field="replicas">{_or_dash(row.ready)} / '
        f"{_or_dash(row.starting)} / {_or_dash(row.desired)}</td>"
        f'<td class="num" data-field="queue">{num(row.queue, 0)}</td>'
        f'<td class="num">{pct(row.kv_cache)}</td>'
        f'<td class="num{ttft_bad}">{ms(row.ttft_p95)} / {ms(row.ttft_objective)}{over}</td>'
        f'<td class="num{budget_bad}">{budget_cell}</td>'
        f'<td class="num{" bad" if row.firing_alerts else ""}">{int(row.firing_alerts)}</td>'
        f'<td class="num{" bad" if row.degradation else ""}" data-field="degradation">'
        f"{_or_dash(row.degradation)}</td>"
        f"<td>{chart('spark', row.sparkline, height=36, kind='sparkline', key=d.pk)}</td></tr>"
    )


@register.simple_tag
def overview_rows(rows: list[Any]) -> SafeString:
    """The ``<tr>`` of each :class:`apps.console.selectors.OverviewRow`."""
    # reverse() once: the object's id is each URL's only variable part.
    url = _escape(reverse("console:deployment", args=[0]).removesuffix("0/"))
    slo_url = _escape(reverse("console:slo", args=[0]).removesuffix("0/"))
    return mark_safe("\n".join(_row(row, url, slo_url) for row in rows))  # noqa: S308 - escaped in _row
