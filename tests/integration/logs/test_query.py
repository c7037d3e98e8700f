"""LogQL against a real store gives the reference answer: the store selects (matchers,
literal line filters pushed down), the pure evaluator does the rest, and a ``sum`` of
counting functions answered from the store's bucket counts equals the evaluator's answer
over every line. Runs on each backend of the ``log_store`` fixture."""

from __future__ import annotations

import random

import pytest

from apps.logs.logql import evaluate_range, parse, select_lines
from apps.logs.query import LogsQueryError, Scope, as_log_entry, query_lines, query_range
from apps.logs.storage.base import LogSelect
from apps.logs.wire.types import PushedEntry, PushedStream
from tests.factories.accounts import TeamFactory

pytestmark = pytest.mark.django_db(transaction=True)

S = 1_000_000_000
T0 = 1_780_000_000 * S  # a fixed instant in 2026
LEVELS = ("info", "warn", "error")
WORDS = ("GET /v1/chat", "POST /v1/completions", "CUDA out of memory", "aborted", "ready")


def _fleet(seed: int) -> list[PushedStream]:
    """Six streams over 30 minutes: two apps x three pods, a level label on each, lines in
    logfmt with a few metadata pairs, some at equal timestamps."""
    rng = random.Random(seed)
    streams = []
    for app in ("api", "worker"):
        for pod in range(3):
            labels = tuple(
                sorted({"app": app, "pod": f"{app}-{pod}", "level": LEVELS[pod]}.items())
            )
            entries = {}
            for _ in range(rng.randint(40, 80)):
                ts = T0 + rng.randrange(0, 30 * 60) * S
                word = rng.choice(WORDS)
                status = rng.choice((200, 200, 429, 500))
                line = f'msg="{word}" status={status} ms={rng.randint(1, 900)}'
                entries[(ts, line)] = PushedEntry(ts, line, (("trace", str(rng.randint(0, 3))),))
            streams.append(
                PushedStream(labels, tuple(sorted(entries.values(), key=lambda e: e.timestamp_ns)))
            )
    return streams


def _rounded(series):
    return [(s.labels, [(t, round(v, 9)) for t, v in s.points]) for s in series]


def _all(store, team_id):
    select = LogSelect(team_id=team_id, start_ns=0, end_ns=2**62)
    page = store.select(select, limit=100_000, direction="forward")
    return [as_log_entry(e) for e in page.entries]


@pytest.fixture
def fleet(log_store):
    team, other = TeamFactory(), TeamFactory()
    streams = _fleet(seed=3)
    log_store.write(team_id=team.pk, streams=streams, resolve=lambda labels: None)
    # Another team's lines match the same queries and must never count.
    log_store.write(team_id=other.pk, streams=_fleet(seed=4), resolve=lambda labels: None)
    return log_store, team.pk, streams


LOG_QUERIES = [
    '{app="api"}',
    '{app=~"api|worker", pod!="api-0"} |= "CUDA"',
    '{app="worker"} != "GET" |~ "status=(429|500)"',
    '{app="api"} | logfmt | status >= 429',
    '{level="error"} | logfmt | ms > 500 and msg=~".*memory"',
]


@pytest.mark.parametrize("text", LOG_QUERIES)
@pytest.mark.parametrize("direction", ["backward", "forward"])
def test_query_lines__equals_the_evaluator_over_every_line(fleet, text, direction):
    store, team_id, _ = fleet
    query = parse(text)
    start, end = T0 + 5 * 60 * S, T0 + 25 * 60 * S
    expected = select_lines(query, _all(store, team_id), start, end, 25, direction)
    got = query_lines(store, query, Scope(team_id), start_ns=start, end_ns=end, limit=25,
                      direction=direction)  # fmt: skip
    assert [(e.timestamp_ns, e.line) for e in got] == [(e.timestamp_ns, e.line) for e in expected]
    assert [e.labels for e in got] == [e.labels for e in expected]


METRIC_QUERIES = [
    # answered from bucket counts
    'sum by (level) (count_over_time({app=~".+"}[5m]))',
    'sum(rate({app="api"} |= "GET" [2m]))',
    'sum by (app) (bytes_over_time({app=~"api|worker"} != "aborted" [90s]))',
    # read line by line
    'sum by (status) (count_over_time({app="api"} | logfmt [5m]))',
    'count_over_time({app="worker"} |~ "CUDA.*" [3m])',
    'max by (app) (count_over_time({app=~".+"}[5m]))',
]


@pytest.mark.parametrize("text", METRIC_QUERIES)
@pytest.mark.parametrize("step_s", [30, 60, 300])
def test_query_range__equals_the_evaluator_over_every_line(fleet, text, step_s):
    store, team_id, _ = fleet
    query = parse(text)
    start, end = T0 + 4 * 60 * S, T0 + 29 * 60 * S
    expected = evaluate_range(query, _all(store, team_id), start, end, step_s * S)
    got = query_range(store, query, Scope(team_id), start_ns=start, end_ns=end, step_ns=step_s * S)
    assert expected  # the fleet has lines for every query
    assert _rounded(got) == _rounded(expected)


def test_query_range__entries_on_window_edges__counted_once(log_store):
    team = TeamFactory()
    labels = (("app", "edge"),)
    # Lines exactly on step boundaries and one nanosecond either side of them.
    times = [T0 + k * 60 * S + d for k in range(1, 5) for d in (-1, 0, 1)]
    entries = tuple(PushedEntry(t, f"line {i}") for i, t in enumerate(times))
    log_store.write(
        team_id=team.pk, streams=[PushedStream(labels, entries)], resolve=lambda _: None
    )
    query = parse('sum(count_over_time({app="edge"}[1m]))')
    start, end = T0 + 60 * S, T0 + 5 * 60 * S
    expected = evaluate_range(query, _all(log_store, team.pk), start, end, 60 * S)
    got = query_range(log_store, query, Scope(team.pk), start_ns=start, end_ns=end, step_ns=60 * S)
    assert [s.points for s in got] == [s.points for s in expected]
    # (t - 1m, t] holds t and t-1ns of this minute and t+1ns of the last: 3 each, 2 first.
    assert [v for _, v in got[0].points] == [2.0, 3.0, 3.0, 3.0, 1.0]


def test_query__too_many_lines__refused_not_partial(fleet):
    store, team_id, _ = fleet
    query = parse('sum by (status) (count_over_time({app=~".+"} | logfmt [5m]))')
    with pytest.raises(LogsQueryError, match="narrow"):
        query_range(store, query, Scope(team_id), start_ns=T0, end_ns=T0 + 1800 * S,
                    step_ns=60 * S, max_scan=50)  # fmt: skip


def test_query__metric_as_lines_and_lines_as_metric__refused(fleet):
    store, team_id, _ = fleet
    with pytest.raises(LogsQueryError):
        query_lines(store, parse('count_over_time({app="api"}[1m])'), Scope(team_id),
                    start_ns=T0, end_ns=T0 + S, limit=10)  # fmt: skip
    with pytest.raises(LogsQueryError):
        query_range(store, parse('{app="api"}'), Scope(team_id), start_ns=T0, end_ns=T0 + S,
                    step_ns=S)  # fmt: skip


@pytest.mark.parametrize("text", METRIC_QUERIES[:3])
def test_query_range__sum_of_counts__answered_without_reading_a_line(fleet, text):
    store, team_id, _ = fleet
    # max_scan=0 refuses any query that reads lines: these come from the bucket counts.
    got = query_range(store, parse(text), Scope(team_id), start_ns=T0, end_ns=T0 + 1800 * S,
                      step_ns=60 * S, max_scan=0)  # fmt: skip
    assert got
