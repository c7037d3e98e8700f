"""Prometheus-style histograms of the replica model, with vLLM's own bucket boundaries."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

__all__ = ["VLLM_E2E_BUCKETS", "VLLM_ITL_BUCKETS", "VLLM_TTFT_BUCKETS", "Histogram"]

# Histogram bucket boundaries exactly as vLLM's Prometheus logger declares them
# (vllm/v1/metrics/loggers.py, PrometheusStatLogger, checked against the source; the
# e2e list is vLLM's shared "request_latency_buckets"). Keeping them identical means
# dashboards, recording rules and histogram_quantile() results carry over to real
# clusters.
VLLM_TTFT_BUCKETS: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
    2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
VLLM_ITL_BUCKETS: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0,
    2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip
VLLM_E2E_BUCKETS: tuple[float, ...] = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0,
    50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip


class Histogram:
    """Cumulative-export histogram with fixed upper bounds (Prometheus ``le`` semantics)."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds: tuple[float, ...] = tuple(bounds)
        if any(b2 <= b1 for b1, b2 in zip(self.bounds, self.bounds[1:], strict=False)):
            raise ValueError("histogram bounds must be strictly increasing")
        # One slot per finite bound plus the +Inf overflow; stored non-cumulative.
        self.counts: list[int] = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float, weight: int = 1) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += weight
        self.sum += value * weight
        self.count += weight

    def observe_linear(self, first: float, slope: float, n: int, weight: int = 1) -> None:
        """Observe ``first + slope*k`` for each ``k in range(n)``, ``weight`` times each.

        Costs O(buckets) instead of O(n): decode segments observe thousands of
        inter-token gaps at once.
        """
        if n <= 0 or weight <= 0:
            return
        bounds = self.bounds
        last = first + slope * (n - 1)
        lo = bisect.bisect_left(bounds, first)
        hi = bisect.bisect_left(bounds, last)
        counts = self.counts
        if lo == hi or slope <= 0.0:
            counts[lo] += n * weight
        else:
            taken = 0
            for j in range(lo, hi):
                bound = bounds[j]
                # Values <= bound are those with k <= (bound - first) / slope; the two
                # loops settle rounding so values landing on a bound count as observe().
                upto = min(n, max(0, math.floor((bound - first) / slope) + 1))
                while upto < n and first + slope * upto <= bound:
                    upto += 1
                while upto > 0 and first + slope * (upto - 1) > bound:
                    upto -= 1
                counts[j] += (upto - taken) * weight
                taken = upto
            counts[hi] += (n - taken) * weight
        self.sum += weight * (n * first + slope * n * (n - 1) / 2.0)
        self.count += n * weight

    def cumulative(self) -> list[int]:
        """Counts per finite bound then +Inf, cumulative, as Prometheus exposes them."""
        out: list[int] = []
        running = 0
        for c in self.counts:
            running += c
            out.append(running)
        return out

    def quantile(self, q: float) -> float:
        """Estimate like PromQL's ``histogram_quantile`` (linear within a bucket)."""
        if not 0.0 <= q <= 1.0:
            raise ValueError("q must be within [0, 1]")
        if self.count == 0:
            return math.nan
        rank = q * self.count
        running = 0
        for i, c in enumerate(self.counts):
            if running + c >= rank and c > 0:
                if i == len(self.bounds):
                    return self.bounds[-1] if self.bounds else math.inf
                lower = self.bounds[i - 1] if i > 0 else 0.0
                return lower + (self.bounds[i] - lower) * (rank - running) / c
            running += c
        return self.bounds[-1] if self.bounds else math.inf

    def copy(self) -> Histogram:
        other = Histogram.__new__(Histogram)
        other.bounds = self.bounds
        other.counts = list(self.counts)
        other.sum = self.sum
        other.count = self.count
        return other

    def merge(self, other: Histogram) -> None:
        if other.bounds != self.bounds:
            raise ValueError("cannot merge histograms with different bounds")
        for i, c in enumerate(other.counts):
            self.counts[i] += c
        self.sum += other.sum
        self.count += other.count
