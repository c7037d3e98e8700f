"""The sliding-window limiter and the summariser, alone and in simulated alert storms."""

from __future__ import annotations

import bisect
import random
from collections import Counter
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.integrations.chat import (
    RATE_LIMITS,
    Notification,
    RateWindow,
    pack,
    prune,
    send_budget,
    transport_for,
    wait_before_next_send,
)

from .conftest import CONFIGS, alert, notification, within_platform_limits

START = 1_767_000_000.0


def violated_windows(sent: Sequence[float], limits: Sequence[RateWindow]) -> list[RateWindow]:
    """Windows in which some sliding window (t - seconds, t] holds too many sends."""
    times = sorted(sent)
    bad = []
    for window in limits:
        for i, t in enumerate(times):
            first = bisect.bisect_right(times, t - window.seconds)
            if i + 1 - first > window.max_messages:
                bad.append(window)
                break
    return bad


def represented(messages: Sequence[Notification]) -> Counter[str]:
    seen: Counter[str] = Counter()
    for m in messages:
        seen.update(a.fingerprint for a in m.alerts)
        for g in m.omitted_groups:
            seen.update(g.fingerprints)
    return seen


# -- the limiter ------------------------------------------------------------------------------


def test_wait_before_next_send__no_history__zero() -> None:
    assert wait_before_next_send([], RATE_LIMITS["dingtalk"], START) == 0.0
    assert send_budget([], RATE_LIMITS["dingtalk"], START) == 20


def test_wait_before_next_send__dingtalk_minute_full__waits_for_oldest_to_leave() -> None:
    sent = [START + i for i in range(20)]  # 20 sends in 20 s
    now = START + 30
    wait = wait_before_next_send(sent, RATE_LIMITS["dingtalk"], now)
    assert wait == pytest.approx(30, abs=0.01)  # the send at START leaves at START + 60
    assert send_budget(sent, RATE_LIMITS["dingtalk"], now) == 0
    assert wait_before_next_send(sent, RATE_LIMITS["dingtalk"], now + wait) == 0.0
    assert send_budget(sent, RATE_LIMITS["dingtalk"], now + wait) == 1


def test_send_budget__feishu_second_and_minute__smallest_window_wins() -> None:
    limits = RATE_LIMITS["feishu"]
    assert send_budget([START - 0.5, START - 0.2], limits, START) == 3
    ninety_eight = [START - 59 + i * 0.5 for i in range(98)]
    assert send_budget(ninety_eight, limits, START + 0.5) == 2


def test_wait_before_next_send__timestamps_in_future__counted_conservatively() -> None:
    wait = wait_before_next_send([START + 5], [RateWindow(1, 1)], START)
    assert wait == pytest.approx(6, abs=0.01)


def test_prune__old_timestamps__dropped_oldest_first() -> None:
    sent = [START - 100, START - 30, START - 70, START - 1]
    assert prune(sent, RATE_LIMITS["wecom"], START) == [START - 30, START - 1]


_windows = st.lists(
    st.builds(
        RateWindow,
        seconds=st.sampled_from([0.5, 1.0, 30.0, 60.0, 3600.0]),
        max_messages=st.integers(1, 25),
    ),
    min_size=1,
    max_size=3,
)


@settings(max_examples=150, deadline=None)
@given(
    limits=_windows,
    gaps=st.lists(st.floats(0, 20, allow_nan=False), min_size=1, max_size=250),
    start=st.floats(0, 2e9, allow_nan=False),
)
def test_limiter__arbitrary_request_times__never_exceeds_and_never_overly_strict(
    limits: list[RateWindow], gaps: list[float], start: float
) -> None:
    now, sent = start, []
    for gap in gaps:
        now += gap
        wait = wait_before_next_send(sent, limits, now)
        budget = send_budget(sent, limits, now)
        assert (wait == 0.0) == (budget > 0)
        if wait == 0.0:
            sent.extend([now] * budget)  # spend the whole burst
        else:
            assert violated_windows([*sent, now], limits)  # a send now would break one
            assert wait_before_next_send(sent, limits, now + wait) == 0.0
    assert violated_windows(sent, limits) == []


# -- the summariser ---------------------------------------------------------------------------


def _storm(count: int, *, names: int = 50, per_notification: int = 1) -> list[Notification]:
    alerts = [
        alert(i, name=f"Alert{i % names}", status="resolved" if i % 5 == 0 else "firing")
        for i in range(count)
    ]
    return [
        notification(alerts[i : i + per_notification], title=f"group {i}")
        for i in range(0, count, per_notification)
    ]


def test_pack__zero_budget__value_error() -> None:
    with pytest.raises(ValueError, match="wait"):
        pack(_storm(3), 0)


def test_pack__fewer_pending_than_budget__one_message_each_in_order() -> None:
    pending = _storm(3)
    assert pack(pending, 5) == pending


def test_pack__per_message_cap__extra_alerts_folded_into_groups() -> None:
    [message] = pack([notification([alert(i) for i in range(25)])], 1, per_message_cap=10)
    assert len(message.alerts) == 10
    assert message.omitted == 15
    assert [(g.name, g.count) for g in message.omitted_groups] == [("HighTTFT", 15)]


def test_pack__merging__most_urgent_first_and_counts_summed() -> None:
    warning = notification([alert(1)], title="warn", severity="warning")
    resolved = notification([alert(2, status="resolved")], title="ok", severity="critical")
    critical = notification([alert(3)], title="crit", severity="critical")
    [first, second] = pack([warning, resolved, critical, warning], 2)
    assert first.title == "crit (+1 more alert groups)"
    assert first.severity == "critical"
    assert second.status == "firing"  # warning firing + resolved
    assert sum(m.firing_count for m in (first, second)) == 3
    assert sum(m.resolved_count for m in (first, second)) == 1


def test_pack__zh__digest_title_in_chinese() -> None:
    pending = [notification([alert(i)], title=f"告警{i}", language="zh") for i in range(3)]
    [message] = pack(pending, 1)
    assert message.title == "告警0（另有 2 个告警组）"  # noqa: RUF001


@pytest.mark.parametrize("kind", ["wecom", "dingtalk", "slack", "feishu", "teams"])
@pytest.mark.parametrize("budget", [1, 3, 20])
def test_pack__thousand_alerts__every_alert_represented_and_sizes_within_limits(
    kind: str, budget: int
) -> None:
    pending = _storm(1000)
    transport = transport_for(kind, CONFIGS[kind])
    messages = pack(pending, budget, fits=transport.fits)
    assert len(messages) <= budget
    expected = Counter(f"fp{i:06d}" for i in range(1000))
    assert represented(messages) == expected
    assert sum(m.total for m in messages) == 1000
    assert sum(m.firing_count for m in messages) == 800
    for message in messages:
        assert len(message.alerts) <= 20
        rendered = transport.render(message)
        assert within_platform_limits(kind, rendered.payload)
        assert rendered.listed + rendered.summarised == message.total


_alert_specs = st.lists(
    st.tuples(st.integers(0, 5), st.booleans(), st.integers(1, 4)), min_size=1, max_size=60
)


@settings(max_examples=150, deadline=None)
@given(specs=_alert_specs, budget=st.integers(1, 10), cap=st.integers(0, 6))
def test_pack__arbitrary_pending__no_alert_dropped(
    specs: list[tuple[int, bool, int]], budget: int, cap: int
) -> None:
    pending, i = [], 0
    for name, firing, size in specs:
        alerts = [
            alert(i + k, name=f"A{name}", status="firing" if firing else "resolved")
            for k in range(size)
        ]
        i += size
        pending.append(notification(alerts, title=f"A{name}"))
    messages = pack(pending, budget, per_message_cap=cap)
    assert len(messages) == min(budget, len(pending))
    assert represented(messages) == Counter(f"fp{k:06d}" for k in range(i))
    assert all(len(m.alerts) <= cap for m in messages)
    assert sum(m.total for m in messages) == i


# -- storms over simulated time -----------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(RATE_LIMITS))
def test_storm__thousand_alerts_over_five_minutes__limits_kept_and_all_delivered(
    kind: str,
) -> None:
    rng = random.Random(1000)
    transport = transport_for(kind, CONFIGS[kind])
    limits = transport.rate_limits()
    storm = _storm(1000, names=30, per_notification=4)  # 250 notifications
    arrivals = sorted((START + rng.uniform(0, 300), k) for k in range(len(storm)))
    now, pending, sent, delivered, nxt = START, [], [], [], 0
    while nxt < len(arrivals) or pending:
        while nxt < len(arrivals) and arrivals[nxt][0] <= now:
            pending.append(storm[arrivals[nxt][1]])
            nxt += 1
        if pending:
            budget = send_budget(sent, limits, now)
            if budget:
                for message in pack(pending, budget, fits=transport.fits):
                    rendered = transport.render(message)
                    assert within_platform_limits(kind, rendered.payload)
                    sent.append(now)
                    delivered.append(message)
                pending = []
        upcoming = [arrivals[nxt][0]] if nxt < len(arrivals) else []
        if pending:
            upcoming.append(now + wait_before_next_send(sent, limits, now))
        if upcoming:
            now = max(now, min(upcoming))
    assert violated_windows(sent, limits) == []
    assert represented(delivered) == Counter(f"fp{i:06d}" for i in range(1000))
