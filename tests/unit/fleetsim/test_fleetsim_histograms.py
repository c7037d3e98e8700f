from __future__ import annotations

import pytest

from apps.fleetsim.histograms import VLLM_ITL_BUCKETS, VLLM_TTFT_BUCKETS, Histogram


def test_histogram__observe_linear__matches_one_by_one_observations() -> None:
    fast = Histogram(VLLM_ITL_BUCKETS)
    slow = Histogram(VLLM_ITL_BUCKETS)

    fast.observe_linear(0.008, 0.0004, 500, weight=3)
    for k in range(500):
        slow.observe(0.008 + 0.0004 * k, 3)

    assert fast.counts == slow.counts
    assert fast.count == slow.count == 1500
    assert fast.sum == pytest.approx(slow.sum)


def test_histogram__quantile__interpolates_within_bucket() -> None:
    histogram = Histogram(VLLM_TTFT_BUCKETS)
    for _ in range(100):
        histogram.observe(0.3)

    assert 0.25 < histogram.quantile(0.5) <= 0.5
    assert histogram.cumulative()[-1] == 100
