"""The PostgreSQL layout of the SQL log store: daily partitions, the default partition,
COPY (straight into the entries, or through staging for a batch partly stored), the pg_trgm
index, partition drops for retention."""

from __future__ import annotations

import time

import psycopg
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.logs.models import LogStream
from apps.logs.services import log_storage_maintain
from apps.logs.storage.base import LogSelect, minutes_answer
from apps.logs.storage.sql import DEFAULT_PARTITION, ENTRY_TABLE, partition_name
from apps.logs.wire.types import PushedEntry
from tests.factories.accounts import TeamFactory

from .pushes import (
    DAY,
    DAY0,
    MINUTE,
    SECOND,
    T0,
    bucket_counts,
    minute_fleet,
    no_deployment,
    stream,
    with_empty_filter,
)

pytestmark = pytest.mark.integration
POSTGRESQL_ONLY = True  # see conftest.py


@pytest.fixture
def store(sql_log_store):
    return sql_log_store


def rows_by_table() -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT tableoid::regclass::text, count(*) FROM {ENTRY_TABLE} GROUP BY 1"  # noqa: S608
        )
        return dict(cursor.fetchall())


def test_prepare__creates_today_and_days_ahead__each_once(store):
    store.prepare(now_ns=T0, days_ahead=2)
    store.prepare(now_ns=T0 + 3600 * SECOND, days_ahead=2)

    assert [(p.name, p.start_ns, p.end_ns) for p in store.partitions()] == [
        (partition_name(DAY0 + d * DAY), DAY0 + d * DAY, DAY0 + (d + 1) * DAY) for d in range(3)
    ]
    assert partition_name(DAY0) == "logs_entry_20260110"


def test_prepare__rows_already_in_default_partition__moved_into_the_new_day(store):
    team = TeamFactory().pk
    store.write(
        team_id=team,
        streams=[stream({"app": "api"}, (T0, "early"), (T0 + DAY, "next day"))],
        resolve=no_deployment,
    )
    assert rows_by_table() == {DEFAULT_PARTITION: 2}

    store.prepare(now_ns=T0, days_ahead=0)

    assert rows_by_table() == {DEFAULT_PARTITION: 1, partition_name(DAY0): 1}
    retry = store.write(
        team_id=team, streams=[stream({"app": "api"}, (T0, "early"))], resolve=no_deployment
    )
    assert (retry.stored, retry.duplicates) == (0, 1)


@pytest.fixture
def copies(monkeypatch) -> list[str]:
    """The COPY statements run, in order."""
    statements: list[str] = []
    copy = psycopg.Cursor.copy

    def recording_copy(self, statement, *args, **kwargs):
        statements.append(str(statement))
        return copy(self, statement, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "copy", recording_copy)
    return statements


COPY_ENTRIES = (
    "COPY logs_entry (team_id, stream_id, ts, line, metadata, severity, trace_id, span_id) "
    "FROM STDIN"
)
COPY_STAGING = (
    "COPY logs_entry_staging (stream_id, ts, line, metadata, severity, trace_id, span_id) "
    "FROM STDIN"
)


def test_write__new_batch__copied_straight_into_the_entries(store, copies):
    store.prepare(now_ns=T0)
    result = store.write(
        team_id=TeamFactory().pk,
        streams=[stream({"app": "api"}, *((T0 + i, f"line {i}") for i in range(50)))],
        resolve=no_deployment,
    )

    assert result.stored == 50
    assert copies == [COPY_ENTRIES]
    assert rows_by_table() == {partition_name(DAY0): 50}


def test_write__batch_partly_stored__new_rows_only_through_staging(store, copies):
    team = TeamFactory().pk
    store.prepare(now_ns=T0)
    lines = [(T0 + i * SECOND, f"line {i}") for i in range(5)]
    store.write(team_id=team, streams=[stream({"app": "api"}, *lines[:3])], resolve=no_deployment)

    result = store.write(
        team_id=team, streams=[stream({"app": "api"}, *lines)], resolve=no_deployment
    )

    assert (result.stored, result.duplicates) == (2, 3)
    assert result.bytes == len("line 3") + len("line 4")
    # The straight COPY is refused by the unique index and undone; staging stores the rest.
    assert copies == [COPY_ENTRIES, COPY_ENTRIES, COPY_STAGING]
    assert rows_by_table() == {partition_name(DAY0): 5}
    select = LogSelect(team_id=team, start_ns=T0 - MINUTE + 1, end_ns=T0 + MINUTE + 1)
    assert bucket_counts(store, select, MINUTE) == bucket_counts(
        store, with_empty_filter(select), MINUTE
    )


def test_write__lines_equal_once_nul_is_replaced__stored_once(store):
    result = store.write(
        team_id=TeamFactory().pk,
        streams=[stream({"app": "api"}, (T0, "a\0b"), (T0, "a\ufffdb"))],
        resolve=no_deployment,
    )

    assert (result.stored, result.duplicates) == (1, 1)


def test_write__text_with_copy_escapes__read_back_exactly(store):
    team = TeamFactory().pk
    lines = ["back\\slash", "tab\there", "new\nline", "carriage\rreturn", "\\N", "\\.", "é ü 日本"]
    odd = PushedEntry(
        T0 + 50, "odd", metadata=(("k\t", "v\\\n"),), severity="a\tb", trace_id="\\", span_id="\n"
    )
    store.write(
        team_id=team,
        streams=[stream({"app": "api"}, *((T0 + i, line) for i, line in enumerate(lines)), odd)],
        resolve=no_deployment,
    )

    page = store.select(
        LogSelect(team_id=team, start_ns=T0, end_ns=T0 + 100), limit=20, direction="forward"
    )
    assert [e.line for e in page.entries] == [*lines, "odd"]
    last = page.entries[-1]
    assert (last.metadata, last.severity, last.trace_id, last.span_id) == (
        odd.metadata,
        odd.severity,
        odd.trace_id,
        odd.span_id,
    )


def index_definitions(*tables: str) -> dict[str, list[str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename, indexdef FROM pg_indexes WHERE tablename = ANY(%s)", [list(tables)]
        )
        found: dict[str, list[str]] = {table: [] for table in tables}
        for table, definition in cursor.fetchall():
            found[table].append(definition)
    return found


def has_trigram(definitions: list[str]) -> bool:
    return any("USING gin (line gin_trgm_ops)" in d for d in definitions)


def test_indexes__unique_entry_everywhere__trigram_on_default_and_days_that_are_over(store):
    store.prepare(now_ns=T0, days_ahead=1)
    today, tomorrow = partition_name(DAY0), partition_name(DAY0 + DAY)
    with connection.cursor() as cursor:
        cursor.execute("SELECT extname FROM pg_extension WHERE extname = 'pg_trgm'")
        assert cursor.fetchall() == [("pg_trgm",)]

    before = index_definitions(ENTRY_TABLE, DEFAULT_PARTITION, today, tomorrow)
    store.prepare(now_ns=DAY0 + DAY + 5, days_ahead=0)  # the first day is over
    after = index_definitions(today, tomorrow)

    for definitions in before.values():
        assert any(
            "UNIQUE" in d and "(team_id, stream_id, ts, ((md5(line))::uuid))" in d
            for d in definitions
        ), definitions
    assert has_trigram(before[DEFAULT_PARTITION])
    assert not has_trigram(before[today])
    assert not has_trigram(before[tomorrow])
    assert has_trigram(after[today])
    assert not has_trigram(after[tomorrow])


def test_prepare__trigram_index_left_invalid__built_again(store):
    store.prepare(now_ns=DAY0, days_ahead=0)
    index = f"{partition_name(DAY0)}_line_trgm"
    store.prepare(now_ns=DAY0 + DAY + 1, days_ahead=0)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = %s::regclass", [index]
        )

    store.prepare(now_ns=DAY0 + DAY + 2, days_ahead=0)

    with connection.cursor() as cursor:
        cursor.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = %s::regclass", [index])
        assert cursor.fetchall() == [(True,)]


def test_substring_search__day_that_is_over__can_use_the_trigram_index(store):
    store.prepare(now_ns=T0, days_ahead=0)
    team = TeamFactory().pk
    store.write(
        team_id=team,
        streams=[stream({"app": "api"}, *((T0 + i, f"request {i} ok") for i in range(200)))],
        resolve=no_deployment,
    )
    store.prepare(now_ns=DAY0 + DAY, days_ahead=0)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(
            f"EXPLAIN SELECT 1 FROM {partition_name(DAY0)} WHERE line LIKE %s",  # noqa: S608
            ["%CUDA out%"],
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert f"{partition_name(DAY0)}_line_trgm" in plan, plan


def test_nul_character__stored_and_found_as_replacement_character(store):
    team = TeamFactory().pk
    result = store.write(
        team_id=team,
        streams=[stream({"app": "api"}, (T0, "bad\0byte"))],
        resolve=no_deployment,
    )
    page = store.select(
        LogSelect(team_id=team, start_ns=T0, end_ns=T0 + 1, line_contains=("d\0b",)), limit=5
    )

    assert result.stored == 1
    assert [e.line for e in page.entries] == ["bad\ufffdbyte"]


def test_delete_before__expired_day_shared_with_a_team_keeping_it__rows_deleted_not_dropped(store):
    short, long = TeamFactory().pk, TeamFactory().pk
    store.prepare(now_ns=DAY0, days_ahead=2)
    for team in (short, long):
        store.write(
            team_id=team,
            streams=[stream({"app": "api"}, (DAY0 + 5, "expired day"), (DAY0 + 2 * DAY, "kept"))],
            resolve=no_deployment,
        )

    assert store.delete_before(team_id=short, before_ns=DAY0 + DAY, batch=1) == 1

    assert partition_name(DAY0) in {p.name for p in store.partitions()}
    assert rows_by_table() == {partition_name(DAY0): 1, partition_name(DAY0 + 2 * DAY): 2}

    # Now only the other team's rows are left in that day: the whole partition goes.
    assert store.delete_before(team_id=long, before_ns=DAY0 + DAY) == 1
    assert [p.name for p in store.partitions()] == [
        partition_name(DAY0 + DAY),
        partition_name(DAY0 + 2 * DAY),
    ]
    assert rows_by_table() == {partition_name(DAY0 + 2 * DAY): 2}


def test_drop_partitions_before__drops_days_expired_for_every_team(store):
    teams = TeamFactory().pk, TeamFactory().pk
    store.prepare(now_ns=DAY0, days_ahead=2)
    for team in teams:
        store.write(
            team_id=team,
            streams=[stream({"app": "api"}, (DAY0 + 1, "a"), (DAY0 + DAY + 1, "b"))],
            resolve=no_deployment,
        )

    # The cutoff falls inside the second day: only the first is wholly expired.
    assert store.drop_partitions_before(before_ns=DAY0 + DAY + 2) == 2

    assert [p.start_ns for p in store.partitions()] == [DAY0 + DAY, DAY0 + 2 * DAY]
    assert rows_by_table() == {partition_name(DAY0 + DAY): 2}


def test_maintain__day_expired_for_every_team__dropped_whole_and_days_ahead_created(
    store, settings, monkeypatch
):
    settings.LOGS_RETENTION_DAYS = 7
    settings.LOGS_PARTITION_DAYS_AHEAD = 2
    store.prepare(now_ns=DAY0, days_ahead=1)
    teams = TeamFactory().pk, TeamFactory().pk
    for team in teams:
        store.write(
            team_id=team,
            streams=[stream({"app": "api"}, (DAY0 + 1, "old"), (DAY0 + DAY + 1, "older day 2"))],
            resolve=no_deployment,
        )
    batched: list[str] = []
    delete_batches = store._delete_batches

    def recording(table, *args):
        batched.append(table)
        return delete_batches(table, *args)

    monkeypatch.setattr(store, "_delete_batches", recording)

    removed = log_storage_maintain(now_ns=DAY0 + 8 * DAY, store=store)

    assert removed == 2  # the first day, two teams; the second day is kept a while more
    assert partition_name(DAY0) not in batched  # dropped, never deleted row by row
    assert [p.start_ns for p in store.partitions()] == [DAY0 + DAY] + [
        DAY0 + d * DAY for d in (8, 9, 10)
    ]
    assert rows_by_table() == {partition_name(DAY0 + DAY): 2}


@pytest.mark.django_db(transaction=True)
def test_prepare__outside_a_transaction__builds_the_trigram_index_concurrently(store):
    store.prepare(now_ns=DAY0, days_ahead=0)
    store.prepare(now_ns=DAY0 + DAY, days_ahead=0)

    assert has_trigram(index_definitions(partition_name(DAY0))[partition_name(DAY0)])


# --- per-minute counts ---------------------------------------------------------------------


@pytest.mark.parametrize("step_minutes", [1, 5, 7])
def test_count_buckets__minute_counts__equal_counting_the_lines(store, step_minutes):
    team = TeamFactory().pk
    store.write(team_id=team, streams=minute_fleet(), resolve=no_deployment)
    step = step_minutes * MINUTE
    start = T0 - 5 * MINUTE + 1  # (t - step, t] buckets, as the query layer asks
    select = LogSelect(team_id=team, start_ns=start, end_ns=start + 8 * step)
    assert minutes_answer(select, step)  # the per-minute path is taken
    from_minutes = bucket_counts(store, select, step)
    assert from_minutes == bucket_counts(store, with_empty_filter(select), step)
    assert sum(sum(c) for _, c, _ in from_minutes) > 50


def test_count_buckets__retried_batch__counted_once(store):
    team = TeamFactory().pk
    fleet = minute_fleet()
    store.write(team_id=team, streams=fleet, resolve=no_deployment)
    retry = store.write(team_id=team, streams=fleet, resolve=no_deployment)
    assert retry.stored == 0
    select = LogSelect(team_id=team, start_ns=T0 - MINUTE + 1, end_ns=T0 + 59 * MINUTE + 1)
    assert bucket_counts(store, select, MINUTE) == bucket_counts(
        store, with_empty_filter(select), MINUTE
    )


def test_count_buckets__after_retention_and_partition_drop__minute_counts_follow(store):
    team, other = TeamFactory().pk, TeamFactory().pk
    for who in (team, other):
        store.write(team_id=who, streams=minute_fleet(), resolve=no_deployment)
        store.write(
            team_id=who,
            streams=[stream({"app": "api"}, (T0 - DAY + 5 * SECOND, "yesterday"))],
            resolve=no_deployment,
        )
    store.prepare(now_ns=T0 - DAY, days_ahead=1)  # yesterday's and today's partitions
    # A cutoff inside a minute: that minute is counted again from what is left.
    store.delete_before(team_id=team, before_ns=T0 + 12 * MINUTE + 30 * SECOND + 7)
    store.drop_partitions_before(before_ns=DAY0)
    for who in (team, other):
        select = LogSelect(team_id=who, start_ns=T0 - DAY - MINUTE + 1, end_ns=T0 + 59 * MINUTE + 1)
        assert bucket_counts(store, select, MINUTE) == bucket_counts(
            store, with_empty_filter(select), MINUTE
        )


# ------------------------------------------------------- writes outside any transaction
# The usual push runs outside a caller's transaction: one transaction, no savepoint, and
# the streams this process has committed remembered (apps.logs.storage.sql.known_streams).


def stream_rows(team: int) -> list[tuple[str, int, int]]:
    return list(
        LogStream.objects.filter(team_id=team)
        .order_by("fingerprint")
        .values_list("fingerprint", "first_seen_ns", "last_seen_ns")
    )


@pytest.mark.django_db(transaction=True)
def test_write__outside_transaction_retried_batch_with_new_stream__new_rows_stored_once(store):
    team = TeamFactory().pk
    first = [stream({"app": "api"}, (T0, "a"), (T0 + 1, "b"))]
    store.write(team_id=team, streams=first, resolve=no_deployment)

    retry = store.write(
        team_id=team,
        streams=[*first, stream({"app": "new"}, (T0 + 2, "c"))],
        resolve=no_deployment,
    )

    assert (retry.stored, retry.duplicates, retry.bytes) == (1, 2, 1)
    select = LogSelect(team_id=team, start_ns=T0 - MINUTE, end_ns=T0 + MINUTE)
    assert sorted(e.line for e in store.select(select, limit=10, direction="forward").entries) == [
        "a",
        "b",
        "c",
    ]
    assert [labels for _, labels in LogStream.objects.values_list("id", "labels")].count(
        {"app": "new"}
    ) == 1
    assert bucket_counts(store, select, MINUTE) == bucket_counts(
        store, with_empty_filter(select), MINUTE
    )


@pytest.mark.django_db(transaction=True)
def test_write__known_recent_stream_within_bounds__no_stream_query(store):
    team = TeamFactory().pk
    now = time.time_ns()
    store.write(team_id=team, streams=[stream({"app": "api"}, (now, "a"))], resolve=no_deployment)

    with CaptureQueriesContext(connection) as queries:
        result = store.write(
            team_id=team, streams=[stream({"app": "api"}, (now + 1, "b"))], resolve=no_deployment
        )

    assert result.stored == 1
    assert not [q for q in queries.captured_queries if LogStream._meta.db_table in q["sql"]]
    select = LogSelect(team_id=team, start_ns=now - MINUTE, end_ns=now + MINUTE)
    page = store.select(select, limit=10, direction="forward")
    assert [(e.line, e.labels) for e in page.entries] == [
        ("a", (("app", "api"),)),
        ("b", (("app", "api"),)),
    ]


@pytest.mark.django_db(transaction=True)
def test_write__known_stream_batch_past_its_bounds__bounds_widened(store):
    team = TeamFactory().pk
    now = time.time_ns() // MINUTE * MINUTE - 10 * MINUTE
    store.write(
        team_id=team, streams=[stream({"app": "api"}, (now + 1, "a"))], resolve=no_deployment
    )
    ((_, first, last),) = stream_rows(team)
    assert (first, last) == (now, now + MINUTE)

    store.write(
        team_id=team,
        streams=[stream({"app": "api"}, (now + 3 * MINUTE + 1, "b"))],
        resolve=no_deployment,
    )
    store.write(
        team_id=team, streams=[stream({"app": "api"}, (now - MINUTE, "c"))], resolve=no_deployment
    )

    assert [bounds for _, *bounds in stream_rows(team)] == [[now - MINUTE, now + 4 * MINUTE]]
    select = LogSelect(team_id=team, start_ns=now - 2 * MINUTE, end_ns=now + 5 * MINUTE)
    assert len(store.select(select, limit=10, direction="forward").entries) == 3


@pytest.mark.parametrize(
    "line",
    ["back\\slash", "\\N", "tab\there", "new\nline", "cr\rhere", "nul\0byte", "né \\t ü"],
)
def test_write__line_with_copy_special_characters__read_back_as_sent(store, line):
    team = TeamFactory().pk
    pushed = [stream({"app": "api"}, (T0 + 1, line), (T0 + 2, "plain"))]

    result = store.write(team_id=team, streams=pushed, resolve=no_deployment)

    select = LogSelect(team_id=team, start_ns=T0, end_ns=T0 + MINUTE)
    lines = [e.line for e in store.select(select, limit=10, direction="forward").entries]
    assert lines == [line.replace("\0", "\ufffd"), "plain"]
    assert result.bytes == len(lines[0].encode()) + len(b"plain")
