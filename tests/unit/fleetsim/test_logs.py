"""The simulated replicas' log lines (from a real simulated fleet stepped in simulated time)
and their shipping as Loki push JSON to a local HTTP server, with retries."""

from __future__ import annotations

import gzip
import json

import pytest

from apps.fleetsim import workload
from apps.fleetsim.fleet import Fleet, SimulatedDeployment
from apps.fleetsim.logs import FleetLogs, LogLine, LokiShipper, loki_push_body
from apps.fleetsim.profiles import get_profile
from tests.servers import RecordingServer

WALL = 1_780_000_000 * 10**9


def _fleet(rate=3.0, replicas=1):
    sim = SimulatedDeployment(
        "chat", "llama", "llm", get_profile("A100-80GB"), replicas=replicas,
        workload=workload.steady(rate, 3600, seed=3), seed=1,
    )  # fmt: skip
    return Fleet([sim]), sim


def _texts(lines):
    return [line.line for line in lines]


def test_fleet_logs__lifecycle_throughput_and_aborts():
    fleet, sim = _fleet()
    logs = FleetLogs(interval_s=10.0)
    first = logs.observe(fleet.snapshot(), WALL)
    assert any("Starting to load model llama" in t for t in _texts(first))
    labels = dict(first[0].labels)
    assert labels == {"container": "vllm", "deployment": "chat", "level": "info",
                      "namespace": "llm", "pod": labels["pod"]}  # fmt: skip
    assert [line.timestamp_ns for line in first] == sorted({line.timestamp_ns for line in first})

    fleet.step_to(5.0)
    fleet.step_to(30.0)
    later = _texts(logs.observe(fleet.snapshot(), WALL + 30 * 10**9))
    throughput = [t for t in later if "Avg prompt throughput" in t]
    assert len(throughput) == 1
    assert "Running:" in throughput[0]
    assert "GPU KV cache usage:" in throughput[0]
    assert not any("Starting to load" in t for t in later)  # said once per replica

    sim.set_rate_multiplier(50.0)  # requests pile up on the replica
    fleet.step_to(40.0)
    logs.observe(fleet.snapshot(), WALL + 40 * 10**9)
    running = fleet.snapshot().deployments[0].replicas[0].num_running
    assert running > 0
    sim.scale(0)
    fleet.step_to(41.0)
    assert not fleet.snapshot().deployments[0].replicas
    gone = logs.observe(fleet.snapshot(), WALL + 41 * 10**9)
    # Removed with requests in flight (as last seen): each one aborted, then the shutdown.
    assert sum("Aborted request" in t for t in _texts(gone)) == running
    assert "Shutting down FastAPI HTTP server." in gone[-1].line
    assert dict(gone[-1].labels)["deployment"] == "chat"


def test_loki_push_body__grouped_by_stream_gzip_json():
    a = (("app", "x"),)
    body = loki_push_body(
        [LogLine(a, 2, "two"), LogLine((("app", "y"),), 3, "y"), LogLine(a, 5, "five")]
    )
    data = json.loads(gzip.decompress(body))
    assert data == {"streams": [
        {"stream": {"app": "x"}, "values": [["2", "two"], ["5", "five"]]},
        {"stream": {"app": "y"}, "values": [["3", "y"]]},
    ]}  # fmt: skip


def test_loki_shipper__retries_429_and_5xx__then_ships_with_the_token():
    answers = iter([(429, {"Retry-After": "1"}, b""), (503, {}, b""), (204, {}, b"")])
    server = RecordingServer(lambda request: next(answers))
    try:
        shipper = LokiShipper(f"{server.url}/loki/api/v1/push", "tok-123", attempts=5)
        assert shipper.ship([LogLine((("app", "x"),), 1, "hello")], sleep=lambda s: None)
        assert len(server.requests) == 3
        request = server.requests[-1]
        assert request.headers["Authorization"] == "Bearer tok-123"
        assert request.headers["Content-Encoding"] == "gzip"
        assert json.loads(gzip.decompress(request.body))["streams"][0]["values"] == [["1", "hello"]]
    finally:
        server.stop()


@pytest.mark.parametrize(("status", "tries"), [(400, 1), (500, 3)])
def test_loki_shipper__refused_or_down__gives_up_without_raising(status, tries):
    server = RecordingServer(lambda request: (status, {}, b"no"))
    try:
        shipper = LokiShipper(f"{server.url}/loki/api/v1/push", "tok", attempts=3)
        assert not shipper.ship([LogLine((("app", "x"),), 1, "hello")], sleep=lambda s: None)
        assert len(server.requests) == tries
    finally:
        server.stop()
