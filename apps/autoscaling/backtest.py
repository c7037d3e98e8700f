"""Backtest: what a policy would have done over a past time range.

Two halves, like the live loop:

``backtest_replay`` (pure)
    Walks the range in evaluation steps and feeds the recorded readings to the very same
    ``engine.step`` the control loop calls, with a simulated replica count: replicas it
    adds become ready after the policy's cold-start time, replicas it removes go at once.
    The result is the replica timeline the policy would have produced, its actions, its
    replica-hours, and the same figures for what actually ran.

``backtest_run`` (I/O)
    Reads the range from Prometheus with one range query per signal the policy uses (the
    catalogue's PromQL for the deployment's framework, or the deployment's own custom query),
    plus the replicas that actually served: the number of pods reporting the framework's
    always-present gauge. SLO burn rates, for the SLO boost, come from the control plane's
    own SLO history.

It is an open-loop replay: the readings are what the *actual* fleet saw, and they do not
react to the simulated capacity. Deployment totals (waiting or running requests, tokens/s)
are demand and need no correction. Averages over ready replicas (KV-cache use, GPU
utilisation) are rescaled to the simulated count (the same total spread over that many
replicas). Latency percentiles cannot be rescaled and are fed as recorded, so a policy that
would have added capacity earlier still "sees" the latency of the fleet that did not.
Demand sizing learns capacity from the recorded throughput per replica that actually served
(where that count is known), and reads the recorded backlog as it was.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from apps.inventory.models import Deployment
from apps.metrics.services import (
    ClientFactory,
    SignalHistoryError,
    default_client_factory,
    signal_history,
)
from apps.slos.selectors import deployment_burn_rate_history

from . import engine

# Prometheus refuses range queries of more than 11,000 points per series.
MAX_POINTS = 11_000

Series = Sequence[tuple[float, float]]


class BacktestError(Exception):
    """The backtest cannot run; the message says why (and ``unavailable`` says whether
    Prometheus was the problem, which a caller may report as a service error)."""

    def __init__(self, message: str, *, unavailable: bool = False) -> None:
        super().__init__(message)
        self.unavailable = unavailable


@dataclass(frozen=True)
class Step:
    t: float
    replicas: int  # what the policy would have set
    ready: int  # of those, ready (the rest still starting)
    actual: int | None  # replicas that actually served (None: unknown at that time)
    rule: str
    reason: str


@dataclass(frozen=True)
class BacktestResult:
    start: float
    end: float
    step_s: float
    steps: tuple[Step, ...]
    gpus_per_replica: int = 1
    notes: tuple[str, ...] = ()
    signals: tuple[str, ...] = field(default=())

    @property
    def actions(self) -> int:
        """Replica changes the policy would have made."""
        return sum(1 for a, b in pairwise(self.steps) if a.replicas != b.replicas)

    @property
    def actual_actions(self) -> int:
        """Changes in the replicas that actually served (gaps are skipped over)."""
        known = [s.actual for s in self.steps if s.actual is not None]
        return sum(1 for a, b in pairwise(known) if a != b)

    @property
    def replica_hours(self) -> float:
        return sum(s.replicas for s in self.steps) * self.step_s / 3600.0

    @property
    def actual_replica_hours(self) -> float | None:
        """Over the steps where the actual count is known; None if it never is."""
        known = [s.actual for s in self.steps if s.actual is not None]
        if not known:
            return None
        return sum(known) * self.step_s / 3600.0

    @property
    def coverage(self) -> float:
        """Share of steps where the actual count is known."""
        if not self.steps:
            return 0.0
        return sum(1 for s in self.steps if s.actual is not None) / len(self.steps)

    def summary(self) -> dict[str, Any]:
        known = [s for s in self.steps if s.actual is not None]
        replica_h_known = sum(s.replicas for s in known) * self.step_s / 3600.0
        actual_h = self.actual_replica_hours
        below = sum(1 for s in known if s.replicas < (s.actual or 0))
        above = sum(1 for s in known if s.replicas > (s.actual or 0))
        return {
            "steps": len(self.steps),
            "signals": list(self.signals),
            "actions": self.actions,
            "actual_actions": self.actual_actions,
            "replicas_min": min((s.replicas for s in self.steps), default=None),
            "replicas_max": max((s.replicas for s in self.steps), default=None),
            "replica_hours": round(self.replica_hours, 4),
            "gpu_hours": round(self.replica_hours * self.gpus_per_replica, 4),
            "actual_replica_hours": None if actual_h is None else round(actual_h, 4),
            "actual_gpu_hours": None
            if actual_h is None
            else round(actual_h * self.gpus_per_replica, 4),
            # The policy's GPU-hours over the steps where the actual count is known: what
            # the actual GPU-hours compare with when the actual count is not known throughout.
            "gpu_hours_known": round(replica_h_known * self.gpus_per_replica, 4),
            # Like for like: over the steps where the actual count is known.
            "replica_hours_ratio": None if not actual_h else round(replica_h_known / actual_h, 4),
            "actual_coverage": round(self.coverage, 4),
            "steps_below_actual": below,
            "steps_above_actual": above,
            "rules": dict(Counter(s.rule for s in self.steps).most_common()),
            "notes": list(self.notes),
        }


# --------------------------------------------------------------------------- pure replay


def _grid_value(series: Series, start: float, step_s: float, n: int) -> list[float | None]:
    """Values aligned to the step grid (Prometheus range results already are)."""
    out: list[float | None] = [None] * n
    for t, v in series:
        i = round((t - start) / step_s)
        if 0 <= i < n and math.isfinite(v):
            out[i] = v
    return out


def backtest_replay(
    *,
    policy: engine.Policy,
    series: Mapping[str, Series],
    actual: Series,
    start: float,
    end: float,
    step_s: float,
    initial_replicas: int | None = None,
    gpus_per_replica: int = 1,
    notes: Sequence[str] = (),
) -> BacktestResult:
    """Replay ``policy`` over [start, end] every ``step_s`` on recorded ``series``
    (signal → [(t, value)]) and return the timeline. No I/O; deterministic."""
    if step_s <= 0:
        raise ValueError("step must be positive")
    if end < start:
        raise ValueError("end must not be before start")
    n = int((end - start) // step_s) + 1
    grids = {signal: _grid_value(points, start, step_s, n) for signal, points in series.items()}
    actual_grid = _grid_value(actual, start, step_s, n)
    kinds = {target.signal: target.kind for target in policy.targets}

    first_actual = next((int(a) for a in actual_grid if a is not None), None)
    replicas = initial_replicas if initial_replicas is not None else first_actual
    if replicas is None:
        replicas = policy.min_replicas
    replicas = max(policy.min_replicas, min(policy.max_replicas, int(replicas)))
    # Replicas present at the start are taken as ready: the range starts mid-flight.
    starting: list[float] = []
    history = engine.History()
    steps: list[Step] = []
    for i in range(n):
        now = start + i * step_s
        starting = [s for s in starting if now - s < policy.cold_start_s]
        ready = replicas - len(starting)
        actual_now = actual_grid[i]
        observations: dict[str, engine.Obs] = {}
        for signal, grid in grids.items():
            value = grid[i]
            if value is None:
                observations[signal] = engine.Obs(
                    None, None, "missing", reason="no data at this time in Prometheus"
                )
                continue
            if kinds.get(signal) == "utilization" and actual_now and ready > 0:
                # The same total spread over the simulated ready replicas.
                value = value * actual_now / ready
            observations[signal] = engine.Obs(value, 0.0)
        state = engine.ReplicaState(
            spec=replicas,
            ready=ready,
            starting=tuple(starting),
            observed_spec=replicas,
            last_applied=replicas,
            # The readings come from the replicas that actually served: capacity is learned
            # per actual replica (unknown: none is learned).
            measured=0 if actual_now is None else int(actual_now),
        )
        # A replay carries out every decision: the simulated count follows it.
        decision, history = engine.step(
            policy, observations, history, now, replicas=state, applied=True
        )
        steps.append(
            Step(
                now,
                replicas,
                ready,
                None if actual_now is None else int(actual_now),
                decision.rule,
                decision.reason,
            )
        )
        desired = decision.desired_replicas
        if desired > replicas:
            starting.extend([now] * (desired - replicas))
        elif desired < replicas:
            # Replicas still starting are the cheapest to give up.
            starting = sorted(starting)[: max(0, len(starting) - (replicas - desired))]
        replicas = desired
    return BacktestResult(
        start,
        end,
        step_s,
        tuple(steps),
        gpus_per_replica,
        tuple(notes),
        tuple(sorted(series)),
    )


# --------------------------------------------------------------------------- I/O


def _hold_slo_samples(
    points: list[tuple[float, float]], start: float, step_s: float, n: int
) -> list[tuple[float, float]]:
    """SLO history is kept per evaluation, not on our grid: carry each value forward to the
    grid steps until the next one (for at most five minutes)."""
    out = []
    j = -1
    for i in range(n):
        t = start + i * step_s
        while j + 1 < len(points) and points[j + 1][0] <= t:
            j += 1
        if j >= 0 and t - points[j][0] <= 300:
            out.append((t, points[j][1]))
    return out


def _capacity_signals(policy: engine.Policy) -> set[str]:
    """The backlog and latency that demand sizing reads besides its demand signal."""
    if not policy.sizes_by_demand:
        return set()
    cs = policy.capacity
    wanted = {cs.backlog_signal} if cs.backlog_signal else set()
    if cs.latency_slo_s is not None:
        wanted.add(cs.latency_signal)
    return wanted


def backtest_run(
    *,
    deployment: Deployment,
    policy: engine.Policy,
    start: float,
    end: float,
    step_s: float,
    client_factory: ClientFactory = default_client_factory,
) -> BacktestResult:
    """Read the range from Prometheus and replay ``policy`` over it."""
    if end <= start:
        raise BacktestError("end must be after start")
    if step_s < 1:
        raise BacktestError("step must be at least 1 second")
    points = int((end - start) // step_s) + 1
    if points > MAX_POINTS:
        raise BacktestError(
            f"{points} steps is more than Prometheus answers in one range query "
            f"({MAX_POINTS}); use a larger step or a shorter range"
        )
    if start > time.time():
        raise BacktestError("start is in the future")
    signals = sorted(
        {t.signal for t in policy.targets if t.signal != engine.SLO_BURN_RATE}
        | _capacity_signals(policy)
    )
    try:
        history = signal_history(
            deployment=deployment,
            signals=signals,
            start=datetime.fromtimestamp(start, UTC),
            end=datetime.fromtimestamp(end, UTC),
            step_s=step_s,
            client_factory=client_factory,
        )
    except SignalHistoryError as exc:
        raise BacktestError(str(exc), unavailable=exc.unavailable) from exc
    notes: list[str] = []
    for signal in history.unqueryable:
        notes.append(
            f"{signal}: {deployment.framework} exports no metric for it and there is no "
            "custom query; it reads as missing throughout"
        )
    if history.replicas is None:
        notes.append(f"the actual replica count is unknown for framework {deployment.framework}")
    for signal, count in history.multiple_series:
        notes.append(
            f"{signal}: the query returned {count} series; the highest value "
            "at each step is used (check the deployment's selector)"
        )
    series = dict(history.series)
    actual = history.replicas or []
    if policy.slo_boost.enabled:
        burn = deployment_burn_rate_history(
            deployment_id=deployment.pk,
            start=datetime.fromtimestamp(start, UTC),
            end=datetime.fromtimestamp(end, UTC),
        )
        if burn:
            series[engine.SLO_BURN_RATE] = _hold_slo_samples(burn, start, step_s, points)
        else:
            notes.append("no SLO history in the range: the SLO boost never triggers")
    empty = [s for s in signals if not series.get(s)]
    if empty:
        notes.append(f"no data in the range for {', '.join(empty)}: those targets hold throughout")
    return backtest_replay(
        policy=policy,
        series=series,
        actual=actual,
        start=start,
        end=end,
        step_s=step_s,
        gpus_per_replica=max(1, deployment.gpus_per_replica or 1),
        notes=notes,
    )


def backtest_policy(
    *, deployment: Deployment, overrides: Mapping[str, Any] | None = None
) -> engine.Policy:
    """The policy to replay: the saved one with ``overrides`` applied (validated as a saved
    policy would be). Without a saved policy, ``overrides`` must at least give targets."""
    from django.core.exceptions import ValidationError

    from .models import AutoscalingPolicy

    saved = AutoscalingPolicy.objects.filter(deployment=deployment).first()
    if saved is None and not (overrides or {}).get("targets"):
        raise BacktestError(
            "the deployment has no scaling policy: give one (at least its targets) to replay"
        )
    draft = saved if saved is not None else AutoscalingPolicy(deployment=deployment)
    draft.deployment = deployment
    for key, value in (overrides or {}).items():
        setattr(draft, key, value)
    try:
        draft.clean()
    except ValidationError as exc:
        raise BacktestError("; ".join(exc.messages)) from exc
    return draft.to_engine()


def backtest_payload(
    result: BacktestResult, deployment_id: int, timeline: str = "changes"
) -> dict[str, Any]:
    """The result as the API and the command show it; ``timeline`` is full, changes or none."""

    steps = list(result.steps)
    if timeline == "changes":
        steps = [
            s
            for i, s in enumerate(steps)
            if i == 0
            or (s.replicas, s.rule, s.actual)
            != (
                steps[i - 1].replicas,
                steps[i - 1].rule,
                steps[i - 1].actual,
            )
        ]
    elif timeline == "none":
        steps = []
    return {
        "deployment": deployment_id,
        "start": datetime.fromtimestamp(result.start, UTC),
        "end": datetime.fromtimestamp(result.end, UTC),
        "step_s": result.step_s,
        "summary": result.summary(),
        "steps": [
            {
                "t": datetime.fromtimestamp(s.t, UTC),
                "replicas": s.replicas,
                "ready": s.ready,
                "actual": s.actual,
                "rule": s.rule,
                "reason": s.reason,
            }
            for s in steps
        ],
    }
