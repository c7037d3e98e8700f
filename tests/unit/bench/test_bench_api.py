"""Pure parts of bench/api.py: reading wrk's report, merging rounds, ratios and the table."""

from __future__ import annotations

import math

import pytest

from bench.api import Result, merge_runs, parse_wrk, percentile, ratios, render_table

WRK_OUTPUT = """Running 3s test @ http://127.0.0.1:8000/bench/baseline/
  2 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    12.31ms    4.01ms  40.12ms   70.00%
  942 requests in 3.00s, 300.00KB read
Requests/sec:    314.00
Transfer/sec:    100.00KB
BENCH {"requests": 942, "duration_us": 3000000, "p50_us": 12100, "p99_us": 28700, \
"non_2xx": 1, "socket_errors": 2}
"""


def test_parse_wrk__report_line__figures_in_seconds():
    result = parse_wrk("baseline", WRK_OUTPUT)
    assert result == Result("baseline", 942, 3.0, 0.0121, 0.0287, 3)
    assert result.per_s == pytest.approx(314.0)


def test_parse_wrk__no_report_line__error_names_the_output():
    with pytest.raises(ValueError, match="no BENCH line"):
        parse_wrk("x", "unable to connect to 127.0.0.1:1 Connection refused")


def test_merge_runs__two_rounds__total_rate_and_mean_percentiles():
    merged = merge_runs(
        "list",
        [Result("list", 100, 2.0, 0.010, 0.030, 0), Result("list", 300, 2.0, 0.020, 0.050, 1)],
    )
    assert merged.per_s == pytest.approx(100.0)
    assert (merged.p50_s, merged.p99_s, merged.failures) == (
        pytest.approx(0.015),
        pytest.approx(0.040),
        1,
    )


def test_ratios__half_as_fast__half_for_rate_and_latencies():
    baseline = Result("baseline", 200, 1.0, 0.010, 0.020, 0)
    endpoint = Result("list", 100, 1.0, 0.020, 0.040, 0)
    r = ratios(endpoint, baseline)
    assert (r.per_s, r.p50, r.p99) == (0.5, 0.5, 0.5)
    assert math.isnan(ratios(endpoint, Result("b", 0, 0.0, 0.0, 0.0, 0)).per_s)


def test_render_table__baseline_first_then_endpoints_with_ratios():
    baseline = Result("baseline", 200, 1.0, 0.010, 0.020, 0)
    table = render_table([(Result("decisions list", 100, 1.0, 0.020, 0.040, 0), "50")], baseline)
    lines = table.splitlines()
    assert lines[2].startswith("| baseline | - | 200 | 10.0 ms | 20.0 ms | 1.00x")
    assert lines[3] == ("| decisions list | 50 | 100 | 20.0 ms | 40.0 ms | 0.50x | 0.50x | 0.50x |")


def test_percentile__nearest_rank():
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 0.5) == 3.0
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 0.99) == 5.0
    assert math.isnan(percentile([], 0.5))
