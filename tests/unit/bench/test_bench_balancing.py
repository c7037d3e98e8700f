"""Pure parts of bench/balancing.py: key movement, in-flight counts from a replica's
metrics, wrk's report, paired latencies and the report."""

from __future__ import annotations

import json

import pytest

from bench.api import Result
from bench.balancing import (
    Disruption,
    HashRow,
    Movement,
    as_json,
    key_movement,
    paired_latency,
    prometheus_in_flight,
    render_report,
    wrk_counts,
    wrk_latency,
)

METRICS = """# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{deployment="chat",engine="0",model_name="m",pod="chat-3"} 3.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{deployment="chat",engine="0",model_name="m",pod="chat-3"} 2.0
vllm:num_requests_running_total{pod="chat-3"} 40.0
vllm:kv_cache_usage_perc{pod="chat-3"} 0.5
"""


def test_key_movement__member_added__moves_to_it_counted_none_stray():
    before = {"a": "r0", "b": "r1", "c": "r0", "d": "r1"}
    after = {"a": "r2", "b": "r1", "c": "r0", "d": "r2"}
    movement = key_movement(before, after, "r2")
    assert movement == Movement(keys=4, moved=2, on_changed=2, stray=0)
    assert movement.fraction == 0.5


def test_key_movement__key_moved_between_unchanged_members__stray():
    before = {"a": "r0", "b": "r1", "c": "r2"}
    after = {"a": "r1", "b": "r1", "c": "r0"}  # r2 removed: c must move, a need not
    movement = key_movement(before, after, "r2")
    assert (movement.moved, movement.on_changed, movement.stray) == (2, 1, 1)
    assert movement.changed_fraction == pytest.approx(1 / 3)


def test_key_movement__only_keys_in_both_placements_count():
    movement = key_movement({"a": "r0", "b": "r0"}, {"a": "r0", "z": "r1"}, "r1")
    assert movement == Movement(keys=1, moved=0, on_changed=0, stray=0)


def test_prometheus_in_flight__running_plus_waiting_only():
    assert prometheus_in_flight(METRICS) == 5


def test_prometheus_in_flight__idle_replica__zero():
    assert prometheus_in_flight("# nothing here\n") == 0


def test_wrk_counts__report_line__kinds_kept_apart():
    output = (
        "Running 3s test @ http://127.0.0.1:1/v1/completions\n"
        'BENCH {"requests": 900, "duration_us": 3000000, "p50_us": 1200, "p99_us": 9000, '
        '"non_2xx": 2, "socket_errors": 7}\n'
    )
    assert wrk_counts(output) == {"requests": 900, "non_2xx": 2, "socket_errors": 7}


def test_wrk_counts__no_report_line__error():
    with pytest.raises(ValueError, match="no BENCH line"):
        wrk_counts("unable to connect")


def test_paired_latency__median_of_the_differences_not_of_the_percentiles():
    pairs = [(0.001, 0.0012), (0.002, 0.0021), (0.010, 0.0102), (0.003, 0.0031), (0.004, 0.0041)]
    latency = paired_latency("models", pairs)
    assert latency.direct_p50 == 0.003
    assert latency.nginx_p50 == pytest.approx(0.0031)
    assert latency.added_p50 == pytest.approx(0.0001)
    assert latency.ratio_p50 == pytest.approx(0.0031 / 0.003)
    assert latency.samples == 5


def test_wrk_latency__rounds__mean_percentiles_and_difference():
    direct = [Result("d", 100, 1.0, 0.001, 0.004, 0), Result("d", 100, 1.0, 0.003, 0.006, 0)]
    proxied = [Result("n", 90, 1.0, 0.0025, 0.006, 0), Result("n", 90, 1.0, 0.0035, 0.008, 0)]
    latency = wrk_latency("completion", direct, proxied)
    assert (latency.direct_p50, latency.nginx_p50) == (pytest.approx(0.002), pytest.approx(0.003))
    assert latency.added_p50 == pytest.approx(0.001)
    assert latency.ratio_p99 == pytest.approx(0.007 / 0.005)
    assert latency.samples == 380


def test_report__tables_and_json_carry_every_figure():
    latencies = [paired_latency("first_byte", [(0.002, 0.0025)])]
    disruptions = [
        Disruption("10 reloads", True, 1000, 1, 4, 90, 2, {"reloads": 10}),
    ]
    hashes = [HashRow(4, "add 1", 0.2, Movement(10_000, 2100, 2100, 0), True)]
    text = render_report(latencies, disruptions, hashes)
    assert "| stream, first byte | python | 2.00 ms | 2.50 ms |" in text
    assert "| 10 reloads | 1000 | 1 | 4 | 90 | 2 | 7 | reloads 10 |" in text
    assert "| 4 | add 1 | 10000 | 2100 | 21.00% | 20.00% | 21.00% | 0 |" in text
    data = json.loads(json.dumps(as_json(latencies, disruptions, hashes)))
    assert data["latency"][0]["added_p50_ms"] == 0.5
    assert data["disruptions"][0]["failed"] == 7
    assert data["disruptions"][0]["reloads"] == 10
    assert data["consistent_hash"][0]["moved_fraction"] == 0.21
