"""Links from the rest of the control plane to a deployment's logs around a moment: the
``logs`` field of alerts, scale decisions and SLO events (the REST search), and the
console's links to its Logs page, over the same range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict
from urllib.parse import urlencode

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.inventory.label_matchers import MatcherError, parse_matchers, render_selector
from apps.inventory.models import Deployment

# How much before and after the moment the link's range covers.
LINK_MARGIN = timedelta(minutes=15)


class LogsLink(TypedDict):
    query: str
    start: str
    end: str
    url: str


def deployment_stream_selector(deployment: Deployment) -> str:
    """The LogQL stream selector of the deployment's logs: its Prometheus label matchers
    (the ones its streams were linked by), without a metric name matcher."""
    try:
        matchers = parse_matchers(deployment.prometheus_selector, check_regex=False)
    except MatcherError:
        matchers = []
    kept = [m for m in matchers if m.name != "__name__"]
    if not kept:
        return '{deployment="' + deployment.name.replace('"', '\\"') + '"}'
    return render_selector(kept)


def link_range(*, at: datetime, until: datetime | None = None) -> tuple[datetime, datetime]:
    """From a margin before ``at`` to a margin after ``until`` (default ``at``)."""
    return at - LINK_MARGIN, (until or at) + LINK_MARGIN


def logs_link(*, deployment: Deployment, at: datetime, until: datetime | None = None) -> LogsLink:
    """The query and time range of ``deployment``'s logs around ``at`` .. ``until``
    (:func:`link_range`), and the search URL that runs it (limited to the deployment's
    streams)."""
    start, end = link_range(at=at, until=until)
    query = deployment_stream_selector(deployment)
    params = {
        "query": query,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "deployment": deployment.pk,
        "team": deployment.team_id,
    }
    url = f"{reverse('logs-search')}?{urlencode(params)}"
    return {"query": query, "start": start.isoformat(), "end": end.isoformat(), "url": url}


def _console_time(moment: datetime) -> str:
    # What an <input type="datetime-local"> shows, in UTC (the console's form reads UTC).
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def console_logs_url(
    *,
    deployment: Deployment,
    at: datetime | None = None,
    until: datetime | None = None,
    since: str | None = None,
) -> str:
    """The console's Logs page on ``deployment``'s streams: around ``at`` .. ``until``
    (:func:`link_range`, the range of :func:`logs_link`), or the last ``since`` (a preset
    of the page such as ``"1h"``) when no moment is given."""
    params: dict[str, object] = {
        "query": deployment_stream_selector(deployment),
        "team": deployment.team_id,
    }
    if at is not None:
        start, end = link_range(at=at, until=until)
        params.update(start=_console_time(start), end=_console_time(end))
    elif since:
        params["since"] = since
    return f"{reverse('console:logs')}?{urlencode(params)}"


class LogsLinkSerializer(serializers.Serializer):
    query = serializers.CharField(help_text="LogQL stream selector of the deployment's logs.")
    start = serializers.CharField(help_text="Range start (RFC 3339).")
    end = serializers.CharField(help_text="Range end (RFC 3339).")
    url = serializers.CharField(help_text="The log search that runs it.")


@extend_schema_field(LogsLinkSerializer(allow_null=True))
class LogsLinkField(serializers.Field):
    """A read-only field: the :func:`logs_link` of the object's deployment around its
    time, or null when it has no deployment. ``deployment``, ``at`` and ``until`` are
    attribute paths on the object (``"slo.deployment"``)."""

    def __init__(self, *, deployment: str, at: str, until: str | None = None, **kwargs: Any):
        self.paths = (deployment, at, until)
        kwargs.update(source="*", read_only=True)
        kwargs.setdefault(
            "help_text", "The deployment's logs around this time: query, range and search URL."
        )
        super().__init__(**kwargs)

    def to_representation(self, value: Any) -> LogsLink | None:
        deployment_path, at_path, until_path = self.paths
        deployment = _attribute(value, deployment_path)
        at = _attribute(value, at_path)
        if deployment is None or at is None:
            return None
        until = _attribute(value, until_path) if until_path else None
        return logs_link(deployment=deployment, at=at, until=until)


def _attribute(obj: Any, dotted: str) -> Any:
    for name in dotted.split("."):
        if obj is None:
            return None
        obj = getattr(obj, name)
    return obj
