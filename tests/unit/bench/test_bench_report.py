"""Target checks and tables of the benchmark report."""

from __future__ import annotations

from bench.autoscale.report import check_targets, describe_check, table
from bench.autoscale.sim import RunResult


def _result(policy: str, ttft_ok: float, gpu_hours: float) -> RunResult:
    return RunResult(
        trace="t",
        policy=policy,
        requests=1000,
        ttft_ok=ttft_ok,
        itl_ok=1.0,
        ttft_p50=0.3,
        ttft_p95=1.2,
        ttft_p99=1.9,
        gpu_hours=gpu_hours,
        cost=gpu_hours * 2,
        actions=3,
        replicas_min=2,
        replicas_max=9,
        failed=0,
        requeued=0,
        wall_s=0.1,
    )


def test_check_targets__cheapest_passing_baseline__compared_with_ours() -> None:
    results = [
        _result("ours", 0.995, 10.0),
        _result("oracle", 0.991, 9.0),
        _result("hpa-signals", 0.999, 12.5),
        _result("kpa", 0.98, 8.0),  # cheaper but misses the SLO: not the reference
        _result("hpa-gpu", 0.999, 20.0),
    ]
    check = check_targets(results, slo_target=0.99)
    assert check is not None
    assert check.cheapest_baseline == "hpa-signals"
    assert check.baseline_ratio == 10.0 / 12.5
    assert check.baseline_met
    assert round(check.oracle_ratio or 0, 3) == 1.111
    assert check.all_met


def test_check_targets__over_the_oracle_bound__missed() -> None:
    results = [_result("ours", 0.995, 13.0), _result("oracle", 0.99, 10.0)]
    check = check_targets(results, slo_target=0.99)
    assert check is not None
    assert not check.oracle_met
    assert check.cheapest_baseline is None
    assert "1.30x, MISSED" in describe_check(check, 0.99)


def test_check_targets__ours_below_slo__missed() -> None:
    check = check_targets([_result("ours", 0.985, 5.0)], slo_target=0.99)
    assert check is not None
    assert not check.slo_met
    assert not check.all_met


def test_table__rows__oracle_then_ours_then_baselines() -> None:
    text = table(
        [_result("kpa", 0.99, 8.0), _result("ours", 0.995, 10.0), _result("oracle", 1.0, 9.0)],
        2.0,
        0.2,
    )
    rows = [line.split("|")[1].strip() for line in text.splitlines()[2:]]
    assert rows == ["oracle (reference)", "ours", "kpa"]
    assert "| 99.50 % |" in text
    assert "TTFT ≤ 2 s" in text.splitlines()[0]
