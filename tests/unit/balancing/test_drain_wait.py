"""The drain's wait (apps.balancing.drain.drain_wait) with a fake clock: gateways first,
then the requests in flight, both within one timeout."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import pytest

from apps.balancing.drain import DrainWait, GatewayState, drain_wait


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds


def _script(*steps: object) -> Iterator[object]:
    """Each read returns the next step; the last one repeats."""
    yield from steps
    while True:
        yield steps[-1]


def _wait(
    clock: FakeClock,
    gateways: Sequence[Sequence[GatewayState]],
    in_flight: Sequence[Mapping[str, float | None]],
    *,
    timeout_s: float = 30.0,
    poll_s: float = 1.0,
) -> DrainWait:
    gw, fl = _script(*gateways), _script(*in_flight)
    return drain_wait(
        gateways=lambda: next(gw),  # type: ignore[arg-type, return-value]
        in_flight=lambda: next(fl),  # type: ignore[arg-type, return-value]
        timeout_s=timeout_s,
        poll_s=poll_s,
        clock=clock,
        sleep=clock.sleep,
    )


OLD = GatewayState("edge", version="v2", applied_version="v1")
NEW = GatewayState("edge", version="v2", applied_version="v2")


def test_drain_wait__all_applied_and_idle__returns_at_once_without_sleeping() -> None:
    clock = FakeClock()
    outcome = _wait(clock, [[NEW]], [{"chat-2": 0.0}])
    assert outcome == DrainWait(0.0, 0.0, False, (NEW,))
    assert clock.sleeps == []


def test_drain_wait__gateway_applies_on_third_poll_then_streams_end__times_of_each() -> None:
    clock = FakeClock()
    outcome = _wait(clock, [[OLD], [OLD], [NEW]], [{"chat-2": 2.0}, {"chat-2": 1.0}, {"chat-2": 0}])
    assert outcome.applied_after_s == 2.0
    assert outcome.in_flight_done_after_s == 4.0
    assert not outcome.timed_out
    assert outcome.gateways == (NEW,)
    assert outcome.in_flight_left == {}


def test_drain_wait__in_flight_not_read_before_every_gateway_applied() -> None:
    clock = FakeClock()
    reads: list[float] = []

    def in_flight() -> dict[str, float]:
        reads.append(clock())
        return {"chat-2": 0.0}

    states = _script([OLD, NEW], [OLD, NEW], [NEW, NEW])
    outcome = drain_wait(
        gateways=lambda: next(states),  # type: ignore[arg-type, return-value]
        in_flight=in_flight,
        timeout_s=10,
        poll_s=0.5,
        clock=clock,
        sleep=clock.sleep,
    )
    assert reads == [1001.0]
    assert outcome.applied_after_s == 1.0


def test_drain_wait__gateway_that_does_not_render__not_waited_for() -> None:
    clock = FakeClock()
    broken = GatewayState("broken", version="", applied_version="v0")
    outcome = _wait(clock, [[broken, NEW]], [{"chat-2": 0.0}])
    assert outcome.applied_after_s == 0.0
    assert not outcome.timed_out


def test_drain_wait__gateway_never_applies__times_out_never_reading_in_flight() -> None:
    clock = FakeClock()
    outcome = _wait(clock, [[OLD]], [{"chat-2": 0.0}], timeout_s=5.0, poll_s=2.0)
    assert outcome.timed_out
    assert outcome.applied_after_s is None
    assert outcome.in_flight_done_after_s is None
    assert outcome.gateways == (OLD,)
    # Never sleeps past the deadline: 2 + 2 + 1.
    assert clock.sleeps == [2.0, 2.0, 1.0]


@pytest.mark.parametrize(
    ("counts", "left"),
    [
        ({"chat-2": 3.0, "chat-3": 0.0}, {"chat-2": 3.0, "chat-3": 0.0}),
        # Unknown (no metric for it) counts as not finished.
        ({"chat-2": None}, {"chat-2": None}),
    ],
)
def test_drain_wait__requests_never_end__times_out_with_what_was_left(
    counts: dict[str, float | None], left: dict[str, float | None]
) -> None:
    clock = FakeClock()
    outcome = _wait(clock, [[NEW]], [counts], timeout_s=4.0)
    assert outcome.timed_out
    assert outcome.applied_after_s == 0.0
    assert outcome.in_flight_done_after_s is None
    assert outcome.in_flight_left == left
    assert sum(clock.sleeps) == 4.0


def test_drain_wait__zero_timeout__one_look_and_no_sleep() -> None:
    clock = FakeClock()
    outcome = _wait(clock, [[OLD]], [{"chat-2": 0.0}], timeout_s=0.0)
    assert outcome.timed_out
    assert clock.sleeps == []
