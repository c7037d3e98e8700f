"""Error budgets and multi-window, multi-burn-rate alert conditions, as pure functions.

The conditions are those of the Google SRE workbook, chapter "Alerting on SLOs"
(https://sre.google/workbook/alerting-on-slos/, table 5-8), written for a 30-day SLO:

| severity | long window | short window | burn rate | budget spent when it fires |
| page     | 1h          | 5m           | 14.4      | 2 %  |
| page     | 6h          | 30m          | 6         | 5 %  |
| ticket   | 1d          | 2h           | 3         | 10 % |
| ticket   | 3d          | 6h           | 1         | 10 % |

For other SLO periods every window is scaled by period / 30 days, so that each condition
still means "this share of the budget was spent" (a 7-day SLO pages on 14.4x over 14 min and
70 s). A condition fires only when both windows burn faster than its rate: the long window
shows the burn is significant, the short one that it is still going on.

Burn rate = (1 - SLI) / (1 - objective): 1 spends the budget exactly over the period.
"""

from __future__ import annotations

from dataclasses import dataclass

THIRTY_DAYS_S = 30 * 86400
PERIODS_S = {"7d": 7 * 86400, "28d": 28 * 86400, "30d": THIRTY_DAYS_S}

# Burn-rate windows for a 30-day SLO, by name.
BASE_WINDOWS_S = {
    "5m": 300,
    "30m": 1800,
    "1h": 3600,
    "2h": 7200,
    "6h": 21600,
    "1d": 86400,
    "3d": 259200,
}
# Prometheus needs a few samples in a window; below this a window is too short to mean much.
MIN_WINDOW_S = 30


@dataclass(frozen=True)
class Condition:
    severity: str  # page | ticket
    long: str
    short: str
    burn_rate: float


CONDITIONS = (
    Condition("page", "1h", "5m", 14.4),
    Condition("page", "6h", "30m", 6.0),
    Condition("ticket", "1d", "2h", 3.0),
    Condition("ticket", "3d", "6h", 1.0),
)


def scaled_windows(period: str, *, compression: float = 1.0) -> dict[str, int]:
    """Window lengths in seconds for an SLO period, plus "period" itself.

    ``compression`` > 1 shortens every window by that factor; it exists for demos and tests
    that drive a simulated fleet in real time and cannot wait hours.
    """
    if period not in PERIODS_S:
        raise ValueError(f"unknown SLO window {period!r}; use one of {', '.join(PERIODS_S)}")
    if compression < 1:
        raise ValueError("compression must be at least 1")
    scale = PERIODS_S[period] / THIRTY_DAYS_S / compression
    windows = {name: max(MIN_WINDOW_S, round(s * scale)) for name, s in BASE_WINDOWS_S.items()}
    windows["period"] = max(MIN_WINDOW_S, round(PERIODS_S[period] / compression))
    return windows


def promql_duration(seconds: int) -> str:
    """Render seconds as a PromQL duration (e.g. 4200 → 70m, 70 → 70s)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class WindowCounts:
    good: float | None
    total: float | None


@dataclass(frozen=True)
class Evaluation:
    state: str  # ok | ticket | page | no_data | low_traffic
    sli: float | None  # over the SLO period
    budget_remaining: float | None  # 1 = untouched, 0 = spent, < 0 = overspent
    burn_rates: dict[str, float | None]
    totals: dict[str, float | None]
    firing: tuple[str, ...]  # conditions that fire, e.g. "page:1h/5m"
    guarded: tuple[str, ...]  # conditions that would fire but lack traffic
    reason: str


def burn_rate(counts: WindowCounts, objective: float) -> float | None:
    if counts.total is None or counts.good is None or counts.total <= 0:
        return None
    bad_ratio = min(1.0, max(0.0, 1.0 - counts.good / counts.total))
    return bad_ratio / (1.0 - objective)


def evaluate(
    *, objective: float, counts: dict[str, WindowCounts], min_requests: float
) -> Evaluation:
    """Evaluate an SLO from good/total counts per window (keys as in scaled_windows).

    ``objective`` is a fraction (0.995). ``min_requests`` is the minimum-traffic guard: a
    condition whose long window saw fewer requests cannot fire, so that a handful of
    failures on a quiet night does not page anyone.
    """
    if not 0 < objective < 1:
        raise ValueError("objective must be strictly between 0 and 1")
    rates = {name: burn_rate(c, objective) for name, c in counts.items()}
    totals = {name: c.total for name, c in counts.items()}
    period = counts.get("period", WindowCounts(None, None))
    sli = None
    budget = None
    if period.total and period.good is not None:
        sli = max(0.0, min(1.0, period.good / period.total))
        budget = 1.0 - (1.0 - sli) / (1.0 - objective)

    if all(t is None or t <= 0 for t in totals.values()):
        return Evaluation(
            "no_data", sli, budget, rates, totals, (), (), "no requests in any window"
        )
    firing: list[str] = []
    guarded: list[str] = []
    for cond in CONDITIONS:
        long_rate, short_rate = rates.get(cond.long), rates.get(cond.short)
        if long_rate is None or short_rate is None:
            continue
        if long_rate >= cond.burn_rate and short_rate >= cond.burn_rate:
            label = f"{cond.severity}:{cond.long}/{cond.short}"
            if (totals.get(cond.long) or 0) < min_requests:
                guarded.append(label)
            else:
                firing.append(label)
    if any(f.startswith("page") for f in firing):
        state = "page"
    elif firing:
        state = "ticket"
    elif guarded:
        state = "low_traffic"
    else:
        state = "ok"
    reason = _reason(state, firing, guarded, rates, totals, min_requests)
    return Evaluation(state, sli, budget, rates, totals, tuple(firing), tuple(guarded), reason)


def _reason(
    state: str,
    firing: list[str],
    guarded: list[str],
    rates: dict[str, float | None],
    totals: dict[str, float | None],
    min_requests: float,
) -> str:
    def fmt(label: str) -> str:
        long, short = label.split(":", 1)[1].split("/")
        return f"{label} (burn {rates[long]:.1f}x over {long}, {rates[short]:.1f}x over {short})"

    if firing:
        return "; ".join(fmt(label) for label in firing)
    if guarded:
        first = guarded[0].split(":", 1)[1].split("/")[0]
        return (
            f"{', '.join(guarded)} would fire but only {totals.get(first) or 0:.0f} requests "
            f"in {first} (minimum {min_requests:.0f})"
        )
    return "within budget"
