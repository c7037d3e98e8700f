"""The typed input of every transport: a :class:`Notification` about one group of alerts.

A notification lists some alerts individually (:attr:`Notification.alerts`) and may carry
others only as counts per alert name and status (:attr:`Notification.omitted_groups`), with
every omitted alert's fingerprint kept in the data, so that a message packed down to a
platform's size or rate limit still accounts for every alert it stands for.

``to_dict``/``from_dict`` give a JSON-safe form (datetimes as ISO 8601 strings) for queues
and for the generic webhook's body.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

__all__ = [
    "LANGUAGES",
    "SEVERITY_ORDER",
    "AlertItem",
    "AlertStatus",
    "Language",
    "Notification",
    "OmittedGroup",
    "fold_alerts",
    "merge_omitted",
    "sample_notification",
    "severity_rank",
]

AlertStatus = Literal["firing", "resolved"]
Language = Literal["en", "zh"]
LANGUAGES: tuple[Language, ...] = ("en", "zh")
_STATUSES = ("firing", "resolved")

# Most urgent first. Unknown severities sort after all of these.
SEVERITY_ORDER: tuple[str, ...] = ("critical", "error", "warning", "info", "none")


def severity_rank(severity: str) -> int:
    try:
        return SEVERITY_ORDER.index(severity.lower())
    except ValueError:
        return len(SEVERITY_ORDER)


def _status(value: str, what: str) -> AlertStatus:
    if value == "firing":
        return "firing"
    if value == "resolved":
        return "resolved"
    raise ValueError(f"{what} status must be 'firing' or 'resolved', not {value!r}")


def _aware(value: datetime | None, what: str) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {value.isoformat()}")
    return value


def _parse_time(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


@dataclass(frozen=True, kw_only=True)
class AlertItem:
    """One alert, as Alertmanager describes it (labels, summary/description annotations)."""

    labels: Mapping[str, str]
    status: AlertStatus
    starts_at: datetime
    ends_at: datetime | None = None
    summary: str = ""
    description: str = ""
    fingerprint: str = ""
    url: str = ""  # the deployment's page in the console, or the alert's generator URL

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", _status(self.status, "alert"))
        object.__setattr__(self, "labels", {str(k): str(v) for k, v in self.labels.items()})
        _aware(self.starts_at, "starts_at")
        _aware(self.ends_at, "ends_at")

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "") or "alert"

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": dict(self.labels),
            "status": self.status,
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat() if self.ends_at else None,
            "summary": self.summary,
            "description": self.description,
            "fingerprint": self.fingerprint,
            "url": self.url,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertItem:
        starts_at = _parse_time(data.get("starts_at"))
        if starts_at is None:
            raise ValueError("alert starts_at is required")
        return cls(
            labels=dict(data.get("labels") or {}),
            status=data["status"],
            starts_at=starts_at,
            ends_at=_parse_time(data.get("ends_at")),
            summary=str(data.get("summary") or ""),
            description=str(data.get("description") or ""),
            fingerprint=str(data.get("fingerprint") or ""),
            url=str(data.get("url") or ""),
        )


@dataclass(frozen=True, kw_only=True)
class OmittedGroup:
    """Alerts of one name and status that a message counts instead of listing.

    ``fingerprints`` holds every one of them (the rendered text shows as many as fit).
    """

    name: str
    status: AlertStatus
    count: int
    fingerprints: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", _status(self.status, "omitted group"))
        object.__setattr__(self, "fingerprints", tuple(self.fingerprints))
        if self.count < 0:
            raise ValueError("an omitted group's count cannot be negative")
        if len(self.fingerprints) > self.count:
            raise ValueError(
                f"omitted group {self.name!r} lists {len(self.fingerprints)} fingerprints "
                f"but counts only {self.count} alerts"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "count": self.count,
            "fingerprints": list(self.fingerprints),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OmittedGroup:
        return cls(
            name=str(data["name"]),
            status=data["status"],
            count=int(data["count"]),
            fingerprints=tuple(str(f) for f in data.get("fingerprints") or ()),
        )


def merge_omitted(*groups: Iterable[OmittedGroup]) -> tuple[OmittedGroup, ...]:
    """Omitted groups with the same name and status added together, first-seen order kept."""
    merged: dict[tuple[str, str], OmittedGroup] = {}
    for group in (g for gs in groups for g in gs):
        key = (group.name, group.status)
        if key in merged:
            prev = merged[key]
            merged[key] = replace(
                prev,
                count=prev.count + group.count,
                fingerprints=prev.fingerprints + group.fingerprints,
            )
        else:
            merged[key] = group
    return tuple(merged.values())


def fold_alerts(alerts: Iterable[AlertItem]) -> tuple[OmittedGroup, ...]:
    """Alerts turned into omitted groups (one per alert name and status)."""
    return merge_omitted(
        OmittedGroup(
            name=a.name,
            status=a.status,
            count=1,
            fingerprints=(a.fingerprint,) if a.fingerprint else (),
        )
        for a in alerts
    )


@dataclass(frozen=True, kw_only=True)
class Notification:
    """One message's worth of alerts for one channel.

    ``firing_count``/``resolved_count`` are the group's totals (listed plus omitted).
    ``omitted`` is how many alerts this message does not list individually; at least the
    sum of ``omitted_groups`` counts (a caller may summarise alerts away without details).
    """

    title: str
    status: AlertStatus
    severity: str = ""
    group_labels: Mapping[str, str] = field(default_factory=dict)
    alerts: Sequence[AlertItem] = ()
    firing_count: int = 0
    resolved_count: int = 0
    console_url: str = ""
    language: Language = "en"
    omitted: int = 0
    omitted_groups: Sequence[OmittedGroup] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", _status(self.status, "notification"))
        if self.language not in LANGUAGES:
            raise ValueError(
                f"language must be one of {', '.join(LANGUAGES)}, not {self.language!r}"
            )
        object.__setattr__(self, "alerts", tuple(self.alerts))
        object.__setattr__(self, "omitted_groups", tuple(self.omitted_groups))
        object.__setattr__(
            self, "group_labels", {str(k): str(v) for k, v in self.group_labels.items()}
        )
        if self.firing_count < 0 or self.resolved_count < 0 or self.omitted < 0:
            raise ValueError("counts cannot be negative")
        in_groups = sum(g.count for g in self.omitted_groups)
        if self.omitted < in_groups:
            raise ValueError(
                f"omitted={self.omitted} is less than the {in_groups} alerts in omitted_groups"
            )

    @property
    def total(self) -> int:
        """How many alerts this message stands for: listed plus omitted."""
        return len(self.alerts) + self.omitted

    def listing(self, count: int) -> Notification:
        """This notification with only its first ``count`` alerts listed, the rest folded
        into omitted groups (nothing is lost)."""
        if count >= len(self.alerts):
            return self
        count = max(0, count)
        rest = self.alerts[count:]
        return replace(
            self,
            alerts=self.alerts[:count],
            omitted=self.omitted + len(rest),
            omitted_groups=merge_omitted(self.omitted_groups, fold_alerts(rest)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "status": self.status,
            "severity": self.severity,
            "group_labels": dict(self.group_labels),
            "alerts": [a.to_dict() for a in self.alerts],
            "firing_count": self.firing_count,
            "resolved_count": self.resolved_count,
            "console_url": self.console_url,
            "language": self.language,
            "omitted": self.omitted,
            "omitted_groups": [g.to_dict() for g in self.omitted_groups],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Notification:
        return cls(
            title=str(data["title"]),
            status=data["status"],
            severity=str(data.get("severity") or ""),
            group_labels=dict(data.get("group_labels") or {}),
            alerts=tuple(AlertItem.from_dict(a) for a in data.get("alerts") or ()),
            firing_count=int(data.get("firing_count") or 0),
            resolved_count=int(data.get("resolved_count") or 0),
            console_url=str(data.get("console_url") or ""),
            language=data.get("language") or "en",
            omitted=int(data.get("omitted") or 0),
            omitted_groups=tuple(
                OmittedGroup.from_dict(g) for g in data.get("omitted_groups") or ()
            ),
        )


def sample_notification(language: Language = "en", *, console_url: str = "") -> Notification:
    """A realistic two-alert notification for a channel's "send test message" button."""
    now = datetime.now(UTC).replace(microsecond=0)
    zh = language == "zh"
    group = {"alertname": "LLMHighTimeToFirstToken", "deployment": "demo-llama-8b"}
    alerts = (
        AlertItem(
            labels={**group, "severity": "critical", "replica": "demo-llama-8b-0"},
            status="firing",
            starts_at=now - timedelta(minutes=7),
            summary=(
                "【测试】首 token 延迟 p95 为 2.4 秒（目标 1 秒）"  # noqa: RUF001
                if zh
                else "[test] p95 time to first token is 2.4 s (objective 1 s)"
            ),
            description=(
                "这是一条测试消息：通知渠道已配置成功。"  # noqa: RUF001
                if zh
                else "This is a test message: the notification channel is configured correctly."
            ),
            fingerprint="0a1b2c3d4e5f6071",
            url=console_url,
        ),
        AlertItem(
            labels={**group, "severity": "warning", "replica": "demo-llama-8b-1"},
            status="resolved",
            starts_at=now - timedelta(minutes=42),
            ends_at=now - timedelta(minutes=3),
            summary=(
                "【测试】KV 缓存使用率已回落到 71%"
                if zh
                else "[test] KV-cache usage is back down to 71%"
            ),
            fingerprint="8192a3b4c5d6e7f8",
            url=console_url,
        ),
    )
    return Notification(
        title=(
            "测试通知：首 token 延迟过高"  # noqa: RUF001
            if zh
            else "Test notification: high time to first token"
        ),
        status="firing",
        severity="critical",
        group_labels=group,
        alerts=alerts,
        firing_count=1,
        resolved_count=1,
        console_url=console_url,
        language=language,
    )
