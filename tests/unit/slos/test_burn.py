from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.slos.burn import (
    CONDITIONS,
    WindowCounts,
    burn_rate,
    evaluate,
    promql_duration,
    scaled_windows,
)


def test_scaled_windows__30d__workbook_windows_unchanged():
    w = scaled_windows("30d")
    assert (w["5m"], w["1h"], w["6h"], w["3d"], w["period"]) == (300, 3600, 21600, 259200, 2592000)


def test_scaled_windows__7d__scaled_by_period_ratio():
    w = scaled_windows("7d")
    assert w["1h"] == round(3600 * 7 / 30)  # 14 minutes
    assert w["5m"] == 70


def test_scaled_windows__compression__floors_at_30s():
    w = scaled_windows("30d", compression=1440)
    assert w["5m"] == 30
    assert w["period"] == 1800


@pytest.mark.parametrize(
    ("seconds", "text"), [(3600, "1h"), (840, "14m"), (70, "70s"), (86400, "1d")]
)
def test_promql_duration__renders_largest_whole_unit(seconds, text):
    assert promql_duration(seconds) == text


def _counts(bad_fraction: dict[str, float], total: float) -> dict[str, WindowCounts]:
    return {
        name: WindowCounts(total * (1 - bad_fraction.get(name, 0.0)), total)
        for name in ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "period")
    }


def test_evaluate__fast_burn_in_both_windows__pages():
    # 20 % bad against a 99 % objective is a burn rate of 20 in every window.
    result = evaluate(
        objective=0.99, counts=_counts({k: 0.2 for k in ("5m", "1h")}, 1000), min_requests=100
    )
    assert result.state == "page"
    assert "page:1h/5m" in result.firing
    assert result.burn_rates["1h"] == pytest.approx(20.0)


def test_evaluate__long_window_only__does_not_page():
    # The burn is over: 1h still shows it, 5m does not. The workbook's short window exists
    # precisely so that this resets quickly.
    result = evaluate(objective=0.99, counts=_counts({"1h": 0.2}, 1000), min_requests=100)
    assert "page:1h/5m" not in result.firing


def test_evaluate__few_requests__guarded_not_paged():
    result = evaluate(objective=0.99, counts=_counts({"5m": 0.5, "1h": 0.5}, 20), min_requests=100)
    assert result.state == "low_traffic"
    assert result.firing == ()
    assert "page:1h/5m" in result.guarded
    assert "minimum 100" in result.reason


def _counts_by_window(bad_fraction: float, totals: dict[str, float]) -> dict[str, WindowCounts]:
    return {name: WindowCounts(t * (1 - bad_fraction), t) for name, t in totals.items()}


def test_evaluate__quiet_short_window_busy_long_window__pages():
    # The guard reads the long window: 1000 requests in the last hour is traffic enough,
    # even though the last 5 minutes saw only 20 of them.
    totals = {"5m": 20.0, "30m": 150.0, "1h": 1000.0, "6h": 6000.0, "period": 10000.0}
    result = evaluate(objective=0.99, counts=_counts_by_window(0.5, totals), min_requests=100)
    assert result.state == "page"
    assert "page:1h/5m" in result.firing
    assert "page:1h/5m" not in result.guarded


def test_evaluate__quiet_long_window__guarded_with_long_window_count():
    # 60 requests over the hour is below the minimum; the reason names the long window's
    # count, not the short window's.
    totals = {"5m": 40.0, "1h": 60.0, "period": 10000.0}
    result = evaluate(objective=0.99, counts=_counts_by_window(0.5, totals), min_requests=50.5)
    assert result.state == "page"  # 1h has 60 >= 50.5: fires
    result = evaluate(objective=0.99, counts=_counts_by_window(0.5, totals), min_requests=100)
    assert result.state == "low_traffic"
    assert result.guarded == ("page:1h/5m",)
    assert "only 60 requests in 1h (minimum 100)" in result.reason


def test_evaluate__no_requests__no_data():
    result = evaluate(objective=0.99, counts=_counts({}, 0), min_requests=1)
    assert result.state == "no_data"


def test_evaluate__budget_remaining__from_period_sli():
    counts = _counts({"period": 0.005}, 10_000)
    result = evaluate(objective=0.99, counts=counts, min_requests=1)
    assert result.sli == pytest.approx(0.995)
    assert result.budget_remaining == pytest.approx(0.5)


@settings(max_examples=200, deadline=None)
@given(
    good=st.integers(min_value=0, max_value=10_000),
    extra_bad=st.integers(min_value=0, max_value=10_000),
    objective=st.sampled_from([0.9, 0.99, 0.995, 0.999]),
)
def test_burn_rate__matches_raw_count_arithmetic(good, extra_bad, objective):
    total = good + extra_bad
    rate = burn_rate(WindowCounts(good, total), objective)
    if total == 0:
        assert rate is None
    else:
        assert rate == pytest.approx((extra_bad / total) / (1 - objective))


@settings(max_examples=200, deadline=None)
@given(
    bad=st.dictionaries(
        st.sampled_from(["5m", "30m", "1h", "2h", "6h", "1d", "3d"]),
        st.floats(min_value=0, max_value=1),
        max_size=7,
    ),
    total=st.integers(min_value=1, max_value=100_000),
)
def test_evaluate__fires_exactly_the_conditions_whose_two_windows_burn(bad, total):
    counts = _counts(bad, total)
    result = evaluate(objective=0.99, counts=counts, min_requests=0)
    for cond in CONDITIONS:
        label = f"{cond.severity}:{cond.long}/{cond.short}"
        expect = all(
            bad.get(w, 0.0) / 0.01 >= cond.burn_rate - 1e-9 for w in (cond.long, cond.short)
        )
        assert (
            (label in result.firing) == expect
            or abs(bad.get(cond.long, 0) / 0.01 - cond.burn_rate) < 1e-6
            or abs(bad.get(cond.short, 0) / 0.01 - cond.burn_rate) < 1e-6
        )
