"""The automatic degradation decision: one pure function of (spec, state, observations, now)
returning a :class:`Step`. The Celery task, the tests and the docs' timeline all use it; no
I/O here.

The rules, in the order they are applied:

1. Timers follow the observations: ``triggered_since`` is set while any trigger holds and
   cleared once every trigger is clear; ``clear_since`` is set while every trigger is clear
   and cleared by anything else (an unknown trigger does not count as clear time).
   ``expired`` is reset once every trigger is clear.
2. A pin that has not run out, a disabled policy or the global switch off: no change.
3. Every trigger unknown (missing or stale data): no change, whatever else is due.
4. Degraded for ``max_duration_s`` or longer: back to level 0, marked expired; while expired
   it stays at 0 until every trigger is clear.
5. Any trigger holds, below the top level, at the current level for ``min_hold_s``: up one.
6. Every trigger clear for ``clear_for_s`` counted at the current level, and at the current
   level for ``min_hold_s``: down one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    HELD = "held"
    CLEAR = "clear"
    UNKNOWN = "unknown"  # missing or stale data: never moves a level


@dataclass(frozen=True)
class TriggerObservation:
    """What one trigger says now, with the figures behind it."""

    trigger: str  # its description, e.g. "SLO 12 in page/ticket"
    outcome: Outcome
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"trigger": self.trigger, "outcome": str(self.outcome), "detail": self.detail}


@dataclass(frozen=True)
class EngineSpec:
    level_names: tuple[str, ...]  # level 1 first
    min_hold_s: float
    clear_for_s: float
    max_duration_s: float
    enabled: bool = True
    automatic: bool = True  # the global switch

    @property
    def top(self) -> int:
        return len(self.level_names)

    def name_of(self, level: int) -> str:
        if level <= 0:
            return "level 0 (not degraded)"
        return f"level {level} ({self.level_names[level - 1]})"


@dataclass(frozen=True)
class EngineState:
    level: int = 0
    level_since: datetime | None = None
    degraded_since: datetime | None = None
    triggered_since: datetime | None = None
    clear_since: datetime | None = None
    expired: bool = False
    pinned_level: int | None = None
    pinned_until: datetime | None = None

    def pinned(self, now: datetime) -> bool:
        return self.pinned_level is not None and (
            self.pinned_until is None or now < self.pinned_until
        )


@dataclass(frozen=True)
class Step:
    """The decision: ``to_level`` None means stay; ``reason`` says why either way."""

    to_level: int | None
    reason: str
    triggered_since: datetime | None
    clear_since: datetime | None
    expired: bool
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def changes(self) -> bool:
        return self.to_level is not None


def _since(moment: datetime | None, now: datetime) -> float:
    """Seconds since ``moment``; a moment never recorded counts as long ago."""
    return float("inf") if moment is None else (now - moment).total_seconds()


def degradation_step(
    spec: EngineSpec,
    state: EngineState,
    observations: Sequence[TriggerObservation],
    now: datetime,
) -> Step:
    held = [o for o in observations if o.outcome is Outcome.HELD]
    unknown = [o for o in observations if o.outcome is Outcome.UNKNOWN]
    all_clear = bool(observations) and not held and not unknown
    all_unknown = len(unknown) == len(observations)

    if held:
        triggered_since = state.triggered_since or now
    elif all_clear:
        triggered_since = None
    else:  # nothing holds, something unknown: what we knew stands
        triggered_since = state.triggered_since
    clear_since = (state.clear_since or now) if all_clear else None
    expired = state.expired and not all_clear
    evidence: dict[str, Any] = {
        "level": state.level,
        "triggers": [o.as_dict() for o in observations],
    }

    def stay(reason: str) -> Step:
        return Step(None, reason, triggered_since, clear_since, expired, evidence)

    def move(to_level: int, reason: str, *, expire: bool = False) -> Step:
        return Step(to_level, reason, triggered_since, clear_since, expire or expired, evidence)

    level = min(max(state.level, 0), spec.top)
    if state.pinned(now):
        return stay(f"pinned at level {state.pinned_level}")
    if not spec.automatic:
        return stay("automatic degradation is switched off")
    if not spec.enabled:
        return stay("the policy is disabled")
    if all_unknown:
        return stay("no data for any trigger: nothing changes")

    degraded_s = _since(state.degraded_since, now) if level > 0 else 0.0
    if level > 0 and state.degraded_since is not None and degraded_s >= spec.max_duration_s:
        return move(
            0,
            f"degraded for {degraded_s:.0f} s, the maximum is {spec.max_duration_s:.0f} s: "
            "back to level 0 until every trigger clears",
            expire=True,
        )
    held_s = _since(state.level_since, now)
    if held:
        if expired:
            return stay("the maximum duration was reached: level 0 until every trigger clears")
        if level >= spec.top:
            return stay(f"already at the top {spec.name_of(level)}")
        if held_s < spec.min_hold_s:
            return stay(f"at {spec.name_of(level)} for {held_s:.0f} s of {spec.min_hold_s:.0f} s")
        causes = "; ".join(f"{o.trigger} ({o.detail})" if o.detail else o.trigger for o in held)
        return move(level + 1, f"{causes}: {spec.name_of(level + 1)}")
    if not all_clear:
        waiting = ", ".join(o.trigger for o in unknown)
        return stay(f"no data for {waiting}: not counted as clear")
    if level == 0:
        return stay("every trigger clear")
    # Clear time counts at this level: each step down waits a full clear period.
    counted_from = clear_since or now
    if state.level_since is not None and state.level_since > counted_from:
        counted_from = state.level_since
    clear_s = _since(counted_from, now)
    if clear_s < spec.clear_for_s:
        return stay(f"every trigger clear for {clear_s:.0f} s of {spec.clear_for_s:.0f} s")
    if held_s < spec.min_hold_s:
        return stay(f"at {spec.name_of(level)} for {held_s:.0f} s of {spec.min_hold_s:.0f} s")
    return move(
        level - 1,
        f"every trigger clear for {clear_s:.0f} s: {spec.name_of(level - 1)}",
    )
