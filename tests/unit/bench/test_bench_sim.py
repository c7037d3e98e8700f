"""The benchmark driver: delayed metric views, figures, GPU-hours, drain, determinism."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from apps.fleetsim.fleet import Fleet, SimulatedDeployment
from apps.fleetsim.profiles import L4
from apps.fleetsim.replica import RequestRecord
from apps.fleetsim.workload import Request, steady
from bench.autoscale import cli, policies
from bench.autoscale.sim import SimConfig, percentile, run, summarize
from bench.autoscale.traces import LENGTHS, synthetic
from tests.unit.bench.helpers import metric_log, state, view_of


def test_metrics_view__scrape_delay__sees_only_older_samples() -> None:
    rows = [{"waiting": float(i)} for i in range(1, 31)]  # sample at t = i holds i
    view = view_of(rows, now=30.0, delay_s=15.0)
    assert view.latest("waiting") == 15.0
    assert view.age_s == 15.0
    # Window of 5 s before the newest visible sample: t in (10, 15].
    assert view.mean("waiting", 5.0) == pytest.approx((11 + 12 + 13 + 14 + 15) / 5)


def test_metrics_view__before_first_visible_sample__nothing() -> None:
    view = view_of([{"waiting": 1.0}] * 5, now=5.0, delay_s=15.0)
    assert not view.available
    assert view.latest("waiting") is None


def test_metric_log__averages__skip_samples_without_ready_replicas() -> None:
    log = metric_log([{"ready": 2, "kv_avg": 0.4}, {"ready": 0}, {"ready": 1, "kv_avg": 0.8}])
    assert log.mean("kv_avg", 0, 2) == pytest.approx(0.6)
    assert log.mean("ready", 0, 2) == pytest.approx(1.0)


def test_percentile__nearest_rank__smallest_value_covering_q() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.99) == 4.0
    assert percentile([1.0, math.inf], 0.99) == math.inf


def test_summarize__failed_and_unfinished__miss_both_slos() -> None:
    def rec(i: int, ttft: float | None, itl: float | None, done: bool = True) -> RequestRecord:
        return RequestRecord(i, 0.0, 10, 10, done, 1.0, "p", ttft, itl)

    records = [rec(0, 0.5, 0.05), rec(1, 3.0, 0.05), rec(2, 0.5, 0.5), rec(3, None, None, False)]
    ttft_ok, itl_ok, p50, _, p99, failed = summarize(records, 5, SimConfig())
    assert ttft_ok == pytest.approx(2 / 5)
    assert itl_ok == pytest.approx(2 / 5)
    # Sorted: 0.5, 0.5, 3.0, inf, inf; the median is the third.
    assert (p50, p99, failed) == (3.0, math.inf, 2)


def test_run__static_count__gpu_hours_are_replicas_times_span() -> None:
    requests = steady(1.0, 600.0, seed=1, lengths=LENGTHS)
    cfg = SimConfig(initial_replicas=2, max_replicas=4)
    result = run("t", requests, 600.0, policies.Static("two", 2), cfg)
    assert result.gpu_hours == pytest.approx(2 * 600 / 3600)
    assert result.actions == 0
    assert result.requests == len(requests)
    assert result.ttft_ok > 0.95


def test_run__scale_up__replica_serves_after_cold_start() -> None:
    requests = steady(1.0, 300.0, seed=1, lengths=LENGTHS)
    cfg = SimConfig(initial_replicas=1, max_replicas=4, cold_start_s=60.0)
    result = run("t", requests, 300.0, policies.Scheduled("s", [1, 3], 150.0), cfg)
    ready_at = {t: ready for t, _, ready in result.timeline}
    assert ready_at[195.0] == 1  # asked for at 150 s, still starting 45 s later
    assert ready_at[210.0] == 3
    # Two more replicas from 150 s on, paid for while they start.
    assert result.gpu_hours == pytest.approx((300 + 2 * 150) / 3600)


def test_fleet_scale__drain__removed_replica_finishes_its_requests() -> None:
    burst = [Request(0.0, 500, 300) for _ in range(8)]

    def scaled_down(drain_s: float) -> SimulatedDeployment:
        dep = SimulatedDeployment("d", L4.model_name, "ns", L4, 2, burst)
        dep.advance(1.0)
        dep.scale(1, drain_s=drain_s)
        return dep

    draining = scaled_down(120.0)
    assert (draining.spec_replicas, draining.draining_replicas) == (1, 1)
    Fleet([draining]).run_until_idle()
    assert draining.draining_replicas == 0
    assert draining.totals().requeued == 0
    assert {r.pod for r in draining.completed()} == {"d-0", "d-1"}

    aborted = scaled_down(0.0)
    assert aborted.draining_replicas == 0
    assert aborted.totals().requeued == 4


def test_fleet_scale__drain_time_up__remaining_requests_requeued() -> None:
    burst = [Request(0.0, 500, 900) for _ in range(8)]
    dep = SimulatedDeployment("d", L4.model_name, "ns", L4, 2, burst)
    dep.advance(1.0)
    dep.scale(1, drain_s=5.0)
    Fleet([dep]).run_until_idle()
    assert dep.totals().requeued == 4
    assert sum(1 for r in dep.completed() if r.completed) == 8


def test_ours__kv_above_target__engine_decision_applied_and_history_kept() -> None:
    spec = policies.OursSpec()
    policy = policies.ours_policy(
        spec, min_replicas=1, max_replicas=20, cold_start_s=120.0, eval_period_s=15.0
    )
    ours = policies.Ours(policy)
    rows = [{"spec": 4, "ready": 4, "waiting": 0.0, "running": 40.0, "kv_avg": 0.8}] * 30
    desired = ours.decide(view_of(rows, 30.0, 15.0), state(30.0, 4))
    # Utilization target: ceil(4 * 0.8 / 0.52) = 7, within the 100 % / 4 pods step.
    assert desired == 7
    assert ours.last_applied == 7
    assert ours.history.scale_events == ((30.0, 4, 7),)
    # Kept with the time the reading was taken: 15 s of scrape delay before the decision.
    assert ours.history.signal_samples["kv_cache_usage"] == ((15.0, 0.8),)
    assert ours.rules["target:kv_cache_usage"] == 1


def test_ours__no_ready_replica_reported__kv_missing_not_zero() -> None:
    policy = policies.ours_policy(
        policies.OursSpec(), min_replicas=1, max_replicas=20, cold_start_s=120.0, eval_period_s=15.0
    )
    obs = policies.Ours(policy).observations(view_of([{"spec": 2, "ready": 0}] * 20, 20.0))
    assert obs["kv_cache_usage"].status == "missing"
    assert obs["queue_length"].value == 0.0


def test_ours_policy__panic_window__twice_the_evaluation_period() -> None:
    policy = policies.ours_policy(
        policies.OursSpec(), min_replicas=1, max_replicas=9, cold_start_s=90.0, eval_period_s=15.0
    )
    assert policy.panic_enabled
    assert policy.panic_window_s == 30.0
    assert policy.cold_start_s == 90.0


def test_synthetic__time_scale__same_requests_twice_as_fast() -> None:
    base = synthetic("step", seed=4)
    fast = synthetic("step", seed=4, time_scale=2.0)
    assert fast.duration_s == base.duration_s / 2
    assert len(fast.requests) == len(base.requests)
    assert fast.requests[10].arrival_s == pytest.approx(base.requests[10].arrival_s / 2)


def _write_trace_csv(path: Path) -> None:
    """A small trace in the Azure CSV format: ~0.8 requests/s for ten minutes."""
    origin = datetime(2023, 11, 16, 18, 0, 0)
    lines = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    for r in steady(0.8, 600.0, seed=9, lengths=LENGTHS):
        stamp = (origin + timedelta(seconds=r.arrival_s)).strftime("%Y-%m-%d %H:%M:%S.%f")
        lines.append(f"{stamp}0,{r.prompt_tokens},{r.output_tokens}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_benchmark__same_seed__same_results(tmp_path: Path) -> None:
    trace = tmp_path / "small.csv"
    _write_trace_csv(trace)
    args = [
        "--gpus",
        "L4",
        "--trace-csv",
        str(trace),
        "--policies",
        "oracle,ours,kpa,static-peak",
        "--jobs",
        "1",
    ]

    def results(out: Path) -> dict[str, object]:
        assert cli.main([*args, "--out", str(out)]) == 0
        data = json.loads((out / "results.json").read_text(encoding="utf-8"))
        small = data["cells"]["L4/small"]
        for r in small["results"]:
            r.pop("wall_s")
        small.pop("plan_wall_s")
        return small

    first, second = results(tmp_path / "a"), results(tmp_path / "b")
    assert first == second
    assert {r["policy"] for r in first["results"]} == {"oracle", "ours", "kpa", "static-peak"}
    assert first["requests"] > 400
    text = (tmp_path / "a" / "results.md").read_text(encoding="utf-8")
    assert "## L4/small" in text
    assert "| ours |" in text.split("## L4/small")[1]
