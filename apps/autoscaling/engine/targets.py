"""Per-target proposals and their aggregation into the raw recommendation.

Each target reads its observation (:func:`read`: missing never reads as zero), proposes a
replica count according to its kind (:func:`propose`, see the package docstring), and
:func:`aggregate` takes the highest proposal, holding when readings are missing.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from .reasons import number, per_replica, percent, replicas_text, serving
from .types import EPS, OK, Event, Obs, Policy, Proposal, Target, ceil_count


class Reading(NamedTuple):
    status: str
    value: float | None
    reason: str


def read(o: Obs | None, policy: Policy) -> Reading:
    """Usable value or why not. Missing never reads as zero."""
    if o is None:
        return Reading("missing", None, "no observation was supplied")
    if o.status != OK:
        return Reading(o.status or "missing", None, o.reason)
    v = o.value
    if v is None or not math.isfinite(v) or v < 0:
        return Reading("invalid", None, f"value {v!r} is not a usable reading")
    limit = policy.max_metric_age_s
    if limit is not None and o.age_s is not None and o.age_s > limit:
        return Reading("stale", None, f"data is {o.age_s:.0f} s old (limit {limit:.0f} s)")
    return Reading(OK, float(v), "")


def unusable(target: Target, r: Reading) -> Proposal:
    detail = f": {r.reason}" if r.reason else ""
    return Proposal(
        target.signal,
        target.kind,
        None,
        target.value,
        None,
        r.status,
        f"{target.signal} is {r.status}{detail}",
    )


def propose(
    target: Target, r: Reading, policy: Policy, current: int, ready: int, starting: int
) -> Proposal:
    if r.status != OK or r.value is None:
        return unusable(target, r)
    v, t, tol = r.value, target.value, policy.tolerance
    sig = target.signal
    capacity = ready + starting
    within = f"within the {percent(tol)} tolerance"

    def made(replicas: int | None, why: str) -> Proposal:
        abs_tol = policy.tolerance_abs_replicas
        if (
            replicas is not None
            and replicas != current
            and abs_tol is not None
            and abs(replicas - current) <= abs_tol
        ):
            replicas = current
            why += f", within {replicas_text(abs_tol)} of the current {current} so it holds"
        return Proposal(sig, target.kind, v, t, replicas, OK, why)

    if target.kind == "per_replica_average":
        if capacity == 0:
            n = ceil_count(v / t)
            return made(
                n, f"{sig} {number(v)} with no replicas against a target of {number(t)} each"
            )
        ratio = v / (t * capacity)
        head = (
            f"{sig} {number(v)} over {serving(ready, starting)} is {per_replica(v / capacity)} per "
            f"replica against a target of {number(t)}"
        )
        if abs(1.0 - ratio) <= tol + EPS:
            return made(current, f"{head}, {within}")
        return made(ceil_count(v / t), head)

    if ready == 0:
        # An average over no ready replica means nothing; it must not read as "idle".
        return Proposal(
            sig, target.kind, v, t, None, "no_ready_replicas", f"{sig}: no replica is ready"
        )
    ratio = v / t

    if target.kind == "utilization":
        head = (
            f"{sig} {number(v)} averaged over {serving(ready, starting)} "
            f"against a target of {number(t)}"
        )
        if starting and ratio > 1.0:
            # HPA counts unready pods as idle when scaling up: the demand is ready * ratio,
            # which the replicas on the way may already cover (AIBrix #2670).
            spread = v * ready / (t * capacity)
            if spread < 1.0 or abs(1.0 - spread) <= tol + EPS:
                return made(current, f"{head}; the starting replicas already cover it")
            return made(ceil_count(v * ready / t), head)
        if abs(1.0 - ratio) <= tol + EPS:
            return made(current, f"{head}, {within}")
        return made(ceil_count(v * ready / t), head)

    # latency_slo
    if ratio > 1.0 + tol + EPS:
        n = max(current, ceil_count(v * ready / t))
        return made(n, f"{sig} {number(v)} s is {ratio:.2f}x the {number(t)} s threshold")
    if ratio <= policy.latency_scale_down_ratio + EPS:
        return Proposal(
            sig,
            target.kind,
            v,
            t,
            None,
            OK,
            f"{sig} {number(v)} s is well under the {number(t)} s threshold "
            f"(at most {percent(policy.latency_scale_down_ratio)} of it)",
        )
    return made(
        current, f"{sig} {number(v)} s is near the {number(t)} s threshold, so latency holds"
    )


def metric_events(proposals: tuple[Proposal, ...], events: list[Event]) -> None:
    for p in proposals:
        if p.status in (OK, "no_ready_replicas"):
            continue
        kind = "stale_metrics" if p.status == "stale" else "metrics_missing"
        events.append(Event(kind, p.why))


class Aggregate(NamedTuple):
    replicas: int
    rule: str
    reason: str
    all_ok: bool


def aggregate(proposals: tuple[Proposal, ...], current: int) -> Aggregate:
    usable = [p for p in proposals if p.status == OK]
    bad = [p for p in proposals if p.status != OK]
    all_ok = not bad
    bad_text = " and ".join(p.why for p in bad)
    numbered = [p for p in usable if p.replicas is not None]
    if not usable:
        return Aggregate(
            current,
            "hold:missing_metrics",
            f"no target has a usable reading ({bad_text}), and nothing is read as zero",
            False,
        )
    if not numbered:
        lead = usable[0]
        if not all_ok:
            return Aggregate(
                current,
                "hold:missing_metrics",
                f"{lead.why}, but {bad_text}, and a partial picture never scales down",
                False,
            )
        return Aggregate(
            max(current - 1, 0),
            f"target:{lead.signal}",
            f"{lead.why}, so latency alone allows one replica fewer",
            True,
        )
    best = max(p.replicas for p in numbered if p.replicas is not None)
    winner = next(p for p in numbered if p.replicas == best)
    if best < current and not all_ok:
        return Aggregate(
            current,
            "hold:missing_metrics",
            f"{winner.why}, asking for {best}, but {bad_text}, and a partial picture may scale "
            "up but never down",
            False,
        )
    return Aggregate(best, f"target:{winner.signal}", winner.why, all_ok)
