"""The ClickHouse log store against a real clickhouse-server (Debian's package, started once
per session by the ``clickhouse_url`` fixture, see tests/integration/logs/clickhouse.py).

The tests before the "ClickHouse only" line use nothing but the ``LogStore`` interface and a
``store`` fixture, so that any backend can run them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
from django.core.exceptions import ImproperlyConfigured

from apps.logs.logql.ast import Matcher
from apps.logs.storage.base import LogSelect, LogStore, StoredEntry, minutes_answer
from apps.logs.storage.clickhouse import DAY_NS, ClickHouseLogStore, ClickHouseUnavailable
from apps.logs.wire.limits import Limits, validate_push
from apps.logs.wire.types import (
    Pairs,
    PlainEntries,
    PushedEntry,
    PushedStream,
    normalize_labels,
)
from tests.integration.logs.clickhouse import PrivateClickHouse
from tests.integration.logs.pushes import MINUTE, bucket_counts, minute_fleet, with_empty_filter
from tests.integration.logs.pushes import T0 as FLEET_T0
from tests.servers import free_port

pytestmark = pytest.mark.integration

T0 = 1_780_000_000 * 10**9  # a fixed moment (2026-05-28), in nanoseconds
S = 10**9
TEAM = 7
OTHER = 8


@pytest.fixture
def store(clickhouse_url: str) -> Iterator[ClickHouseLogStore]:
    backend = ClickHouseLogStore(clickhouse_url)
    backend.prepare(now_ns=T0)
    yield backend
    backend.close()


def stream(labels: Mapping[str, str], *entries: tuple[int, str] | PushedEntry) -> PushedStream:
    return PushedStream(
        labels=normalize_labels(list(labels.items())),
        entries=tuple(
            entry if isinstance(entry, PushedEntry) else PushedEntry(entry[0], entry[1])
            for entry in entries
        ),
    )


def no_deployment(labels: Mapping[str, str]) -> int | None:
    return None


def everything(store: LogStore, team_id: int = TEAM, **query: object) -> list[StoredEntry]:
    """Every matching entry, oldest first, through as many pages as it takes."""
    select = LogSelect(
        team_id=team_id,
        start_ns=int(query.pop("start_ns", 0)),  # type: ignore[call-overload]
        end_ns=int(query.pop("end_ns", T0 + 1000 * DAY_NS)),  # type: ignore[call-overload]
        **query,  # type: ignore[arg-type]
    )
    entries: list[StoredEntry] = []
    after = None
    while True:
        page = store.select(select, limit=100, direction="forward", after=after)
        entries.extend(page.entries)
        if page.after is None:
            return entries
        after = page.after


def lines(entries: list[StoredEntry]) -> list[str]:
    return [entry.line for entry in entries]


def test_written_entries_come_back_with_their_stream_and_details(store: LogStore) -> None:
    detailed = PushedEntry(
        T0 + 2,
        "CUDA out of memory — tried to allocate 2 GiB",
        metadata=(("pod", "vllm-0"), ("attempt", "2")),
        severity="error",
        trace_id="0af7651916cd43dd8448eb211c80319c",
        span_id="b7ad6b7169203331",
    )
    api = {"app": "api", "env": "prod"}
    result = store.write(
        team_id=TEAM,
        streams=[
            stream(api, (T0 + 1, "loading model"), detailed),
            stream({"app": "web"}, (T0, "up")),
        ],
        resolve=lambda labels: 42 if labels.get("app") == "api" else None,
    )

    assert (result.stored, result.duplicates, result.streams) == (3, 0, 2)
    assert result.bytes == sum(
        len(text.encode()) for text in ("loading model", detailed.line, "up")
    )
    entries = everything(store)
    assert lines(entries) == ["up", "loading model", detailed.line]
    stored = entries[2]
    assert stored.labels == (("app", "api"), ("env", "prod"))
    assert stored.deployment_id == 42
    assert entries[0].deployment_id is None
    assert stored.stream_id == stream(api).fingerprint
    assert (stored.timestamp_ns, stored.metadata, stored.severity) == (
        T0 + 2,
        (("pod", "vllm-0"), ("attempt", "2")),
        "error",
    )
    assert (stored.trace_id, stored.span_id) == (detailed.trace_id, detailed.span_id)


def test_a_stream_keeps_the_deployment_it_was_first_linked_to(store: LogStore) -> None:
    calls: list[dict[str, str]] = []

    def resolve(labels: Mapping[str, str]) -> int | None:
        calls.append(dict(labels))
        return 5 if len(calls) == 1 else 6

    store.write(team_id=TEAM, streams=[stream({"app": "a"}, (T0, "one"))], resolve=resolve)
    store.write(team_id=TEAM, streams=[stream({"app": "a"}, (T0 + 1, "two"))], resolve=resolve)

    assert calls == [{"app": "a"}]
    assert [entry.deployment_id for entry in everything(store)] == [5, 5]


def test_teams_never_see_each_others_entries(store: LogStore) -> None:
    labels = {"app": "api"}
    store.write(team_id=TEAM, streams=[stream(labels, (T0, "mine"))], resolve=lambda _: 1)
    theirs = stream(labels, (T0, "theirs"), (T0 + 1, "theirs too"))
    result = store.write(team_id=OTHER, streams=[theirs], resolve=lambda _: 2)

    assert result.stored == 2
    assert [(e.line, e.deployment_id) for e in everything(store, TEAM)] == [("mine", 1)]
    assert [(e.line, e.deployment_id) for e in everything(store, OTHER)] == [
        ("theirs", 2),
        ("theirs too", 2),
    ]
    assert lines(everything(store, OTHER, deployment_id=1)) == []
    assert store.series(team_id=OTHER, matchers=[], start_ns=T0, end_ns=T0 + S) == [
        (("app", "api"),)
    ]
    counted = store.count_buckets(LogSelect(TEAM, T0, T0 + 10), step_ns=10)
    assert [series.counts for series in counted] == [[1]]
    assert lines(everything(store, 99)) == []
    assert store.label_names(team_id=99, start_ns=T0, end_ns=T0 + S) == []
    assert store.delete_before(team_id=OTHER, before_ns=T0 + S) == 2
    assert lines(everything(store, TEAM)) == ["mine"]


def test_a_retried_batch_is_stored_once(store: LogStore) -> None:
    batch = [
        stream({"app": "api"}, (T0, "same"), (T0, "other line, same time"), (T0 + 1, "same")),
        stream({"app": "web"}, (T0, "same")),
    ]
    first = store.write(team_id=TEAM, streams=batch, resolve=no_deployment)
    again = store.write(team_id=TEAM, streams=batch, resolve=no_deployment)
    overlapping = store.write(
        team_id=TEAM,
        streams=[stream({"app": "api"}, (T0 + 1, "same"), (T0 + 2, "new"), (T0 + 1, "new"))],
        resolve=no_deployment,
    )

    assert (first.stored, first.duplicates) == (4, 0)
    assert (again.stored, again.duplicates, again.streams, again.bytes) == (0, 4, 0, 0)
    assert (overlapping.stored, overlapping.duplicates, overlapping.streams) == (2, 1, 1)
    assert sorted(lines(everything(store))) == sorted(
        ["same", "other line, same time", "same", "same", "new", "new"]
    )
    assert (
        sum(sum(s.counts) for s in store.count_buckets(LogSelect(TEAM, T0, T0 + S), step_ns=S)) == 6
    )


def _fleet(store: LogStore) -> None:
    store.write(
        team_id=TEAM,
        streams=[
            stream({"app": "api", "env": "prod"}, (T0, "api prod")),
            stream({"app": "api", "env": "dev"}, (T0 + 1, "api dev")),
            stream({"app": "apiserver", "env": "prod"}, (T0 + 2, "apiserver prod")),
            stream({"app": "web"}, (T0 + 3, "web no env")),
        ],
        resolve=lambda labels: 3 if labels.get("env") == "prod" else None,
    )


@pytest.mark.parametrize(
    ("matchers", "expected"),
    [
        ([Matcher("app", "=", "api")], ["api prod", "api dev"]),
        ([Matcher("app", "!=", "api")], ["apiserver prod", "web no env"]),
        ([Matcher("app", "=~", "api")], ["api prod", "api dev"]),  # anchored: not apiserver
        (
            [Matcher("app", "=~", "api.*|w.b")],
            ["api prod", "api dev", "apiserver prod", "web no env"],
        ),
        ([Matcher("app", "!~", "api.*")], ["web no env"]),
        ([Matcher("env", "=", "")], ["web no env"]),  # a missing label reads as ""
        ([Matcher("env", "!=", "")], ["api prod", "api dev", "apiserver prod"]),
        ([Matcher("env", "=~", "prod|")], ["api prod", "apiserver prod", "web no env"]),
        ([Matcher("env", "!~", ".+"), Matcher("app", "=", "web")], ["web no env"]),
        ([Matcher("app", "=", "api"), Matcher("env", "!~", "d.v")], ["api prod"]),
        ([Matcher("nothere", "=", "x")], []),
    ],
)
def test_stream_matchers(store: LogStore, matchers: list[Matcher], expected: list[str]) -> None:
    _fleet(store)

    assert lines(everything(store, matchers=tuple(matchers))) == expected


def test_the_deployment_narrows_a_selection(store: LogStore) -> None:
    _fleet(store)

    assert lines(everything(store, deployment_id=3)) == ["api prod", "apiserver prod"]
    only_api = everything(store, deployment_id=3, matchers=(Matcher("app", "=", "api"),))
    assert lines(only_api) == ["api prod"]
    assert lines(everything(store, deployment_id=4)) == []


def test_literal_line_filters(store: LogStore) -> None:
    texts = ["GET /health 200", "GET /v1/chat 500 error", "POST /v1/chat 200", "Error: boom"]
    store.write(
        team_id=TEAM,
        streams=[stream({"app": "api"}, *((T0 + i, text) for i, text in enumerate(texts)))],
        resolve=no_deployment,
    )

    assert lines(everything(store, line_contains=("/v1/chat",))) == texts[1:3]
    assert lines(everything(store, line_contains=("/v1/chat", "GET"))) == [texts[1]]
    assert lines(everything(store, line_contains=("error",))) == [texts[1]]  # case-sensitive
    assert lines(everything(store, line_excludes=("GET", "boom"))) == [texts[2]]
    assert lines(everything(store, line_contains=("200",), line_excludes=("health",))) == [texts[2]]
    assert lines(everything(store, line_contains=("%",))) == []  # no LIKE wildcards


def test_the_time_range_is_half_open(store: LogStore) -> None:
    store.write(
        team_id=TEAM,
        streams=[
            stream(
                {"app": "api"},
                (T0 - 1, "before"),
                (T0, "start"),
                (T0 + 9, "last"),
                (T0 + 10, "end"),
            )
        ],
        resolve=no_deployment,
    )

    assert lines(everything(store, start_ns=T0, end_ns=T0 + 10)) == ["start", "last"]


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_paging_has_no_gaps_or_repeats_across_equal_timestamps(
    store: LogStore, direction: str
) -> None:
    streams = [
        stream({"app": name}, *((T0 + i // 4, f"line {i % 3}") for i in range(12)))
        for name in ("a", "b", "c")
    ]
    store.write(team_id=TEAM, streams=streams, resolve=no_deployment)
    stored = everything(store)
    assert len(stored) == 3 * 3 * 3  # per stream: 3 timestamps x 3 distinct lines
    expected = sorted(stored, key=lambda entry: entry.cursor, reverse=direction == "backward")

    select = LogSelect(TEAM, T0, T0 + S)
    seen: list[StoredEntry] = []
    after = None
    pages = 0
    while True:
        page = store.select(select, limit=4, direction=direction, after=after)  # type: ignore[arg-type]
        pages += 1
        seen.extend(page.entries)
        if page.after is None:
            break
        assert page.after == page.entries[-1].cursor
        after = page.after

    assert [entry.cursor for entry in seen] == [entry.cursor for entry in expected]
    assert pages == 7  # 27 entries, 4 a page
    newest = store.select(select, limit=2, direction="backward")
    assert [entry.cursor for entry in newest.entries] == [
        entry.cursor for entry in sorted(stored, key=lambda e: e.cursor, reverse=True)[:2]
    ]


def test_count_buckets_equals_a_count_of_the_selected_lines(store: LogStore) -> None:
    streams = [
        stream(
            {"app": app, "level": level},
            *((T0 + i * 7 * S // 10, f"{level} request {i} é") for i in range(40)),
        )
        for app in ("api", "web")
        for level in ("info", "error")
    ]
    store.write(team_id=TEAM, streams=streams, resolve=no_deployment)
    query = LogSelect(
        TEAM,
        T0 + S,
        T0 + 25 * S,  # 24 s in steps of 5 s: the last bucket is cut at 4 s
        matchers=(Matcher("app", "=", "api"),),
        line_contains=("request",),
        line_excludes=("request 3",),
    )
    step = 5 * S

    counted = store.count_buckets(query, step_ns=step)

    selected = everything(
        store,
        start_ns=query.start_ns,
        end_ns=query.end_ns,
        matchers=query.matchers,
        line_contains=query.line_contains,
        line_excludes=query.line_excludes,
    )
    brute: dict[Pairs, list[list[int]]] = {}
    for entry in selected:
        counts, sizes = brute.setdefault(entry.labels, [[0] * 5, [0] * 5])
        bucket = (entry.timestamp_ns - query.start_ns) // step
        counts[bucket] += 1
        sizes[bucket] += len(entry.line.encode())
    assert {s.labels: [s.counts, s.bytes] for s in counted} == brute
    assert {s.labels for s in counted} == {
        (("app", "api"), ("level", "error")),
        (("app", "api"), ("level", "info")),
    }
    assert all(len(s.counts) == len(s.bytes) == 5 for s in counted)
    assert store.count_buckets(LogSelect(TEAM, T0 - 100 * S, T0 - S), step_ns=S) == []


def test_labels_values_and_series_of_streams_with_entries_in_range(store: LogStore) -> None:
    store.write(
        team_id=TEAM,
        streams=[
            stream({"app": "api", "env": "prod"}, (T0, "a")),
            stream({"app": "web", "pod": "web-1"}, (T0 + 10 * S, "b")),
            stream({"job": "old"}, (T0 - 3600 * S, "c")),
        ],
        resolve=no_deployment,
    )
    store.write(team_id=OTHER, streams=[stream({"secret": "x"}, (T0, "z"))], resolve=no_deployment)
    window = {"start_ns": T0, "end_ns": T0 + 20 * S}

    assert store.label_names(team_id=TEAM, **window) == ["app", "env", "pod"]
    assert store.label_names(team_id=TEAM, start_ns=T0, end_ns=T0 + 10 * S) == ["app", "env"]
    assert store.label_values(team_id=TEAM, name="app", **window) == ["api", "web"]
    assert store.label_values(team_id=TEAM, name="pod", **window) == ["web-1"]
    assert store.label_values(team_id=TEAM, name="job", **window) == []
    assert store.series(team_id=TEAM, matchers=[], **window) == [
        (("app", "api"), ("env", "prod")),
        (("app", "web"), ("pod", "web-1")),
    ]
    assert store.series(team_id=TEAM, matchers=[Matcher("env", "=", "")], **window) == [
        (("app", "web"), ("pod", "web-1"))
    ]
    assert store.series(
        team_id=TEAM, matchers=[Matcher("app", "=~", "a.*|old")], start_ns=0, end_ns=T0 + S
    ) == [(("app", "api"), ("env", "prod"))]
    assert store.series(
        team_id=TEAM, matchers=[Matcher("job", "=", "old")], start_ns=0, end_ns=T0
    ) == [(("job", "old"),)]


def test_delete_before_removes_only_the_teams_older_entries(store: LogStore) -> None:
    day = T0 - T0 % DAY_NS
    mine = stream(
        {"app": "api"},
        (day - 3 * DAY_NS, "three days ago"),
        (day - DAY_NS + 5, "yesterday"),
        (day + 10 * S, "today early"),
        (day + 20 * S, "today late"),
    )
    store.write(team_id=TEAM, streams=[mine], resolve=no_deployment)
    theirs = stream({"app": "api"}, (day - DAY_NS + 7, "their yesterday"), (day + S, "their today"))
    store.write(team_id=OTHER, streams=[theirs], resolve=no_deployment)

    removed = store.delete_before(team_id=TEAM, before_ns=day + 15 * S)

    assert removed == 3
    assert lines(everything(store)) == ["today late"]
    assert lines(everything(store, OTHER)) == ["their yesterday", "their today"]
    assert store.delete_before(team_id=TEAM, before_ns=day + 15 * S) == 0
    assert store.delete_before(team_id=OTHER, before_ns=day + 2 * DAY_NS) == 2
    assert lines(everything(store, OTHER)) == []
    assert lines(everything(store)) == ["today late"]
    # A deleted entry written again is new.
    again = store.write(team_id=TEAM, streams=[mine], resolve=no_deployment)
    assert (again.stored, again.duplicates) == (3, 1)


def test_threads_share_one_store(store: LogStore) -> None:
    def push(worker: int) -> int:
        total = 0
        for batch in range(5):
            entries = [(T0 + batch * 100 + i, f"worker {worker} line {i}") for i in range(20)]
            pushed = stream({"worker": str(worker % 2)}, *entries)
            total += store.write(team_id=TEAM, streams=[pushed], resolve=no_deployment).stored
            store.select(LogSelect(TEAM, T0, T0 + S), limit=5)
        return total

    with ThreadPoolExecutor(max_workers=4) as pool:
        stored = list(pool.map(push, range(4)))

    assert stored == [100, 100, 100, 100]
    assert len(everything(store)) == 400
    assert store.label_values(team_id=TEAM, name="worker", start_ns=T0, end_ns=T0 + S) == [
        "0",
        "1",
    ]


def test_prepare_is_idempotent(store: LogStore) -> None:
    store.write(team_id=TEAM, streams=[stream({"app": "api"}, (T0, "kept"))], resolve=no_deployment)

    store.prepare(now_ns=T0)
    store.prepare(now_ns=T0 + DAY_NS, days_ahead=5)

    assert lines(everything(store)) == ["kept"]


# ---- ClickHouse only ------------------------------------------------------------------------


def test_prepare_creates_the_tables_in_an_empty_database(
    clickhouse_server: PrivateClickHouse, clickhouse_url: str
) -> None:
    database = clickhouse_url.rsplit("/", 1)[1]

    ClickHouseLogStore(clickhouse_url).prepare(now_ns=T0)

    tables = clickhouse_server.execute(
        "SELECT name, engine FROM system.tables WHERE database = %(db)s ORDER BY name",
        {"db": database},
    )
    assert tables == [
        ("logs_entries", "ReplacingMergeTree"),
        ("logs_minutes", "SummingMergeTree"),
        ("logs_minutes_feed", "MaterializedView"),
        ("logs_streams", "ReplacingMergeTree"),
    ]


def test_old_days_of_a_single_team_go_as_whole_partitions(
    store: ClickHouseLogStore, clickhouse_server: PrivateClickHouse
) -> None:
    day = T0 - T0 % DAY_NS
    store.write(
        team_id=TEAM,
        streams=[
            stream(
                {"app": "api"}, (day - 2 * DAY_NS, "old"), (day - DAY_NS, "older"), (day, "today")
            )
        ],
        resolve=no_deployment,
    )

    def partitions() -> list[str]:
        rows = clickhouse_server.execute(
            "SELECT DISTINCT partition_id FROM system.parts WHERE database = %(db)s"
            " AND table = 'logs_entries' AND active ORDER BY partition_id",
            {"db": store.target.database},
        )
        return [str(row[0]) for row in rows]

    first_day = (day - 2 * DAY_NS) // DAY_NS
    assert partitions() == [str(first_day), str(first_day + 1), str(first_day + 2)]

    assert store.delete_before(team_id=TEAM, before_ns=day) == 2

    assert partitions() == [str(first_day + 2)]
    mutations = clickhouse_server.execute(
        "SELECT count() FROM system.mutations WHERE database = %(db)s",
        {"db": store.target.database},
    )
    assert mutations == [(0,)]  # dropped, not rewritten
    assert lines(everything(store)) == ["today"]


def test_a_line_written_twice_at_once_is_still_read_once(
    store: ClickHouseLogStore, clickhouse_server: PrivateClickHouse
) -> None:
    """Two copies of a batch in flight together can both pass the existence check: the
    engine's replacing merge and FINAL reads keep them one entry."""
    batch = stream({"app": "api"}, (T0, "twice"))
    store.write(team_id=TEAM, streams=[batch], resolve=no_deployment)
    database = store.target.database
    clickhouse_server.execute(
        "INSERT INTO logs_entries SELECT * FROM logs_entries", database=database
    )
    raw = clickhouse_server.execute("SELECT count() FROM logs_entries", database=database)
    assert raw == [(2,)]

    assert lines(everything(store)) == ["twice"]
    counted = store.count_buckets(LogSelect(TEAM, T0, T0 + 1), step_ns=1)
    assert [series.counts for series in counted] == [[1]]


def test_another_store_on_the_same_database_finds_the_linked_streams(clickhouse_url: str) -> None:
    """Each process remembers the streams it has seen; one that has not reads them."""
    calls: list[dict[str, str]] = []

    def resolve(labels: Mapping[str, str]) -> int | None:
        calls.append(dict(labels))
        return 11 + len(calls)

    first, second = ClickHouseLogStore(clickhouse_url), ClickHouseLogStore(clickhouse_url)
    first.write(team_id=TEAM, streams=[stream({"app": "a"}, (T0, "one"))], resolve=resolve)
    result = second.write(
        team_id=TEAM,
        streams=[stream({"app": "a"}, (T0, "one"), (T0 + 1, "two"))],
        resolve=resolve,
    )

    assert calls == [{"app": "a"}]
    assert (result.stored, result.duplicates) == (1, 1)
    assert [entry.deployment_id for entry in everything(second)] == [12, 12]
    assert [entry.deployment_id for entry in everything(first)] == [12, 12]


def test_a_url_that_is_not_clickhouse_is_refused_with_the_reason() -> None:
    with pytest.raises(ImproperlyConfigured, match="must start with clickhouse://"):
        ClickHouseLogStore("postgres://user@127.0.0.1/logs")
    with pytest.raises(ImproperlyConfigured, match="one database"):
        ClickHouseLogStore("clickhouse://user@127.0.0.1:9000/")
    with pytest.raises(ImproperlyConfigured, match="bad port"):
        ClickHouseLogStore("clickhouse://user@127.0.0.1:notaport/logs")


def test_an_unreachable_server_is_named_in_the_error() -> None:
    port = free_port()
    store = ClickHouseLogStore(f"clickhouse://u:p@127.0.0.1:{port}/logs", connect_timeout_s=1)

    with pytest.raises(ClickHouseUnavailable, match=f"127.0.0.1:{port}"):
        store.select(LogSelect(TEAM, T0, T0 + 1), limit=1)


def test_a_wrong_password_or_database_is_named_in_the_error(clickhouse_url: str) -> None:
    wrong = clickhouse_url.replace(":logs-test-password@", ":wrong@")
    store = ClickHouseLogStore(wrong)

    with pytest.raises(ClickHouseUnavailable, match="user 'logs'"):
        store.prepare(now_ns=T0)
    missing = ClickHouseLogStore(clickhouse_url.rsplit("/", 1)[0] + "/no_such_db")
    with pytest.raises(ClickHouseUnavailable, match="database 'no_such_db'"):
        missing.prepare(now_ns=T0)


def test_the_factory_needs_the_url(settings: object) -> None:
    settings.LOGS_CLICKHOUSE_URL = ""  # type: ignore[attr-defined]

    with pytest.raises(ImproperlyConfigured, match="LOGS_CLICKHOUSE_URL is unset"):
        ClickHouseLogStore.from_settings()


def test_the_factory_builds_it_from_settings(settings: object, clickhouse_url: str) -> None:
    from apps.logs.storage import log_store

    settings.LOGS_BACKEND = "clickhouse"  # type: ignore[attr-defined]
    settings.LOGS_CLICKHOUSE_URL = clickhouse_url  # type: ignore[attr-defined]
    log_store.cache_clear()
    try:
        built = log_store()
        assert isinstance(built, ClickHouseLogStore)
        assert built.target.database == clickhouse_url.rsplit("/", 1)[1]
        built.prepare(now_ns=T0)
        assert built.select(LogSelect(TEAM, T0, T0 + 1), limit=1).entries == []
    finally:
        log_store.cache_clear()


# ---- minute counts ----------------------------------------------------------------------------


@pytest.mark.parametrize("step_minutes", [1, 5, 7])
def test_minute_counts_equal_counting_the_lines(
    store: ClickHouseLogStore, step_minutes: int
) -> None:
    store.write(team_id=TEAM, streams=minute_fleet(), resolve=no_deployment)
    step = step_minutes * MINUTE
    start = FLEET_T0 - 5 * MINUTE + 1  # (t - step, t] buckets, as the query layer asks
    select = LogSelect(team_id=TEAM, start_ns=start, end_ns=start + 8 * step)
    assert minutes_answer(select, step)  # the minute counts answer it

    from_minutes = bucket_counts(store, select, step)

    assert from_minutes == bucket_counts(store, with_empty_filter(select), step)
    assert sum(sum(counts) for _, counts, _ in from_minutes) > 50
    api = [series for series in from_minutes if series[0] == minute_fleet()[0].fingerprint]
    assert bucket_counts(store, replace(select, line_contains=("api",)), step) == api
    # Two buckets ending on a minute with lines exactly on it (and the first starting on
    # one, for a step of 5 minutes).
    end = FLEET_T0 + 20 * MINUTE
    select = LogSelect(team_id=TEAM, start_ns=end - 2 * step + 1, end_ns=end + 1)
    assert minutes_answer(select, step)
    assert bucket_counts(store, select, step) == bucket_counts(
        store, with_empty_filter(select), step
    )


def test_minute_counts_of_one_stream_and_one_deployment(store: ClickHouseLogStore) -> None:
    store.write(
        team_id=TEAM,
        streams=minute_fleet(),
        resolve=lambda labels: 3 if labels["app"] == "api" else None,
    )
    start = FLEET_T0 + 1
    for select in (
        LogSelect(TEAM, start, start + 30 * MINUTE, matchers=(Matcher("app", "=", "worker"),)),
        LogSelect(TEAM, start, start + 30 * MINUTE, deployment_id=3),
    ):
        from_minutes = bucket_counts(store, select, 5 * MINUTE)
        assert len(from_minutes) == 1
        assert from_minutes == bucket_counts(store, with_empty_filter(select), 5 * MINUTE)


def test_a_retried_batch_is_counted_once(store: ClickHouseLogStore) -> None:
    fleet = minute_fleet()
    store.write(team_id=TEAM, streams=fleet, resolve=no_deployment)

    retry = store.write(team_id=TEAM, streams=fleet, resolve=no_deployment)

    assert retry.stored == 0
    select = LogSelect(TEAM, FLEET_T0 - MINUTE + 1, FLEET_T0 + 59 * MINUTE + 1)
    assert bucket_counts(store, select, MINUTE) == bucket_counts(
        store, with_empty_filter(select), MINUTE
    )


def test_minute_counts_follow_a_cutoff_inside_a_minute_and_a_dropped_day(
    store: ClickHouseLogStore, clickhouse_server: PrivateClickHouse
) -> None:
    yesterday = FLEET_T0 - DAY_NS
    store.write(
        team_id=TEAM,
        streams=[*minute_fleet(), stream({"app": "api"}, (yesterday + 5 * S, "yesterday"))],
        resolve=no_deployment,
    )
    store.write(team_id=OTHER, streams=minute_fleet(seed=6), resolve=no_deployment)
    cutoff = FLEET_T0 + 12 * MINUTE + 30 * S + 7  # inside a minute

    store.delete_before(team_id=TEAM, before_ns=cutoff)

    minute_days = clickhouse_server.execute(
        "SELECT DISTINCT partition_id FROM system.parts WHERE database = %(db)s"
        " AND table = 'logs_minutes' AND active",
        {"db": store.target.database},
    )
    assert str(yesterday // DAY_NS) not in {day for (day,) in minute_days}  # dropped whole
    for team in (TEAM, OTHER):
        select = LogSelect(team, yesterday - MINUTE + 1, FLEET_T0 + 59 * MINUTE + 1)
        counted = bucket_counts(store, select, MINUTE)
        assert counted == bucket_counts(store, with_empty_filter(select), MINUTE)
        assert counted
    cut = cutoff - cutoff % MINUTE  # the minute the cutoff falls in: what is left of it
    counted = bucket_counts(store, LogSelect(TEAM, cut + 1, cut + MINUTE + 1), MINUTE)
    assert sum(counts[0] for _, counts, _ in counted) == len(
        everything(store, start_ns=cutoff, end_ns=cut + MINUTE + 1)
    )


def test_minute_counts_follow_a_day_before_1970_dropped(store: ClickHouseLogStore) -> None:
    """Before 1970 a minute can straddle two day partitions of the entries."""
    early = [(-DAY_NS + d, f"early {d}") for d in (0, 1, 30 * S, DAY_NS - 1)]
    store.write(team_id=TEAM, streams=[stream({"app": "api"}, *early)], resolve=no_deployment)
    select = LogSelect(TEAM, -DAY_NS - MINUTE + 1, MINUTE + 1)
    counted = bucket_counts(store, select, MINUTE)
    assert counted == bucket_counts(store, with_empty_filter(select), MINUTE)
    assert sum(sum(c) for _, c, _ in counted) == 4

    store.delete_before(team_id=TEAM, before_ns=0)

    assert everything(store, start_ns=-2 * DAY_NS) == []
    assert bucket_counts(store, select, MINUTE) == []


class ReadsCounted:
    """Counts the store's reads of already-stored entries, per write."""

    def __init__(self, store: ClickHouseLogStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.streams: list[int] = []
        real = store._existing

        def counted(team_id: int, deployments: set[int], batch: list) -> set:  # type: ignore[type-arg]
            self.streams.append(len({sid for sid, _ in batch}))
            return real(team_id, deployments, batch)

        monkeypatch.setattr(store, "_existing", counted)


def test_claims__newer_batches_skip_the_read_and_retries_still_store_nothing(
    store: ClickHouseLogStore, redis_cache: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With Redis as the cache, a batch newer than everything claimed for its streams is not
    checked against the stored entries; a retry, an older entry and a Redis that lost its
    claims are, so every line is still stored once."""
    reads = ReadsCounted(store, monkeypatch)
    api, web = {"app": "api"}, {"app": "web"}

    def write(*streams: PushedStream) -> tuple[int, int]:
        result = store.write(team_id=TEAM, streams=list(streams), resolve=no_deployment)
        return result.stored, result.duplicates

    assert write(stream(api, (T0, "a")), stream(web, (T0, "w"))) == (2, 0)  # new streams
    assert write(stream(api, (T0 + 1, "b")), stream(web, (T0 + 1, "x"))) == (2, 0)
    assert reads.streams == []  # both newer than their claims: nothing read
    assert write(stream(api, (T0 + 1, "b")), stream(web, (T0 + 2, "y"))) == (1, 1)  # api retried
    assert reads.streams == [1]  # only the stream at or before its claim was read
    # A write that claimed and then failed: its retry is read, and stores the lines once.
    original = store._execute

    def failing(sql: str, *args: object, **kwargs: object) -> list:  # type: ignore[type-arg]
        if sql.startswith("INSERT INTO logs_entries"):
            original(sql, *args, **kwargs)  # the insert happens, the answer is lost
            raise ClickHouseUnavailable("connection lost after the insert")
        return original(sql, *args, **kwargs)

    monkeypatch.setattr(store, "_execute", failing)
    with pytest.raises(ClickHouseUnavailable):
        write(stream(api, (T0 + 5, "c")))
    monkeypatch.setattr(store, "_execute", original)
    assert write(stream(api, (T0 + 5, "c"))) == (0, 1)
    # Redis forgets every claim: the next batch is read, not trusted.
    import redis

    redis.Redis.from_url(redis_cache.url(0)).flushdb()  # type: ignore[attr-defined]
    reads.streams.clear()
    assert write(stream(api, (T0 + 6, "d")), stream(web, (T0 + 2, "y"))) == (1, 1)
    assert reads.streams == [2]
    assert sorted(lines(everything(store))) == ["a", "b", "c", "d", "w", "x", "y"]


def test_claims__lost_claim__raised_to_the_newest_stored_time(
    store: ClickHouseLogStore, redis_cache: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After Redis loses a stream's claim, an older batch must not leave the claim below
    what is stored: a retry of the newer entries is then still checked, and stored once."""
    import redis

    api = {"app": "api"}

    def write(*entries: tuple[int, str]) -> tuple[int, int]:
        result = store.write(team_id=TEAM, streams=[stream(api, *entries)], resolve=no_deployment)
        return result.stored, result.duplicates

    assert write((T0 + 100, "newer"), (T0 + 200, "newest")) == (2, 0)
    redis.Redis.from_url(redis_cache.url(0)).flushdb()  # type: ignore[attr-defined]
    assert write((T0 + 50, "older")) == (1, 0)  # no claim: checked, then claimed
    reads = ReadsCounted(store, monkeypatch)
    # A shipper's retry of the first batch: older than what is stored, newer than "older".
    assert write((T0 + 100, "newer"), (T0 + 200, "newest")) == (0, 2)
    assert reads.streams == [1]
    assert sorted(lines(everything(store))) == ["newer", "newest", "older"]


def test_entries_as_columns__stored_once__whether_known_unique_or_not(
    store: ClickHouseLogStore,
) -> None:
    """``PlainEntries`` that validation vouches unique are stored without a second check;
    any other are checked, and a line sent twice is stored once."""
    api, web = normalize_labels([("app", "api")]), normalize_labels([("app", "web")])
    unchecked = PlainEntries([T0, T0, T0 + 1], ["a", "a", "b"], "info")
    vouched = PlainEntries([T0, T0 + 1], ["w", "x"], "warn", unique=True)
    result = store.write(
        team_id=TEAM,
        streams=[PushedStream(api, unchecked), PushedStream(web, vouched)],
        resolve=no_deployment,
    )
    assert (result.stored, result.duplicates, result.bytes) == (4, 1, 4)
    stored = everything(store)
    assert sorted((e.line, e.severity) for e in stored) == [
        ("a", "info"),
        ("b", "info"),
        ("w", "warn"),
        ("x", "warn"),
    ]
    # Through validation, as a push is written: the accepted columns come vouched unique.
    pushed = PushedStream(web, PlainEntries([T0 + 2, T0 + 2, T0 + 3], ["y", "y", "z"]))
    accepted = validate_push([pushed], limits=Limits(), now_ns=T0).accepted
    result = store.write(team_id=TEAM, streams=accepted, resolve=no_deployment)
    assert (result.stored, result.duplicates) == (2, 0)
    assert sorted(lines(everything(store))) == ["a", "b", "w", "x", "y", "z"]


def test_columns_no_entry_has_a_value_in_are_left_to_their_defaults(
    store: ClickHouseLogStore,
) -> None:
    """An insert leaves out the metadata, level, trace and span columns no entry of it has
    a value in: every entry reads back as written, whichever columns its insert had."""
    traced = PushedEntry(T0 + 1, "traced", trace_id="0af7651916cd43dd8448eb211c80319c")
    spanned = PushedEntry(T0 + 2, "spanned \u00e9", severity="debug", span_id="b7ad6b7169203331")
    tagged = PushedEntry(T0 + 3, "tagged", metadata=(("k", "v \u00e9"),))
    batches = [
        [stream({"app": "plain"}, (T0, "no level"))],
        [stream({"app": "a"}, traced), stream({"app": "plain"}, (T0 + 1, "more"))],
        [stream({"app": "b"}, spanned)],
        [stream({"app": "c"}, tagged, (T0 + 4, "untagged"))],
    ]
    for streams in batches:
        store.write(team_id=TEAM, streams=streams, resolve=no_deployment)
    got = {
        e.line: (e.timestamp_ns, e.metadata, e.severity, e.trace_id, e.span_id)
        for e in everything(store)
    }
    expected = [traced, spanned, tagged, PushedEntry(T0, "no level"), PushedEntry(T0 + 1, "more")]
    expected.append(PushedEntry(T0 + 4, "untagged"))
    assert got == {
        e.line: (e.timestamp_ns, e.metadata, e.severity, e.trace_id, e.span_id) for e in expected
    }
