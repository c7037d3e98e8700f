"""Inbound payloads mapped into typed dataclasses before any service sees them.

Alertmanager's webhook (payload version 4, https://prometheus.io/docs/alerting/latest/
configuration/#webhook_config): unknown fields are ignored, so newer Alertmanagers keep
working; what we rely on is checked and a problem is reported with its path
(``alerts[3].labels``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .labels import fingerprint

# Alertmanager writes Go's zero time for "no end".
_ZERO_TIME_PREFIX = "0001-01-01"
_FRACTION = re.compile(r"\.(\d{6})\d+")
MAX_ALERTS_PER_PAYLOAD = 10_000


class PayloadError(ValueError):
    """The payload cannot be taken; the message names the field."""


@dataclass(frozen=True)
class IncomingAlert:
    labels: dict[str, str]
    annotations: dict[str, str]
    status: str  # firing | resolved
    starts_at: datetime
    ends_at: datetime | None
    generator_url: str
    fingerprint: str


@dataclass(frozen=True)
class AlertmanagerPayload:
    version: str
    receiver: str
    status: str
    group_key: str
    group_labels: dict[str, str]
    external_url: str
    truncated_alerts: int
    alerts: tuple[IncomingAlert, ...]


def parse_time(value: Any, path: str, *, required: bool) -> datetime | None:
    if value in (None, "") or (isinstance(value, str) and value.startswith(_ZERO_TIME_PREFIX)):
        if required:
            raise PayloadError(f"{path}: a time is required")
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{path}: expected an RFC 3339 time string")
    # Go writes nanoseconds; Python reads at most microseconds.
    text = _FRACTION.sub(r".\1", value.strip()).replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise PayloadError(f"{path}: {value!r} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _string_map(value: Any, path: str, *, required: bool = False) -> dict[str, str]:
    if value is None and not required:
        return {}
    if not isinstance(value, Mapping):
        raise PayloadError(f"{path}: expected an object of strings")
    out = {}
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise PayloadError(f"{path}.{k}: label names and values must be strings")
        out[k] = v
    return out


def parse_alert(raw: Any, path: str, *, now: datetime) -> IncomingAlert:
    if not isinstance(raw, Mapping):
        raise PayloadError(f"{path}: expected an object")
    labels = _string_map(raw.get("labels"), f"{path}.labels", required=True)
    if not labels:
        raise PayloadError(f"{path}.labels: an alert needs at least one label")
    annotations = _string_map(raw.get("annotations"), f"{path}.annotations")
    starts_at = parse_time(raw.get("startsAt"), f"{path}.startsAt", required=False) or now
    ends_at = parse_time(raw.get("endsAt"), f"{path}.endsAt", required=False)
    status = raw.get("status")
    if status is None:
        status = "resolved" if ends_at is not None and ends_at <= now else "firing"
    if status not in ("firing", "resolved"):
        raise PayloadError(f"{path}.status: must be 'firing' or 'resolved', not {status!r}")
    generator = raw.get("generatorURL") or ""
    if not isinstance(generator, str):
        raise PayloadError(f"{path}.generatorURL: expected a string")
    # Our own computation, which equals Alertmanager's; a sender's value is not trusted.
    return IncomingAlert(
        labels, annotations, status, starts_at, ends_at, generator[:2000], fingerprint(labels)
    )


def parse_alertmanager(raw: Any, *, now: datetime | None = None) -> AlertmanagerPayload:
    now = now or datetime.now(UTC)
    if not isinstance(raw, Mapping):
        raise PayloadError("expected a JSON object (Alertmanager webhook payload)")
    version = str(raw.get("version", ""))
    if version and version != "4":
        raise PayloadError(f"version: payload version {version!r} is not supported (use 4)")
    alerts = raw.get("alerts")
    if not isinstance(alerts, list):
        raise PayloadError("alerts: expected a list")
    if len(alerts) > MAX_ALERTS_PER_PAYLOAD:
        raise PayloadError(
            f"alerts: {len(alerts)} alerts in one payload; at most {MAX_ALERTS_PER_PAYLOAD}"
        )
    truncated = raw.get("truncatedAlerts", 0)
    if not isinstance(truncated, int) or isinstance(truncated, bool) or truncated < 0:
        raise PayloadError("truncatedAlerts: expected a non-negative integer")
    return AlertmanagerPayload(
        version=version or "4",
        receiver=str(raw.get("receiver") or ""),
        status=str(raw.get("status") or ""),
        group_key=str(raw.get("groupKey") or ""),
        group_labels=_string_map(raw.get("groupLabels"), "groupLabels"),
        external_url=str(raw.get("externalURL") or ""),
        truncated_alerts=truncated,
        alerts=tuple(parse_alert(a, f"alerts[{i}]", now=now) for i, a in enumerate(alerts)),
    )
