"""/metrics under gunicorn with several workers: one scrape reports what all of them served."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from apps.devstack.prometheus import free_port
from tests.servers import spawn_python

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
HEALTHZ_SERIES = {"method": "GET", "route": "healthz", "status": "200"}


@dataclass
class Gunicorn:
    url: str
    proc: subprocess.Popen[bytes]
    metrics_dir: Path

    def worker_pids_that_counted(self) -> set[int]:
        """Workers that have counted a request: each keeps its counters in its own file."""
        return {int(p.stem.rsplit("_", 1)[1]) for p in self.metrics_dir.glob("counter_*.db")}


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[Gunicorn]:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"")  # a stale file, emptied at startup
    port = free_port()
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "CONTROLPLANE_VAR_DIR": str(tmp_path / "var"),
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
    }
    log = tmp_path / "gunicorn.log"
    proc = spawn_python(
        "-m",
        "gunicorn",
        "--config",
        str(ROOT / "deploy" / "gunicorn.conf.py"),
        "controlplane.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "2",
        env=env,
        log=log,
    )
    server = Gunicorn(f"http://127.0.0.1:{port}", proc, metrics_dir)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
            try:
                if requests.get(f"{server.url}/metrics", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.2)
        yield server
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _healthz_count(url: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "controlplane_http_requests_total" and all(
                sample.labels.get(k) == v for k, v in HEALTHZ_SERIES.items()
            ):
                return sample.value
    return 0.0


def _send_until_both_workers_served(server: Gunicorn) -> int:
    """Sends /healthz in concurrent batches until both workers have served some; returns
    how many were sent (all answered 200)."""

    def one(_: int) -> int:
        return requests.get(f"{server.url}/healthz", timeout=10).status_code

    sent = 0
    with ThreadPoolExecutor(max_workers=6) as pool:
        for _ in range(20):
            statuses = list(pool.map(one, range(30)))
            assert statuses == [200] * len(statuses)
            sent += len(statuses)
            if len(server.worker_pids_that_counted()) >= 2:
                return sent
    pytest.fail("one worker served every request; cannot tell the workers' counts apart")


def test_metrics__two_gunicorn_workers__every_scrape_reports_all_requests(gunicorn):
    sent = _send_until_both_workers_served(gunicorn)
    # Several scrapes, answered by whichever worker: each reports every request.
    assert [_healthz_count(gunicorn.url) for _ in range(6)] == [float(sent)] * 6


def test_metrics__worker_replaced__counter_does_not_go_back(gunicorn):
    sent = _send_until_both_workers_served(gunicorn)
    victim = min(gunicorn.worker_pids_that_counted())
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while _exists(victim):  # until the master has reaped it (and run child_exit)
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert [_healthz_count(gunicorn.url) for _ in range(4)] == [float(sent)] * 4
    text = requests.get(f"{gunicorn.url}/metrics", timeout=10).text
    in_progress = [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "controlplane_http_requests_in_progress"
    ]
    # The scrape itself is the one request in progress; the killed worker's gauge is gone.
    assert in_progress == [1.0]


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
