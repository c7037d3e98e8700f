"""The control plane for a benchmark: Django set up in the benchmark's own process, and a web
server started as a child process that answers ``/healthz`` before the benchmark begins."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def django_setup(env: dict[str, str]) -> None:
    """Set Django up in this process with ``env`` added to the environment."""
    os.environ.update(env)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    # whitenoise warns when collectstatic has not run; nothing static is served here.
    warnings.filterwarnings("ignore", "No directory at", UserWarning)
    django.setup()


@dataclass
class Server:
    description: str
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def gunicorn_command(port: int, workers: int, config: Path | None = None) -> list[str]:
    command = [sys.executable, "-m", "gunicorn", "controlplane.wsgi:application"]
    command += ["--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--timeout", "120"]
    if config is not None:
        command += ["--config", str(config)]
    return command


def server_start(
    command: list[str], *, port: int, env: dict[str, str], log: Path, description: str
) -> Server:
    """Run ``command`` (listening on ``port``) from the repository root, its output in
    ``log``, and wait up to a minute for ``/healthz`` to answer 200."""
    import requests

    name = description.split(",")[0]
    with open(log, "wb") as handle:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)
    server = Server(description, f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            if requests.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.2)
    server.stop()
    raise TimeoutError(f"{name} did not answer /healthz: {log.read_text(errors='replace')[-2000:]}")
