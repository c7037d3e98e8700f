"""``step``: one control step, the decision and the history it leaves behind.

The live loop, the backtest and the benchmark all call this; they only say where the
observations and replica counts come from and whether a change was applied.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from .decide import decide
from .types import OK, Decision, History, Obs, Policy, ReplicaState, taken

Applied = bool | Callable[[Decision], bool]


def step(
    policy: Policy,
    observations: Mapping[str, Obs],
    history: History,
    now: float,
    *,
    replicas: ReplicaState,
    applied: Applied,
    between_scrapes: bool = False,
) -> tuple[Decision, History]:
    """Decide, then return the decision and the history for the next step.

    **Applied** means the decision's change is carried out on the scale target: the caller
    sets the decided count (or queues setting it) because the policy is enforced and nothing
    (a pause, a pin to the current count) stops it. Give ``applied`` as a constant (a replay
    or a simulation carries out every decision: True) or as a callable asked once with the
    decision. Only a change that is applied and that the decision made
    (``Decision.changed``) is recorded as a scale event ``(now, current, desired)``; the
    rate limits count those, so a dry run never uses up the scale-up budget. The caller's
    ``ReplicaState.last_applied`` for the next step is then the count it set.

    The history advances the same way whether or not the change was applied: the raw
    recommendation, the load and the panic time (:meth:`History.advance`), and every usable
    reading of ``observations`` as a signal sample, kept for ``Policy.stable_window_s`` (the
    short-window values panic mode reads). Samples and events older than
    ``Policy.history_horizon_s`` are dropped.

    ``between_scrapes``: the observations include the fast path's (a couple of seconds of
    the replicas' own counters, :mod:`apps.metrics.fastpath`); the decision is made and
    recorded, but its demand is not kept as a demand sample and nothing it learned about
    capacity is kept.
    """
    decision = decide(policy, observations, history, now, replicas=replicas)
    was_applied = applied(decision) if callable(applied) else applied
    recorded = decision
    if between_scrapes:
        # A fast-path reading (a couple of seconds of replica counters) scales up, but is
        # too short and too noisy to be a demand sample for the trend and the peak, or to
        # teach capacity: those stay with the regular evaluations.
        recorded = replace(decision, demand=None, capacity=None)
    advanced = history.advance(
        recorded,
        now,
        applied=was_applied,
        keep_s=policy.history_horizon_s,
        bucket_s=policy.capacity.forecast_bucket_s,
        bucket_keep_s=policy.forecast_horizon_s,
    )
    signals = dict(advanced.signal_samples)
    for name, obs in observations.items():
        if obs.status == OK and obs.value is not None:
            kept = tuple(s for s in signals.get(name, ()) if s[0] > now - policy.stable_window_s)
            # Stamped with the time the value describes: readings of different ages (the
            # fast path's, just read, beside scraped ones) then compare over true spans.
            signals[name] = (*kept, (taken(obs, now), float(obs.value)))
    return decision, History(
        advanced.recommendations,
        advanced.scale_events,
        advanced.load_samples,
        signals,
        advanced.panic_last_s,
        advanced.capacity,
        advanced.demand_samples,
        advanced.demand_buckets,
    )
