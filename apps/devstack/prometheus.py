"""Start a real Prometheus binary on loopback with a generated configuration.

Used by the run command (when no PROMETHEUS_URL is configured and the binary is installed),
by the integration tests and by the collection benchmark. It binds 127.0.0.1 on a free port
and keeps all its data in a directory of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import requests

from apps.devstack.process import LocalServerProcess, free_port
from apps.devstack.process import find_binary as _find_binary

__all__ = ["EmbeddedPrometheus", "ScrapeTarget", "find_binary", "free_port"]

PROMETHEUS_BINARY_NAMES = ("prometheus",)


def find_binary(names: tuple[str, ...] = PROMETHEUS_BINARY_NAMES) -> str | None:
    return _find_binary(names)


@dataclass
class ScrapeTarget:
    job: str
    address: str  # host:port
    interval_s: float = 5.0
    metrics_path: str = "/metrics"


@dataclass
class EmbeddedPrometheus(LocalServerProcess):
    """A Prometheus process. Use as a context manager, or call start()/stop()."""

    name: ClassVar[str] = "prometheus"
    binary_names: ClassVar[tuple[str, ...]] = PROMETHEUS_BINARY_NAMES
    install_hint: ClassVar[str] = "Debian package 'prometheus'"
    config_name: ClassVar[str] = "prometheus.yml"
    log_name: ClassVar[str] = "prometheus.log"

    targets: list[ScrapeTarget] = field(default_factory=list)
    rule_files: list[Path] = field(default_factory=list)
    retention: str = "2d"

    def config(self) -> dict[str, object]:
        return {
            "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": [
                {
                    "job_name": t.job,
                    "scrape_interval": f"{t.interval_s:g}s",
                    "scrape_timeout": f"{min(t.interval_s, 10):g}s",
                    "metrics_path": t.metrics_path,
                    # Keep the target's own labels (namespace, pod, deployment, ...).
                    "honor_labels": True,
                    "static_configs": [{"targets": [t.address]}],
                }
                for t in self.targets
            ],
        }

    def arguments(self, config_path: Path) -> list[str]:
        assert self.data_dir is not None
        return [
            f"--config.file={config_path}",
            f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
            f"--storage.tsdb.retention.time={self.retention}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
            *self.extra_args,
        ]

    def reload(self) -> None:
        self.write_config()
        requests.post(f"{self.url}/-/reload", timeout=5).raise_for_status()
