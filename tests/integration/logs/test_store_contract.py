"""What every log storage backend promises (apps/logs/storage/base.py), tested through the
``LogStore`` interface only, once per backend (see ``conftest.STORE_FIXTURES``)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connections

from apps.logs.logql.ast import Matcher
from apps.logs.storage.base import LogSelect, LogStore, StoredEntry
from apps.logs.wire.types import PushedEntry, stream_fingerprint
from tests.factories.accounts import TeamFactory
from tests.factories.inventory import DeploymentFactory

from .pushes import DAY, DAY0, MINUTE, SECOND, T0, no_deployment, stream

pytestmark = pytest.mark.integration

RANGE = (T0 - DAY, T0 + DAY)


def select_all(store: LogStore, query: LogSelect, direction: str = "backward") -> list[StoredEntry]:
    page = store.select(query, limit=10_000, direction=direction)  # type: ignore[arg-type]
    assert page.after is None
    return page.entries


def everything(team_id: int, **kwargs) -> LogSelect:
    return LogSelect(team_id=team_id, start_ns=RANGE[0], end_ns=RANGE[1], **kwargs)


def lines(entries: list[StoredEntry]) -> list[str]:
    return [e.line for e in entries]


@pytest.fixture
def teams(db, log_store):
    return TeamFactory().pk, TeamFactory().pk


# ----------------------------------------------------------------------------- teams


def test_team_isolation__other_teams_matching_rows__never_returned_counted_listed_or_deleted(
    log_store, teams
):
    mine, theirs = teams
    push = [stream({"app": "api"}, (T0, "shared line"), (T0 + SECOND, "only in both"))]
    log_store.write(team_id=mine, streams=push, resolve=no_deployment)
    log_store.write(
        team_id=theirs,
        streams=[*push, stream({"app": "secret"}, (T0, "their own"))],
        resolve=no_deployment,
    )

    selected = select_all(log_store, everything(mine, matchers=(Matcher("app", "=~", ".+"),)))
    assert sorted(lines(selected)) == ["only in both", "shared line"]
    counts = log_store.count_buckets(everything(mine), step_ns=DAY)
    assert sum(sum(s.counts) for s in counts) == 2
    assert log_store.label_values(team_id=mine, name="app", start_ns=RANGE[0], end_ns=RANGE[1]) == [
        "api"
    ]
    assert log_store.series(
        team_id=mine, matchers=[Matcher("app", "=~", ".*")], start_ns=RANGE[0], end_ns=RANGE[1]
    ) == [(("app", "api"),)]

    assert log_store.delete_before(team_id=mine, before_ns=T0 + DAY) == 2
    assert select_all(log_store, everything(mine)) == []
    assert sorted(lines(select_all(log_store, everything(theirs)))) == [
        "only in both",
        "shared line",
        "their own",
    ]


# ----------------------------------------------------------------------------- writes


def test_write__same_stream_time_and_line_in_two_writes__stored_once(log_store, teams):
    team, _ = teams
    push = [stream({"app": "api"}, (T0, "retried line"), (T0 + 1, "second"))]
    first = log_store.write(team_id=team, streams=push, resolve=no_deployment)
    again = log_store.write(team_id=team, streams=push, resolve=no_deployment)

    assert (first.stored, first.duplicates, first.streams) == (2, 0, 1)
    assert first.bytes == len(b"retried line") + len(b"second")
    assert (again.stored, again.duplicates, again.bytes) == (0, 2, 0)
    assert lines(select_all(log_store, everything(team))) == ["second", "retried line"]


def test_write__same_entry_twice_in_one_stream_of_one_write__stored_once(log_store, teams):
    team, _ = teams
    push = [stream({"app": "api"}, (T0, "twice"), (T0 + 1, "once"), (T0, "twice"))]

    result = log_store.write(team_id=team, streams=push, resolve=no_deployment)

    assert (result.stored, result.duplicates, result.bytes) == (2, 1, len(b"twice") + len(b"once"))
    assert lines(select_all(log_store, everything(team))) == ["once", "twice"]


def test_write__same_time_other_line_or_other_stream__separate_entries(log_store, teams):
    team, _ = teams
    log_store.write(
        team_id=team,
        streams=[
            stream({"app": "api"}, (T0, "one"), (T0, "two")),
            stream({"app": "web"}, (T0, "one")),
        ],
        resolve=no_deployment,
    )
    result = log_store.write(
        team_id=team,
        streams=[stream({"app": "api"}, (T0, "one"), (T0, "three"))],
        resolve=no_deployment,
    )

    assert (result.stored, result.duplicates) == (1, 1)
    assert Counter(lines(select_all(log_store, everything(team)))) == {
        "one": 2,
        "two": 1,
        "three": 1,
    }


def test_write__entry_fields_and_stream__read_back(log_store, teams):
    team, _ = teams
    deployment = DeploymentFactory(team_id=team)
    labels = {"app": "api", "pod": "api-0"}
    entry = PushedEntry(
        timestamp_ns=T0,
        line='{"msg": "ready", "ünï": "cödé ✓"}',
        metadata=(("trace_flags", "01"), ("caller", "main.go:12")),
        severity="warn",
        trace_id="0af7651916cd43dd8448eb211c80319c",
        span_id="b7ad6b7169203331",
    )
    calls = []

    def resolve(stream_labels):
        calls.append(dict(stream_labels))
        return deployment.pk

    log_store.write(team_id=team, streams=[stream(labels, entry)], resolve=resolve)
    log_store.write(team_id=team, streams=[stream(labels, (T0 + 1, "later"))], resolve=resolve)

    assert calls == [labels]  # only a new stream is resolved
    stored = select_all(log_store, everything(team), direction="forward")[0]
    assert stored == StoredEntry(
        stream_id=stream_fingerprint((("app", "api"), ("pod", "api-0"))),
        labels=(("app", "api"), ("pod", "api-0")),
        deployment_id=deployment.pk,
        timestamp_ns=T0,
        line=entry.line,
        metadata=entry.metadata,
        severity="warn",
        trace_id=entry.trace_id,
        span_id=entry.span_id,
    )


def test_write__known_stream_extended_both_ways__found_in_every_range(log_store, teams):
    team, _ = teams
    labels = {"app": "api"}
    log_store.write(team_id=team, streams=[stream(labels, (T0, "first"))], resolve=no_deployment)
    log_store.write(
        team_id=team,
        streams=[stream(labels, (T0 + 3 * DAY // 4, "later"), (T0 - 3 * DAY // 4, "earlier"))],
        resolve=no_deployment,
    )

    for start, end, expected in [
        (T0 + DAY // 2, T0 + DAY, ["later"]),
        (T0 - DAY, T0 - DAY // 2, ["earlier"]),
    ]:
        query = LogSelect(team_id=team, start_ns=start, end_ns=end)
        assert lines(select_all(log_store, query)) == expected
        assert log_store.label_names(team_id=team, start_ns=start, end_ns=end) == ["app"]


@pytest.mark.django_db(transaction=True)
def test_write__returned__visible_from_another_connection(log_store, teams):
    team, _ = teams
    log_store.write(
        team_id=team, streams=[stream({"app": "api"}, (T0, "committed"))], resolve=no_deployment
    )
    seen: list[list[str]] = []

    def read() -> None:  # another thread: another database connection
        try:
            seen.append(lines(select_all(log_store, everything(team))))
        finally:
            connections.close_all()

    reader = threading.Thread(target=read)
    reader.start()
    reader.join()
    assert seen == [["committed"]]


# ----------------------------------------------------------------------------- select

STREAMS = {
    "api-gold": {"app": "api", "tier": "gold", "env": "prod"},
    "api-plain": {"app": "api", "env": "prod"},
    "apigw": {"app": "api-gw", "env": "dev"},
    "web": {"app": "web", "tier": "silver", "env": "prod"},
}


@pytest.mark.parametrize(
    ("matchers", "expected"),
    [
        ([("app", "=", "api")], {"api-gold", "api-plain"}),
        ([("app", "!=", "api")], {"apigw", "web"}),
        ([("app", "=~", "api")], {"api-gold", "api-plain"}),  # anchored: not api-gw
        ([("app", "=~", "api.*")], {"api-gold", "api-plain", "apigw"}),
        ([("app", "!~", "api|web")], {"apigw"}),
        ([("tier", "=", "")], {"api-plain", "apigw"}),  # a missing label is ""
        ([("tier", "!=", "")], {"api-gold", "web"}),
        ([("tier", "!=", "gold")], {"api-plain", "apigw", "web"}),
        ([("tier", "=~", "gold|")], {"api-gold", "api-plain", "apigw"}),
        ([("tier", "!~", ".+")], {"api-plain", "apigw"}),
        ([("env", "=", "prod"), ("app", "=~", "a.*"), ("tier", "!=", "gold")], {"api-plain"}),
        ([("nope", "=", "x")], set()),
    ],
)
def test_select__stream_matchers__select_those_streams(log_store, teams, matchers, expected):
    team, _ = teams
    log_store.write(
        team_id=team,
        streams=[stream(labels, (T0, name)) for name, labels in STREAMS.items()],
        resolve=no_deployment,
    )
    query = everything(team, matchers=tuple(Matcher(*m) for m in matchers))

    assert set(lines(select_all(log_store, query))) == expected
    assert {s.stream_id for s in log_store.count_buckets(query, step_ns=DAY)} == {
        stream_fingerprint(tuple(sorted(STREAMS[name].items()))) for name in expected
    }


@pytest.mark.parametrize(
    ("contains", "excludes", "expected"),
    [
        (("error",), (), {"error: disk", "error: CUDA out of memory"}),
        (("Error",), (), {"Error 50% done"}),  # case-sensitive
        (("error",), ("CUDA",), {"error: disk"}),
        (("50%",), (), {"Error 50% done"}),  # LIKE's wildcards taken literally
        (("a_b",), (), {"path a_b\\c"}),
        (("b\\c",), (), {"path a_b\\c"}),
        (("%",), ("_",), {"Error 50% done"}),
        (("error", ":"), ("disk", "memory"), set()),
        ((), ("r",), {"path a_b\\c", "axb"}),
    ],
)
def test_select__literal_line_filters__applied(log_store, teams, contains, excludes, expected):
    team, _ = teams
    texts = ["error: disk", "error: CUDA out of memory", "Error 50% done", "path a_b\\c", "axb"]
    log_store.write(
        team_id=team,
        streams=[stream({"app": "api"}, *((T0 + i, t) for i, t in enumerate(texts)))],
        resolve=no_deployment,
    )
    query = everything(team, line_contains=contains, line_excludes=excludes)

    assert set(lines(select_all(log_store, query))) == expected
    assert sum(sum(s.counts) for s in log_store.count_buckets(query, step_ns=DAY)) == len(expected)


def test_select__deployment_and_time_range__half_open(log_store, teams):
    team, _ = teams
    chat, code = DeploymentFactory(team_id=team), DeploymentFactory(team_id=team)
    links = {"chat": chat.pk, "code": code.pk}
    log_store.write(
        team_id=team,
        streams=[
            stream({"deployment": "chat"}, (T0 - 1, "before"), (T0, "start"), (T0 + 9, "end")),
            stream({"deployment": "code"}, (T0, "code")),
            stream({"deployment": "other"}, (T0, "unlinked")),
        ],
        resolve=lambda labels: links.get(labels["deployment"]),
    )
    query = LogSelect(team_id=team, start_ns=T0, end_ns=T0 + 9, deployment_id=chat.pk)

    assert lines(select_all(log_store, query)) == ["start"]
    assert [e.deployment_id for e in select_all(log_store, everything(team))].count(None) == 1


@pytest.mark.parametrize("direction", ["backward", "forward"])
@pytest.mark.parametrize("limit", [1, 3, 7])
def test_select__paged_by_cursor__no_gap_no_repeat_across_equal_times(
    log_store, teams, direction, limit
):
    team, _ = teams
    # Several streams and lines share each timestamp, and the range spans midnight.
    times = [DAY0 + DAY - MINUTE, DAY0 + DAY - 1, DAY0 + DAY, DAY0 + DAY + 5]
    log_store.write(
        team_id=team,
        streams=[
            stream({"pod": pod}, *((t, f"{word} {pod}") for t in times for word in ("a", "b")))
            for pod in ("p0", "p1", "p2")
        ],
        resolve=no_deployment,
    )
    query = LogSelect(team_id=team, start_ns=DAY0, end_ns=DAY0 + 2 * DAY)
    expected = sorted(
        (e.cursor for e in select_all(log_store, query)), reverse=direction == "backward"
    )
    assert len(expected) == 24

    seen, after = [], None
    for _ in range(30):
        page = log_store.select(query, limit=limit, direction=direction, after=after)
        assert len(page.entries) <= limit
        seen += [e.cursor for e in page.entries]
        after = page.after
        if after is None:
            break
    assert seen == expected


def test_count_buckets__equal_to_counting_the_selected_entries(log_store, teams):
    team, _ = teams
    log_store.write(
        team_id=team,
        streams=[
            stream(
                {"app": "api"}, *((T0 + i * 7 * SECOND, f"line {i} " + "x" * i) for i in range(40))
            ),
            stream({"app": "web"}, *((T0 + i * 13 * SECOND, f"hit ✓ {i}") for i in range(20))),
            stream({"app": "db"}, (T0 - MINUTE, "before the range")),
            # On and next to the bucket edges: start, 30 s, the end (excluded).
            stream(
                {"app": "edge"},
                *((T0 + 5 * SECOND + offset, f"edge {offset}") for offset in (0, -1, 1)),
                *((T0 + 35 * SECOND + offset, f"edge {offset}") for offset in (0, -1, 1)),
                *((T0 + 250 * SECOND + offset, f"edge {offset}") for offset in (0, -1)),
            ),
        ],
        resolve=no_deployment,
    )
    step = 30 * SECOND
    query = LogSelect(
        team_id=team, start_ns=T0 + 5 * SECOND, end_ns=T0 + 250 * SECOND, line_excludes=("3",)
    )

    series = log_store.count_buckets(query, step_ns=step)

    buckets = -(-(query.end_ns - query.start_ns) // step)
    expected: dict[str, tuple[list[int], list[int]]] = {}
    for entry in select_all(log_store, query):
        counts, sizes = expected.setdefault(entry.stream_id, ([0] * buckets, [0] * buckets))
        index = (entry.timestamp_ns - query.start_ns) // step
        counts[index] += 1
        sizes[index] += len(entry.line.encode())
    assert {s.stream_id: (s.counts, s.bytes) for s in series} == expected
    assert {s.labels for s in series} == {(("app", "api"),), (("app", "web"),), (("app", "edge"),)}
    assert sum(next(s for s in series if s.labels == (("app", "edge"),)).counts) == 6


# ----------------------------------------------------------------------------- labels


def test_labels_values_series__only_streams_with_entries_in_range(log_store, teams):
    team, _ = teams
    log_store.write(
        team_id=team,
        streams=[
            stream(
                {"app": "api", "pod": "api-0"}, (T0 - 10 * MINUTE, "old"), (T0 + 10 * MINUTE, "new")
            ),
            stream({"app": "web", "zone": "a"}, (T0 + SECOND, "in range")),
            stream({"app": "batch", "queue": "q"}, (T0 + 2 * SECOND, "in range")),
        ],
        resolve=no_deployment,
    )
    # api-0 has entries before and after the range, none inside it.
    start, end = T0, T0 + MINUTE

    assert log_store.label_names(team_id=team, start_ns=start, end_ns=end) == [
        "app",
        "queue",
        "zone",
    ]
    assert log_store.label_values(team_id=team, name="app", start_ns=start, end_ns=end) == [
        "batch",
        "web",
    ]
    assert log_store.label_values(team_id=team, name="pod", start_ns=start, end_ns=end) == []
    assert log_store.series(
        team_id=team, matchers=[Matcher("app", "!~", "b.*")], start_ns=start, end_ns=end
    ) == [(("app", "web"), ("zone", "a"))]
    assert log_store.label_values(team_id=team, name="pod", start_ns=T0 - DAY, end_ns=T0 + DAY) == [
        "api-0"
    ]


# ----------------------------------------------------------------------------- retention


def test_delete_before__in_bounded_batches__only_older_entries_of_that_team(log_store, teams):
    team, other = teams
    old = [(DAY0 - 3 * DAY + i * MINUTE, f"old {i}") for i in range(7)]
    recent = [(DAY0 + i, f"recent {i}") for i in range(3)]
    for team_id in teams:
        log_store.write(
            team_id=team_id, streams=[stream({"app": "api"}, *old, *recent)], resolve=no_deployment
        )
    wide = LogSelect(team_id=team, start_ns=DAY0 - 10 * DAY, end_ns=DAY0 + DAY)

    removed = log_store.delete_before(team_id=team, before_ns=DAY0, batch=2)

    assert removed == 7
    assert sorted(lines(select_all(log_store, wide))) == ["recent 0", "recent 1", "recent 2"]
    theirs = LogSelect(team_id=other, start_ns=DAY0 - 10 * DAY, end_ns=DAY0 + DAY)
    assert len(select_all(log_store, theirs)) == 10
    assert log_store.delete_before(team_id=team, before_ns=DAY0, batch=2) == 0


def test_delete_before__everything_expired__stream_forgotten_and_written_again(log_store, teams):
    team, _ = teams
    push = [stream({"app": "api"}, (DAY0 - 2 * DAY, "old"))]
    log_store.write(team_id=team, streams=push, resolve=no_deployment)

    assert log_store.delete_before(team_id=team, before_ns=DAY0) == 1
    assert log_store.label_names(team_id=team, start_ns=0, end_ns=DAY0 + DAY) == []
    again = log_store.write(team_id=team, streams=push, resolve=no_deployment)
    assert again.stored == 1
    assert lines(select_all(log_store, LogSelect(team_id=team, start_ns=0, end_ns=DAY0))) == ["old"]


# ----------------------------------------------------------------------------- prepare


def test_prepare__twice__idempotent_and_writes_before_and_after_are_kept(log_store, teams):
    team, _ = teams
    far = DAY0 + 30 * DAY + 5  # no partition prepared for that day
    log_store.write(
        team_id=team,
        streams=[stream({"app": "api"}, (T0, "prepared day"), (far, "unprepared day"))],
        resolve=no_deployment,
    )
    log_store.prepare(now_ns=T0)
    log_store.prepare(now_ns=T0)
    log_store.prepare(now_ns=far, days_ahead=0)  # that day's rows were written already
    again = log_store.write(
        team_id=team,
        streams=[stream({"app": "api"}, (far, "unprepared day"), (far + 1, "after"))],
        resolve=no_deployment,
    )

    assert (again.stored, again.duplicates) == (1, 1)
    query = LogSelect(team_id=team, start_ns=DAY0, end_ns=far + DAY)
    assert lines(select_all(log_store, query)) == ["after", "unprepared day", "prepared day"]
