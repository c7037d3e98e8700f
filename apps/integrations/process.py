"""What the local Prometheus and Alertmanager launchers share: a child process writing its
log into a data directory, stopped gently and cleaned up, usable as a context manager."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

import requests


class LocalServerProcess:
    """Mixin for launcher dataclasses that set ``data_dir``, ``_own_dir`` and ``_proc``
    and implement ``start()``."""

    log_name: ClassVar[str]
    data_dir: Path | None
    _own_dir: bool
    _proc: subprocess.Popen[Any] | None

    def start(self) -> Self:
        raise NotImplementedError

    def wait_ready(self, url: str, *, name: str, wait_s: float) -> None:
        """Poll ``url`` (a ``/-/ready`` endpoint) until it answers 200; stop the process and
        raise with the log's tail if it exits or does not get there in ``wait_s``."""
        assert self._proc is not None
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {self._proc.returncode}: {self.log_tail()}")
            try:
                if requests.get(url, timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"{name} did not become ready in {wait_s}s: {self.log_tail()}")

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
