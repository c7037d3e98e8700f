"""Start a real Alertmanager binary on loopback with a generated configuration.

Used by the integration tests and benchmarks of the alert receiver. It binds 127.0.0.1 on a
free port, runs without clustering (``--cluster.listen-address=`` empty; otherwise it would
listen on 0.0.0.0:9094) and keeps its state in a directory of its own.

The configuration is one route tree: the root route groups by ``group_by`` with the given
timers and sends to the first receiver; every receiver that has matchers also gets a child
route, tried in order, so that one process can exercise several webhook receivers (bearer
token, basic auth, a wrong credential) at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import requests

from apps.devstack.process import LocalServerProcess
from apps.devstack.process import find_binary as _find_binary

__all__ = ["EmbeddedAlertmanager", "WebhookReceiver", "find_binary"]

ALERTMANAGER_BINARY_NAMES = ("prometheus-alertmanager", "alertmanager")


def find_binary(names: tuple[str, ...] = ALERTMANAGER_BINARY_NAMES) -> str | None:
    return _find_binary(names)


@dataclass(frozen=True)
class WebhookReceiver:
    """An Alertmanager ``webhook_config`` receiver. Give at most one of ``bearer_token`` and
    ``basic_auth`` (user, password). ``matchers`` (Alertmanager syntax, ``case="basic"``)
    route matching alerts here; the first receiver is also the root route's default."""

    name: str
    url: str
    bearer_token: str | None = None
    basic_auth: tuple[str, str] | None = None
    matchers: tuple[str, ...] = ()
    send_resolved: bool = True
    max_alerts: int = 0  # 0: every alert of the group in one call

    def __post_init__(self) -> None:
        if self.bearer_token is not None and self.basic_auth is not None:
            raise ValueError("give a bearer token or basic auth, not both")

    def config(self) -> dict[str, Any]:
        webhook: dict[str, Any] = {
            "url": self.url,
            "send_resolved": self.send_resolved,
            "max_alerts": self.max_alerts,
        }
        http: dict[str, Any] = {"follow_redirects": False}
        if self.bearer_token is not None:
            http["authorization"] = {"type": "Bearer", "credentials": self.bearer_token}
        if self.basic_auth is not None:
            http["basic_auth"] = {"username": self.basic_auth[0], "password": self.basic_auth[1]}
        webhook["http_config"] = http
        return {"name": self.name, "webhook_configs": [webhook]}


def _duration(seconds: float) -> str:
    """Seconds as a Prometheus duration: whole seconds, else whole milliseconds."""
    ms = max(1, round(seconds * 1000))
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


@dataclass
class EmbeddedAlertmanager(LocalServerProcess):
    """An Alertmanager process. Use as a context manager, or call start()/stop()."""

    name: ClassVar[str] = "alertmanager"
    binary_names: ClassVar[tuple[str, ...]] = ALERTMANAGER_BINARY_NAMES
    install_hint: ClassVar[str] = "Debian package 'prometheus-alertmanager'"
    config_name: ClassVar[str] = "alertmanager.yml"
    log_name: ClassVar[str] = "alertmanager.log"

    receivers: list[WebhookReceiver] = field(default_factory=list)
    group_by: list[str] = field(default_factory=lambda: ["alertname"])
    group_wait_s: float = 1.0
    group_interval_s: float = 2.0
    repeat_interval_s: float = 3600.0
    resolve_timeout_s: float = 300.0
    log_level: str = "info"  # debug also logs every flush and successful notification

    def config(self) -> dict[str, object]:
        if not self.receivers:
            raise ValueError("Alertmanager needs at least one receiver")
        route: dict[str, Any] = {
            "receiver": self.receivers[0].name,
            "group_by": list(self.group_by),
            "group_wait": _duration(self.group_wait_s),
            "group_interval": _duration(self.group_interval_s),
            "repeat_interval": _duration(self.repeat_interval_s),
        }
        children = [
            {"receiver": r.name, "matchers": list(r.matchers)} for r in self.receivers if r.matchers
        ]
        if children:
            route["routes"] = children
        return {
            "global": {"resolve_timeout": _duration(self.resolve_timeout_s)},
            "route": route,
            "receivers": [r.config() for r in self.receivers],
        }

    def arguments(self, config_path: Path) -> list[str]:
        assert self.data_dir is not None
        return [
            f"--config.file={config_path}",
            f"--storage.path={self.data_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            # Empty: no clustering (it would otherwise listen on 0.0.0.0:9094).
            "--cluster.listen-address=",
            f"--log.level={self.log_level}",
            *self.extra_args,
        ]

    def post_alerts(self, alerts: Sequence[Mapping[str, Any]]) -> None:
        """POST /api/v2/alerts: a list of {labels, annotations, startsAt, endsAt, generatorURL}
        (datetimes are written in RFC 3339)."""
        body = [
            {k: v.isoformat() if isinstance(v, datetime) else v for k, v in alert.items()}
            for alert in alerts
        ]
        requests.post(f"{self.url}/api/v2/alerts", json=body, timeout=10).raise_for_status()

    def alerts(self, **params: str) -> list[dict[str, Any]]:
        """GET /api/v2/alerts (each with its ``fingerprint``, ``status`` and ``receivers``)."""
        response = requests.get(f"{self.url}/api/v2/alerts", params=params, timeout=10)
        response.raise_for_status()
        answer: list[dict[str, Any]] = response.json()
        return answer

    def metric(self, name: str, **labels: str) -> float:
        """The sum of one metric's samples on /metrics whose labels include ``labels``."""
        text = requests.get(f"{self.url}/metrics", timeout=10).text
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name) or line.startswith("#"):
                continue
            series, _, value = line.rpartition(" ")
            if series.split("{", 1)[0] != name:
                continue
            if all(f'{k}="{v}"' in series for k, v in labels.items()):
                total += float(value)
        return total
