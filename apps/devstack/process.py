"""What the local Prometheus and Alertmanager launchers share: finding the binary, a data
directory with the config file, a child process on a free loopback port writing its log
there, waiting until it is ready, stopping it gently and cleaning up; usable as a context
manager. A launcher dataclass declares its own fields and what differs: its name, binary
names, config file, config and command-line arguments."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

import requests
import yaml


def find_binary(names: tuple[str, ...]) -> str | None:
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


@dataclass(kw_only=True)
class LocalServerProcess:
    """Base of the launcher dataclasses: the fields every launcher has (keyword-only, so a
    launcher's own fields keep their positions)."""

    name: ClassVar[str]  # "prometheus"
    binary_names: ClassVar[tuple[str, ...]]
    install_hint: ClassVar[str]  # how to get the binary, for the error
    config_name: ClassVar[str]
    log_name: ClassVar[str]

    data_dir: Path | None = None  # None: a temporary directory, removed by cleanup()
    port: int = 0  # 0: a free port
    extra_args: list[str] = field(default_factory=list)  # more command-line arguments
    binary: str | None = None  # None: found by binary_names
    _proc: subprocess.Popen[Any] | None = None
    _own_dir: bool = False

    def config(self) -> dict[str, object]:
        raise NotImplementedError

    def arguments(self, config_path: Path) -> list[str]:
        """Command-line arguments after the binary (``data_dir`` and ``port`` are set)."""
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait_s: float = 30.0) -> Self:
        binary = self.binary or find_binary(self.binary_names)
        if binary is None:
            raise FileNotFoundError(
                f"the {self.name} binary is not installed ({self.install_hint})"
            )
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix=f"controlplane-{self.name}-"))
            self._own_dir = True
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        config_path = self.write_config()
        # The child keeps its own handle on the log; ours closes once it has started.
        with open(self.data_dir / self.log_name, "wb") as log:
            self._proc = subprocess.Popen(  # noqa: S603 - fixed binary and arguments
                [binary, *self.arguments(config_path)], stdout=log, stderr=subprocess.STDOUT
            )
        self.wait_ready(wait_s=wait_s)
        return self

    def write_config(self) -> Path:
        assert self.data_dir is not None
        path = self.data_dir / self.config_name
        path.write_text(yaml.safe_dump(self.config()), encoding="utf-8")
        return path

    def wait_ready(self, *, wait_s: float) -> None:
        """Poll ``/-/ready`` until it answers 200; stop the process and raise with the log's
        tail if it exits or does not get there in ``wait_s``."""
        assert self._proc is not None
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self._proc.returncode}: {self.log_tail()}"
                )
            try:
                if requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"{self.name} did not become ready in {wait_s}s: {self.log_tail()}")

    def log_text(self) -> str:
        if self.data_dir is None:
            return ""
        try:
            return (self.data_dir / self.log_name).read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        self._proc = None

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()
