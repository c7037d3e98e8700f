"""Start a real Prometheus binary on loopback with a generated configuration.

Used by the run command (when no PROMETHEUS_URL is configured and the binary is installed),
by the integration tests and by the collection benchmark. It binds 127.0.0.1 on a free port
and keeps all its data in a directory of its own.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import requests
import yaml

from apps.integrations.process import LocalServerProcess

PROMETHEUS_BINARY_NAMES = ("prometheus",)


def find_binary(names: tuple[str, ...] = PROMETHEUS_BINARY_NAMES) -> str | None:
    for name in names:
        path = shutil.which(name) or (
            f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None
        )
        if path:
            return path
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ScrapeTarget:
    job: str
    address: str  # host:port
    interval_s: float = 5.0
    metrics_path: str = "/metrics"


@dataclass
class EmbeddedPrometheus(LocalServerProcess):
    log_name: ClassVar[str] = "prometheus.log"

    """A Prometheus process. Use as a context manager, or call start()/stop()."""

    targets: list[ScrapeTarget] = field(default_factory=list)
    data_dir: Path | None = None
    port: int = 0
    rule_files: list[Path] = field(default_factory=list)
    extra_args: list[str] = field(default_factory=list)
    retention: str = "2d"
    binary: str | None = None
    _proc: subprocess.Popen[bytes] | None = None
    _own_dir: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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

    def start(self, *, wait_s: float = 30.0) -> EmbeddedPrometheus:
        binary = self.binary or find_binary()
        if binary is None:
            raise FileNotFoundError(
                "the prometheus binary is not installed (Debian package 'prometheus')"
            )
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="controlplane-prometheus-"))
            self._own_dir = True
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        config_path = self.data_dir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(self.config()), encoding="utf-8")
        log = open(self.data_dir / "prometheus.log", "wb")
        self._proc = subprocess.Popen(  # noqa: S603 - fixed binary and arguments
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
                f"--storage.tsdb.retention.time={self.retention}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.wait_ready(f"{self.url}/-/ready", name="prometheus", wait_s=wait_s)
        return self

    def reload(self) -> None:
        assert self.data_dir is not None
        (self.data_dir / "prometheus.yml").write_text(
            yaml.safe_dump(self.config()), encoding="utf-8"
        )
        requests.post(f"{self.url}/-/reload", timeout=5).raise_for_status()
