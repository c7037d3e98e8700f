"""The pure degradation step engine: a timeline of the rules, and properties over random
sequences of observations (level bounds, one step at a time, missing data, pins, recovery)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from apps.toggles.engine import (
    EngineSpec,
    EngineState,
    Outcome,
    Step,
    TriggerObservation,
    degradation_step,
)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SPEC = EngineSpec(
    level_names=("cap tokens", "shed low", "fallback"),
    min_hold_s=60,
    clear_for_s=120,
    max_duration_s=3600,
)
HELD = [TriggerObservation("SLO 1 in page/ticket", Outcome.HELD, "state page")]
CLEAR = [TriggerObservation("SLO 1 in page/ticket", Outcome.CLEAR, "state ok")]
UNKNOWN = [TriggerObservation("SLO 1 in page/ticket", Outcome.UNKNOWN, "state no_data")]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def advance(state: EngineState, step: Step, now: datetime) -> EngineState:
    """What the service stores after a step (the level applied at once)."""
    state = replace(
        state,
        triggered_since=step.triggered_since,
        clear_since=step.clear_since,
        expired=step.expired,
    )
    if step.to_level is None:
        return state
    degraded_since = state.degraded_since
    if step.to_level == 0:
        degraded_since = None
    elif state.level == 0:
        degraded_since = now
    return replace(state, level=step.to_level, level_since=now, degraded_since=degraded_since)


def run(
    timeline: list[tuple[float, list[TriggerObservation]]],
    *,
    spec: EngineSpec = SPEC,
    state: EngineState | None = None,
) -> tuple[list[int], EngineState]:
    """Levels after each (seconds, observations) evaluation."""
    state = state or EngineState()
    levels = []
    for seconds, observations in timeline:
        step = degradation_step(spec, state, observations, at(seconds))
        state = advance(state, step, at(seconds))
        levels.append(state.level)
    return levels, state


def test_degradation_step__trigger_persists__up_one_level_per_hold():
    levels, state = run([(0, HELD), (30, HELD), (60, HELD), (90, HELD), (120, HELD), (200, HELD)])
    assert levels == [1, 1, 2, 2, 3, 3]
    assert state.triggered_since == T0
    assert state.degraded_since == T0


def test_degradation_step__up__reason_names_trigger_and_level():
    step = degradation_step(SPEC, EngineState(), HELD, T0)
    assert step.to_level == 1
    assert "SLO 1 in page/ticket (state page)" in step.reason
    assert "level 1 (cap tokens)" in step.reason
    assert step.evidence["triggers"] == [
        {"trigger": "SLO 1 in page/ticket", "outcome": "held", "detail": "state page"}
    ]


def test_degradation_step__clear__down_one_level_per_clear_period():
    levels, _ = run([(0, HELD), (60, HELD)])
    assert levels == [1, 2]
    timeline = [(t, CLEAR) for t in (100, 180, 219, 220, 300, 339, 340, 400, 500)]
    levels, state = run(timeline, state=_at_level(2, since=60))
    # Clear from 100: level 2 -> 1 at 220 (120 s clear); the clear time then counts
    # again from 220 at level 1: -> 0 at 340.
    assert levels == [2, 2, 2, 1, 1, 1, 0, 0, 0]
    assert state.degraded_since is None


def _at_level(level: int, *, since: float, degraded: float = 0) -> EngineState:
    return EngineState(level=level, level_since=at(since), degraded_since=at(degraded))


def test_degradation_step__trigger_returns_during_clear_period__clear_time_restarts():
    levels, _ = run(
        [(100, CLEAR), (200, HELD), (210, CLEAR), (300, CLEAR), (330, CLEAR)],
        state=_at_level(2, since=60),
    )
    # 200: held again, level 2 held for 140 s: up to 3. Clear from 210, counted at level 3
    # (since 200): 120 s at 330 -> down to 2.
    assert levels == [2, 3, 3, 3, 2]


def test_degradation_step__unknown__neither_up_nor_down_nor_clear_time():
    levels, _ = run([(0, UNKNOWN), (600, UNKNOWN)])
    assert levels == [0, 0]
    levels, _ = run(
        [(100, CLEAR), (150, UNKNOWN), (230, CLEAR), (300, CLEAR), (350, CLEAR)],
        state=_at_level(1, since=0),
    )
    # The clear time restarts after the unknown at 150: from 230, 120 s -> 350.
    assert levels == [1, 1, 1, 1, 0]


def test_degradation_step__one_held_one_unknown__goes_up():
    observations = [*HELD, TriggerObservation("queue_length gt 50", Outcome.UNKNOWN)]
    assert degradation_step(SPEC, EngineState(), observations, T0).to_level == 1


def test_degradation_step__one_clear_one_unknown__no_recovery():
    observations = [*CLEAR, TriggerObservation("queue_length gt 50", Outcome.UNKNOWN)]
    state = replace(_at_level(1, since=0), clear_since=at(0))
    step = degradation_step(SPEC, state, observations, at(1000))
    assert step.to_level is None
    assert "not counted as clear" in step.reason
    assert step.clear_since is None


def test_degradation_step__at_top__stays():
    step = degradation_step(SPEC, _at_level(3, since=0), HELD, at(1000))
    assert step.to_level is None
    assert "top" in step.reason


def test_degradation_step__max_duration__back_to_zero_expired_until_clear():
    spec = replace(SPEC, level_names=("cap tokens", "shed low"), max_duration_s=300)
    levels, state = run(
        [(0, HELD), (60, HELD), (299, HELD), (300, HELD), (400, HELD), (500, CLEAR), (600, HELD)],
        spec=spec,
    )
    assert levels == [1, 2, 2, 0, 0, 0, 1]
    assert not state.expired
    step = degradation_step(spec, _at_level(2, since=60), HELD, at(300))
    assert (step.to_level, step.expired) == (0, True)
    assert "maximum is 300 s" in step.reason


def test_degradation_step__expired__stays_at_zero_while_triggered():
    state = EngineState(expired=True)
    step = degradation_step(SPEC, state, HELD, at(10_000))
    assert (step.to_level, step.expired) == (None, True)
    assert "maximum duration" in step.reason
    assert degradation_step(SPEC, state, CLEAR, at(10_000)).expired is False


def test_degradation_step__pinned__holds_until_pin_runs_out():
    pinned = replace(_at_level(1, since=0), pinned_level=1, pinned_until=at(500))
    for observations in (HELD, CLEAR):
        step = degradation_step(SPEC, replace(pinned, clear_since=at(0)), observations, at(400))
        assert step.to_level is None
        assert "pinned" in step.reason
    assert degradation_step(SPEC, pinned, HELD, at(500)).to_level == 2


def test_degradation_step__switch_off_or_disabled__no_change():
    for spec, why in (
        (replace(SPEC, automatic=False), "switched off"),
        (replace(SPEC, enabled=False), "disabled"),
    ):
        step = degradation_step(spec, EngineState(), HELD, T0)
        assert step.to_level is None
        assert why in step.reason
        # The timers still follow the observations.
        assert step.triggered_since == T0


def test_degradation_step__min_hold_at_level_zero_after_recovery():
    state = EngineState(level=0, level_since=at(100))
    assert degradation_step(SPEC, state, HELD, at(150)).to_level is None
    assert degradation_step(SPEC, state, HELD, at(160)).to_level == 1


# --------------------------------------------------------------------------- properties

outcomes = st.sampled_from(list(Outcome))
observation_lists = st.lists(
    st.builds(TriggerObservation, st.sampled_from(["a", "b", "c"]), outcomes),
    min_size=1,
    max_size=3,
)
specs = st.builds(
    EngineSpec,
    level_names=st.lists(st.just("x"), min_size=1, max_size=4).map(tuple),
    min_hold_s=st.integers(0, 300),
    clear_for_s=st.integers(0, 300),
    max_duration_s=st.integers(60, 2000),
    enabled=st.booleans(),
    automatic=st.booleans(),
)
timelines = st.lists(st.tuples(st.integers(1, 200), observation_lists), min_size=1, max_size=40)


def _walk(spec, timeline, state=None):
    """(before, step, after, now) for each evaluation of a random timeline."""
    state = state or EngineState()
    now = T0
    out = []
    for gap, observations in timeline:
        now += timedelta(seconds=gap)
        step = degradation_step(spec, state, observations, now)
        after = advance(state, step, now)
        out.append((state, step, after, now, observations))
        state = after
    return out


@settings(max_examples=300, deadline=None)
@given(specs, timelines)
def test_degradation_step__property__level_in_range_and_one_step_except_expiry(spec, timeline):
    for before, step, after, _, _ in _walk(spec, timeline):
        assert 0 <= after.level <= spec.top
        if step.to_level is not None:
            assert step.to_level != before.level
            if not (step.to_level == 0 and step.expired and not before.expired):
                assert abs(step.to_level - before.level) == 1


@settings(max_examples=300, deadline=None)
@given(specs, timelines, st.integers(0, 4))
def test_degradation_step__property__all_unknown_never_changes(spec, timeline, start):
    state = _at_level(min(start, spec.top), since=0)
    for before, step, _, _, observations in _walk(spec, timeline, state):
        if all(o.outcome is Outcome.UNKNOWN for o in observations):
            assert step.to_level is None
            assert step.clear_since is None
            assert step.triggered_since == before.triggered_since


@settings(max_examples=300, deadline=None)
@given(specs, timelines, st.integers(0, 4))
def test_degradation_step__property__pinned_never_moves(spec, timeline, start):
    level = min(start, spec.top)
    state = replace(_at_level(level, since=0), pinned_level=level)
    for _, step, _, _, _ in _walk(spec, timeline, state):
        assert step.to_level is None


@settings(max_examples=300, deadline=None)
@given(specs, timelines, st.integers(1, 4))
def test_degradation_step__property__recovery_only_after_clear_period(spec, timeline, start):
    state = _at_level(min(start, spec.top), since=0)
    for before, step, _, now, observations in _walk(spec, timeline, state):
        if step.to_level is not None and step.to_level < before.level and not step.expired:
            assert all(o.outcome is Outcome.CLEAR for o in observations)
            assert step.clear_since is not None
            assert (now - step.clear_since).total_seconds() >= spec.clear_for_s
            assert (now - before.level_since).total_seconds() >= spec.min_hold_s


@settings(max_examples=200, deadline=None)
@given(specs, timelines)
def test_degradation_step__property__never_moves_when_off(spec, timeline):
    spec = replace(spec, automatic=False)
    for _, step, _, _, _ in _walk(spec, timeline):
        assert step.to_level is None
