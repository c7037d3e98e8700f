"""Links from the rest of the control plane to a deployment's logs around a moment: the
``logs`` field of alerts, scale decisions and SLO events."""

from __future__ import annotations

from datetime import datetime, timedelta
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


def logs_link(*, deployment: Deployment, at: datetime, until: datetime | None = None) -> LogsLink:
    """The query and time range of ``deployment``'s logs from a margin before ``at`` to a
    margin after ``until`` (default ``at``), and the search URL that runs it (limited to the
    deployment's streams)."""
    start = at - LINK_MARGIN
    end = (until or at) + LINK_MARGIN
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
