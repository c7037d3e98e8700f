"""The log store on the project's own database: PostgreSQL in production, SQLite for
``make run``. One class for both; the SQL that differs lives in the small ``_vendor_*``
helpers and in the PostgreSQL-only partition code.

Layout (created by migration ``logs.0002_entries``): streams are the ``LogStream`` model (one
row per team and label set); entries are rows of ``logs_entry`` (team, stream id, time in
nanoseconds, line, structured metadata as JSON text, severity, trace and span ids).

- **PostgreSQL**: ``logs_entry`` is partitioned by range of ``ts``, one partition per UTC
  day (``logs_entry_YYYYMMDD``), created ahead by :meth:`SqlLogStore.prepare`; a row of a
  day with no partition goes to ``logs_entry_default``, and :meth:`prepare` moves such rows
  into the day's partition when it creates it. Writes ``COPY`` the batch straight into
  ``logs_entry`` (and add its per-minute counts): in one transaction with the streams' rows
  when called outside any transaction (a push), else in a savepoint. When the unique index
  on (team, stream, ts, md5(line)) refuses it (a retried batch), that transaction or
  savepoint is rolled back and the batch is ``COPY``'d into a temporary staging table, then
  ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``, so a retried batch stores nothing twice
  and the duplicates are counted. Stream ids and bounds this process has committed are
  remembered (:data:`known_streams`), so a push into known streams reads no stream row.
  Substring filters are ``LIKE``, served by a ``pg_trgm`` GIN index on each partition whose
  day is over (:meth:`SqlLogStore.prepare` builds it then, in one pass, since maintaining it
  row by row would divide the ingest rate by about six) and on the default partition; the
  current day is narrowed by stream and time first. Lines and fingerprints compare with the
  "C" collation, so pages are cut in the same byte order as Python's ``str`` comparison.
  PostgreSQL text cannot hold the NUL character: it is stored (and searched for) as U+FFFD.
- **SQLite**: a plain table with a unique index on (team, stream, ts, line); ``INSERT OR
  IGNORE`` skips duplicates and ``instr()`` searches (SQLite's ``LIKE`` ignores case).

Retention (:meth:`SqlLogStore.delete_before`, per team): a daily partition wholly older than
the cutoff that holds no other team's rows is dropped; every other expired row goes in
``DELETE`` statements of at most ``batch`` rows, each its own transaction.
:meth:`SqlLogStore.drop_partitions_before` drops the partitions that every team's retention
has expired, which the retention service calls first with the oldest cutoff of all teams.
"""

# The SQL below is built from constants, integers and the names of partitions (quoted);
# every value a caller gives is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import json
import re
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Q, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Greatest, Least

from apps.logs.logql.ast import Matcher
from apps.logs.logql.matching import matcher_function
from apps.logs.models import LogStream
from apps.logs.wire.types import (
    MAX_TIMESTAMP_NS,
    Pairs,
    PlainEntries,
    PushedEntry,
    PushedStream,
    entry_times,
    utf8_size,
)

from .base import (
    DAY_NS,
    MINUTE_NS,
    DeploymentResolver,
    Direction,
    LogSelect,
    Page,
    SeriesCount,
    StoredEntry,
    WriteResult,
    fold_minute_edges,
    minutes_answer,
)

# Stream time bounds are rounded outward to this, so a busy stream's row changes rarely.
BOUND_ROUNDING_NS = 60 * 10**9
MIN_TIMESTAMP_NS = -(2**63)

ENTRY_TABLE = "logs_entry"
DEFAULT_PARTITION = "logs_entry_default"
STAGING_TABLE = "logs_entry_staging"
# Per-minute counts (PostgreSQL; migration 0003): what count_buckets reads when it can.
MINUTE_TABLE = "logs_entry_minute"
# The minute of ``ts`` (floor division, negative times included).
_MINUTE_OF = f"(ts - mod(mod(ts, {MINUTE_NS}) + {MINUTE_NS}, {MINUTE_NS})) / {MINUTE_NS}"
_COLUMNS = "stream_id, ts, line, metadata, severity, trace_id, span_id"
_PARTITION_BOUND = re.compile(r"FROM \('?(-?\d+)'?\) TO \('?(-?\d+)'?\)")


@dataclass(frozen=True, slots=True)
class _Stream:
    id: int
    fingerprint: str
    labels: Pairs
    deployment_id: int | None


@dataclass(frozen=True, slots=True)
class Partition:
    """One daily partition of ``logs_entry``: rows with ``start_ns <= ts < end_ns``."""

    name: str
    start_ns: int
    end_ns: int


def _clamp(ns: int) -> int:
    """A time as a signed 64-bit value (what the columns hold and the drivers can bind)."""
    return max(MIN_TIMESTAMP_NS, min(ns, MAX_TIMESTAMP_NS))


def _floor_bound(ns: int) -> int:
    return _clamp(ns // BOUND_ROUNDING_NS * BOUND_ROUNDING_NS)


def _ceil_bound(ns: int) -> int:
    return _clamp(-(-ns // BOUND_ROUNDING_NS) * BOUND_ROUNDING_NS)


def _pairs(labels: Mapping[str, str]) -> Pairs:
    return tuple(sorted(labels.items()))


def _metadata_text(metadata: Pairs) -> str:
    return json.dumps(metadata, ensure_ascii=False, separators=(",", ":")) if metadata else ""


def _metadata_pairs(text: str) -> Pairs:
    return tuple((name, value) for name, value in json.loads(text)) if text else ()


# COPY's text format: these characters are written as escapes (NUL never reaches it).
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_plain(text: str) -> bool:
    """Whether ``text`` goes into COPY's text format as it is: no character to escape and no
    NUL (a few scans in C, much cheaper than a check of every character's class)."""
    return not ("\\" in text or "\t" in text or "\n" in text or "\r" in text or "\0" in text)


def _copy_field(text: str) -> str:
    # Most text has nothing to escape: a few scans in C instead of a translation.
    return text if _copy_plain(text) else text.translate(_COPY_ESCAPES)


def _copy_text(team_id: int, rows: Iterable[tuple[Any, ...]]) -> str:
    """``rows`` of ``(stream_id, ts, line, metadata, severity, trace_id, span_id)`` as the
    rows of ``logs_entry`` in COPY's text format (one string for the whole batch: a row at
    a time through the driver costs several times more)."""
    out = []
    for stream_id, ts, line, metadata, severity, trace_id, span_id in rows:
        short = severity + trace_id + span_id  # a level and hex ids, or empty
        if _copy_plain(short):
            short = f"{severity}\t{trace_id}\t{span_id}"
        else:
            short = "\t".join(_copy_field(v) for v in (severity, trace_id, span_id))
        out.append(
            f"{team_id}\t{stream_id}\t{ts}\t{_copy_field(line)}\t"
            f"{_copy_field(metadata) if metadata else ''}\t{short}\n"
        )
    return "".join(out)


_TIMES = itemgetter(0)
_LINES = itemgetter(1)
_METADATA = itemgetter(2)
_SHORT_FIELDS = itemgetter(3, 4, 5)  # severity, trace id, span id


def _plain_copy_text(
    team_id: int, stream_id: int, entries: Sequence[PushedEntry]
) -> tuple[str, int, int] | None:
    """The usual stream's entries as COPY text, built a column at a time: no metadata, the
    same level and ids on every entry, nothing to escape or replace in the lines, and all
    in one minute, none at its first nanosecond (which the minute counts keep apart).
    Returns (text, UTF-8 size of the lines, minute), or None for any other stream."""
    if not entries:
        return None
    if isinstance(entries, PlainEntries):
        severity, trace_id, span_id = entries.severity, "", ""
        times, lines = entries.times, entries.lines
    else:
        if any(map(_METADATA, entries)):
            return None
        shorts = set(map(_SHORT_FIELDS, entries))
        if len(shorts) != 1:
            return None
        severity, trace_id, span_id = shorts.pop()
        times = list(map(_TIMES, entries))
        lines = list(map(_LINES, entries))
    short = severity + trace_id + span_id
    joined = "".join(lines)
    # A line holding a character to escape, or NUL (to replace), takes the long way.
    if not (_copy_plain(joined) and _copy_plain(short)):
        return None
    low, high = min(times), max(times)
    minute = low // MINUTE_NS
    if high // MINUTE_NS != minute or low % MINUTE_NS == 0:
        return None
    head = f"{team_id}\t{stream_id}\t"
    end = f"\t\t{severity}\t{trace_id}\t{span_id}\n"
    text = head + (end + head).join(map("{}\t{}".format, times, lines)) + end
    return text, utf8_size(joined), minute


def _bigint_array(values: Iterable[int]) -> str:
    """Integers as the text of a PostgreSQL array (``{1,2,3}``), bound as one string: the
    driver then adapts a string, not each number of a list."""
    return "{" + ",".join(map(str, values)) + "}"


def _like_pattern(needle: str) -> str:
    """``%needle%`` with LIKE's wildcards and its escape character taken literally."""
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _unique_violation() -> type[Exception]:
    import psycopg

    return psycopg.errors.UniqueViolation


class _KnownStreams:
    """Stream ids and time bounds this process has seen committed, by (database alias, team,
    fingerprint), the most recently used kept (a bounded LRU): a push into known streams
    within their bounds then costs no query for them. Bounds only ever widen, so the ones
    kept are within the row's; a stream row is only deleted by retention once its
    ``last_seen_ns`` is older than the team's cutoff (a day ago at the least), which a
    stream used for entries of the last ``STREAM_CACHE_RECENT_NS`` cannot be."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, int, str], tuple[int, int, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int, str]) -> tuple[int, int, int] | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, items: Mapping[tuple[str, int, str], tuple[int, int, int]]) -> None:
        with self._lock:
            for key, value in items.items():
                self._items[key] = value
                self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


STREAM_CACHE_SIZE = 20_000
# Only batches whose newest entry is this recent use the cache (see _KnownStreams).
STREAM_CACHE_RECENT_NS = 12 * 3600 * 10**9
known_streams = _KnownStreams(STREAM_CACHE_SIZE)


def partition_name(day_start_ns: int) -> str:
    day = datetime.fromtimestamp(day_start_ns // 10**9, tz=UTC)
    return f"{ENTRY_TABLE}_{day:%Y%m%d}"


class SqlLogStore:
    """:class:`apps.logs.storage.base.LogStore` on Django's database (see the module)."""

    def __init__(self, *, using: str = DEFAULT_DB_ALIAS) -> None:
        self.using = using
        self.vendor = connections[using].vendor
        if self.vendor not in ("postgresql", "sqlite"):
            raise ImproperlyConfigured(
                f"LOGS_BACKEND=sql supports PostgreSQL and SQLite, not {self.vendor}."
            )

    @classmethod
    def from_settings(cls) -> SqlLogStore:
        return cls()

    @property
    def _postgres(self) -> bool:
        return self.vendor == "postgresql"

    def _cursor(self) -> Any:
        return connections[self.using].cursor()

    def _quote(self, name: str) -> str:
        return str(connections[self.using].ops.quote_name(name))

    def _text(self, text: str) -> str:
        return text.replace("\0", "\ufffd") if self._postgres and "\0" in text else text

    # ------------------------------------------------------------------ vendor SQL

    def _vendor_contains(self, *, negated: bool) -> str:
        """A condition on ``e.line`` with one parameter (see :meth:`_vendor_needle`)."""
        if self._postgres:
            return "e.line NOT LIKE %s" if negated else "e.line LIKE %s"
        return "instr(e.line, %s) = 0" if negated else "instr(e.line, %s) > 0"

    def _vendor_needle(self, needle: str) -> str:
        return _like_pattern(self._text(needle)) if self._postgres else needle

    def _vendor_octets(self) -> str:
        return "octet_length(e.line)" if self._postgres else "length(CAST(e.line AS BLOB))"

    def _vendor_fingerprint(self) -> str:
        # Byte order, as Python compares the cursor's strings (the line column is "C" too).
        return 's.fingerprint COLLATE "C"' if self._postgres else "s.fingerprint"

    # ------------------------------------------------------------------ write

    def write(
        self, *, team_id: int, streams: Sequence[PushedStream], resolve: DeploymentResolver
    ) -> WriteResult:
        by_fingerprint: dict[str, list[PushedStream]] = {}
        for stream in streams:
            if stream.entries:
                by_fingerprint.setdefault(stream.fingerprint, []).append(stream)
        if not by_fingerprint:
            return WriteResult(stored=0, duplicates=0, streams=0)
        nested = connections[self.using].in_atomic_block
        if self._postgres and not nested:
            # The usual batch, new to the store: the streams, its COPY and its minute counts
            # in one transaction, without a savepoint. When the unique index refuses it (a
            # retried batch), all of it is rolled back and done again, storing the new rows
            # only (the streams are made with ignore_conflicts: doing it twice is harmless).
            learned: dict[tuple[str, int, str], tuple[int, int, int]] = {}
            try:
                with transaction.atomic(using=self.using):
                    ids = self._stream_ids(team_id, by_fingerprint, resolve, learned)
                    copied = self._copy_new_postgresql(
                        team_id, ids, by_fingerprint, savepoint=False
                    )
            except _unique_violation():
                copied = None
            if copied is None:
                learned.clear()
                with transaction.atomic(using=self.using):
                    ids = self._stream_ids(team_id, by_fingerprint, resolve, learned)
                    rows = self._rows(ids, by_fingerprint)
                    copied = self._insert_staged_postgresql(team_id, rows, truncate_first=False)
            known_streams.put(learned)  # committed
            stored, size = copied
        else:
            with transaction.atomic(using=self.using):
                ids = self._stream_ids(team_id, by_fingerprint, resolve, None)
                if self._postgres:
                    copied = self._copy_new_postgresql(team_id, ids, by_fingerprint)
                    if copied is None:
                        rows = self._rows(ids, by_fingerprint)
                        copied = self._insert_staged_postgresql(
                            team_id, rows, truncate_first=nested
                        )
                    stored, size = copied
                else:
                    stored, size = self._insert_sqlite(team_id, self._rows(ids, by_fingerprint))
        sent = sum(len(s.entries) for group in by_fingerprint.values() for s in group)
        return WriteResult(
            stored=stored, duplicates=sent - stored, streams=len(by_fingerprint), bytes=size
        )

    def _rows(
        self, ids: Mapping[str, int], by_fingerprint: Mapping[str, list[PushedStream]]
    ) -> list[tuple[Any, ...]]:
        text = self._text
        return [
            (
                ids[fingerprint],
                entry.timestamp_ns,
                text(entry.line),
                text(_metadata_text(entry.metadata)) if entry.metadata else "",
                entry.severity,
                entry.trace_id,
                entry.span_id,
            )
            for fingerprint, group in by_fingerprint.items()
            for stream in group
            for entry in stream.entries
        ]

    def _stream_ids(
        self,
        team_id: int,
        by_fingerprint: Mapping[str, list[PushedStream]],
        resolve: DeploymentResolver,
        learned: dict[tuple[str, int, str], tuple[int, int, int]] | None,
    ) -> dict[str, int]:
        """Stream ids by fingerprint, creating the new streams and widening the bounds of
        the known ones (in fingerprint order, so concurrent writers lock rows alike). With
        ``learned`` (outside any caller's transaction), streams this process knows and
        whose bounds hold the batch's times are taken from :data:`known_streams` without a
        query, and the others' ids and bounds are added to ``learned`` for the caller to
        keep once committed."""
        span = {
            fingerprint: (
                min(min(entry_times(s.entries)) for s in group),
                max(max(entry_times(s.entries)) for s in group),
            )
            for fingerprint, group in by_fingerprint.items()
        }
        cached: dict[str, int] = {}
        if learned is not None:
            recent = time.time_ns() - STREAM_CACHE_RECENT_NS
            for fingerprint, (low, high) in span.items():
                hit = known_streams.get((self.using, team_id, fingerprint))
                if hit is not None and hit[1] <= low and high <= hit[2] and high >= recent:
                    cached[fingerprint] = hit[0]
            if len(cached) == len(span):
                return cached
            span = {f: bounds for f, bounds in span.items() if f not in cached}
        streams = LogStream.objects.using(self.using)
        known = {
            row[0]: row[1:]
            for row in streams.filter(team_id=team_id, fingerprint__in=span).values_list(
                "fingerprint", "id", "first_seen_ns", "last_seen_ns"
            )
        }
        new = sorted(set(span) - set(known))
        if new:
            streams.bulk_create(
                [
                    LogStream(
                        team_id=team_id,
                        fingerprint=fingerprint,
                        labels=dict(by_fingerprint[fingerprint][0].labels),
                        deployment_id=resolve(dict(by_fingerprint[fingerprint][0].labels)),
                        first_seen_ns=_floor_bound(span[fingerprint][0]),
                        last_seen_ns=_ceil_bound(span[fingerprint][1]),
                    )
                    for fingerprint in new
                ],
                ignore_conflicts=True,  # another writer created it meanwhile: widen below
            )
            known.update(
                (row[0], row[1:])
                for row in streams.filter(team_id=team_id, fingerprint__in=new).values_list(
                    "fingerprint", "id", "first_seen_ns", "last_seen_ns"
                )
            )
        for fingerprint in sorted(span):
            stream_id, first, last = known[fingerprint]
            low, high = span[fingerprint]
            if low < first or high > last:
                streams.filter(id=stream_id).update(
                    first_seen_ns=Least("first_seen_ns", _floor_bound(low)),
                    last_seen_ns=Greatest("last_seen_ns", _ceil_bound(high)),
                )
                first, last = min(first, _floor_bound(low)), max(last, _ceil_bound(high))
            if learned is not None:
                learned[self.using, team_id, fingerprint] = (stream_id, first, last)
        return {**cached, **{fingerprint: known[fingerprint][0] for fingerprint in span}}

    def _copy_new_postgresql(
        self,
        team_id: int,
        ids: Mapping[str, int],
        by_fingerprint: Mapping[str, list[PushedStream]],
        *,
        savepoint: bool = True,
    ) -> tuple[int, int] | None:
        """The usual batch, new to the store: ``COPY`` straight into ``logs_entry`` and its
        minute counts added, in a savepoint. When the unique index refuses a row (a retried
        batch, or one sent twice at once), the savepoint is rolled back and None returned:
        the caller then stores the new rows only. Without ``savepoint``, the caller's
        transaction holds it, and the refusal is raised for the caller to roll back."""
        counts: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        parts: list[str] = []
        lines = size = 0
        for fingerprint, group in by_fingerprint.items():
            stream_id = ids[fingerprint]
            for stream in group:
                lines += len(stream.entries)
                plain = _plain_copy_text(team_id, stream_id, stream.entries)
                if plain is not None:
                    text, octets, minute = plain
                    parts.append(text)
                    count = counts[stream_id, minute]
                    count[0] += len(stream.entries)
                    count[1] += octets
                    size += octets
                    continue
                rows = self._rows({fingerprint: stream_id}, {fingerprint: [stream]})
                parts.append(_copy_text(team_id, rows))
                for _, ts, line, *_ in rows:
                    octets = utf8_size(line)
                    size += octets
                    count = counts[stream_id, ts // MINUTE_NS]
                    count[0] += 1
                    count[1] += octets
                    if ts % MINUTE_NS == 0:
                        count[2] += 1
                        count[3] += octets
        keys = sorted(counts)
        try:
            with (
                transaction.atomic(using=self.using, savepoint=savepoint),
                self._cursor() as cursor,
            ):
                with cursor.cursor.copy(
                    f"COPY {ENTRY_TABLE} (team_id, {_COLUMNS}) FROM STDIN"
                ) as copy:
                    copy.write("".join(parts).encode())
                # In key order, so that concurrent writers lock the rows alike.
                cursor.execute(
                    f"INSERT INTO {MINUTE_TABLE} AS m SELECT %s, * FROM unnest("
                    "%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], "
                    "%s::bigint[]) ON CONFLICT (team_id, stream_id, minute) DO UPDATE SET "
                    "lines = m.lines + EXCLUDED.lines, bytes = m.bytes + EXCLUDED.bytes, "
                    "edge_lines = m.edge_lines + EXCLUDED.edge_lines, "
                    "edge_bytes = m.edge_bytes + EXCLUDED.edge_bytes",
                    [
                        team_id,
                        _bigint_array(stream_id for stream_id, _ in keys),
                        _bigint_array(minute for _, minute in keys),
                        *(_bigint_array(counts[key][i] for key in keys) for i in range(4)),
                    ],
                )
        except _unique_violation():
            if not savepoint:
                raise
            return None
        return lines, size

    def _insert_staged_postgresql(
        self, team_id: int, rows: list[tuple[Any, ...]], *, truncate_first: bool
    ) -> tuple[int, int]:
        with self._cursor() as cursor:
            # Created once per connection; emptied at each commit, and here when the
            # caller's transaction spans several writes.
            cursor.execute(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGING_TABLE} ("
                'stream_id bigint, ts bigint, line text COLLATE "C", metadata text, '
                "severity text, trace_id text, span_id text) ON COMMIT DELETE ROWS"
            )
            if truncate_first:
                cursor.execute(f"TRUNCATE {STAGING_TABLE}")
            with cursor.cursor.copy(f"COPY {STAGING_TABLE} ({_COLUMNS}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            # The lines that are new (a retried batch's are not) are counted per minute by
            # the same statement, so the counts always match the stored lines.
            cursor.execute(
                f"WITH stored AS (INSERT INTO {ENTRY_TABLE} (team_id, {_COLUMNS}) "
                f"SELECT %s, {_COLUMNS} FROM {STAGING_TABLE} ON CONFLICT DO NOTHING "
                "RETURNING stream_id, ts, octet_length(line) AS size), "
                f"counted AS (INSERT INTO {MINUTE_TABLE} AS m SELECT %s, stream_id, "
                f"{_MINUTE_OF}, count(*), sum(size), "
                f"count(*) FILTER (WHERE mod(ts, {MINUTE_NS}) = 0), "
                f"coalesce(sum(size) FILTER (WHERE mod(ts, {MINUTE_NS}) = 0), 0) "
                "FROM stored GROUP BY 2, 3 ORDER BY 2, 3 "
                "ON CONFLICT (team_id, stream_id, minute) DO UPDATE SET "
                "lines = m.lines + EXCLUDED.lines, bytes = m.bytes + EXCLUDED.bytes, "
                "edge_lines = m.edge_lines + EXCLUDED.edge_lines, "
                "edge_bytes = m.edge_bytes + EXCLUDED.edge_bytes) "
                "SELECT count(*), coalesce(sum(size), 0) FROM stored",
                [team_id, team_id],
            )
            stored, size = cursor.fetchone()
        return int(stored), int(size)

    def _insert_sqlite(self, team_id: int, rows: list[tuple[Any, ...]]) -> tuple[int, int]:
        stored = size = 0
        with self._cursor() as cursor:
            for row in rows:
                cursor.execute(
                    f"INSERT OR IGNORE INTO {ENTRY_TABLE} (team_id, {_COLUMNS}) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    [team_id, *row],
                )
                if cursor.rowcount == 1:
                    stored += 1
                    size += len(row[2].encode())
        return stored, size

    # ------------------------------------------------------------------ streams

    def _matching_streams(
        self,
        *,
        team_id: int,
        start_ns: int,
        end_ns: int,
        matchers: Iterable[Matcher] = (),
        deployment_id: int | None = None,
    ) -> dict[int, _Stream]:
        """The team's streams whose bounds overlap the range and whose labels match: ``=``
        and ``!=`` narrowed in SQL, then every matcher applied exactly (RE2) in Python."""
        matchers = tuple(matchers)
        streams = LogStream.objects.using(self.using).filter(
            team_id=team_id,
            first_seen_ns__lt=_clamp(end_ns),
            last_seen_ns__gte=_clamp(start_ns),
        )
        if deployment_id is not None:
            streams = streams.filter(deployment_id=deployment_id)
        for index, matcher in enumerate(matchers):
            if matcher.op not in ("=", "!="):
                continue
            present = Q(labels__has_key=matcher.name)
            if matcher.value == "":
                # A label is never stored empty: "" means absent.
                streams = streams.exclude(present) if matcher.op == "=" else streams.filter(present)
                continue
            alias = f"label_{index}"
            # Cast: a key transform would compare its right-hand side as JSON.
            text = Cast(KeyTextTransform(matcher.name, "labels"), TextField())
            streams = streams.alias(**{alias: text})
            equal = present & Q(**{alias: matcher.value})
            streams = streams.filter(equal) if matcher.op == "=" else streams.exclude(equal)
        checks = [(m.name, matcher_function(m)) for m in matchers]
        found: dict[int, _Stream] = {}
        for stream_id, fingerprint, labels, deployment in streams.values_list(
            "id", "fingerprint", "labels", "deployment_id"
        ):
            if all(check(labels.get(name, "")) for name, check in checks):
                found[stream_id] = _Stream(stream_id, fingerprint, _pairs(labels), deployment)
        return found

    def _streams_with_entries(
        self, *, team_id: int, start_ns: int, end_ns: int, matchers: Iterable[Matcher] = ()
    ) -> list[_Stream]:
        candidates = self._matching_streams(
            team_id=team_id, start_ns=start_ns, end_ns=end_ns, matchers=matchers
        )
        if not candidates:
            return []
        ids = ",".join(str(stream_id) for stream_id in candidates)
        with self._cursor() as cursor:
            cursor.execute(
                f"SELECT s.id FROM {LogStream._meta.db_table} s WHERE s.id IN ({ids}) "
                f"AND EXISTS (SELECT 1 FROM {ENTRY_TABLE} e WHERE e.team_id = %s "
                "AND e.stream_id = s.id AND e.ts >= %s AND e.ts < %s)",
                [team_id, _clamp(start_ns), _clamp(end_ns)],
            )
            return [candidates[row[0]] for row in cursor.fetchall()]

    # ------------------------------------------------------------------ reads

    def _entry_filter(
        self, query: LogSelect, stream_ids: Iterable[int]
    ) -> tuple[list[str], list[Any]]:
        clauses = [
            "e.team_id = %s",
            "e.ts >= %s",
            "e.ts < %s",
            f"e.stream_id IN ({','.join(str(i) for i in stream_ids)})",
        ]
        params: list[Any] = [query.team_id, _clamp(query.start_ns), _clamp(query.end_ns)]
        for needles, negated in ((query.line_contains, False), (query.line_excludes, True)):
            for needle in needles:
                clauses.append(self._vendor_contains(negated=negated))
                params.append(self._vendor_needle(needle))
        return clauses, params

    def _select_streams(self, query: LogSelect) -> dict[int, _Stream]:
        return self._matching_streams(
            team_id=query.team_id,
            start_ns=query.start_ns,
            end_ns=query.end_ns,
            matchers=query.matchers,
            deployment_id=query.deployment_id,
        )

    def select(
        self,
        query: LogSelect,
        *,
        limit: int,
        direction: Direction = "backward",
        after: tuple[int, str, str] | None = None,
    ) -> Page:
        streams = self._select_streams(query)
        if not streams or limit <= 0 or query.start_ns >= query.end_ns:
            return Page(entries=[], after=None)
        clauses, params = self._entry_filter(query, streams)
        order = "DESC" if direction == "backward" else "ASC"
        fingerprint = self._vendor_fingerprint()
        if after is not None:
            clauses.append(
                f"(e.ts, {fingerprint}, e.line) {'<' if order == 'DESC' else '>'} (%s, %s, %s)"
            )
            params += [_clamp(after[0]), after[1], self._text(after[2])]
        with self._cursor() as cursor:
            cursor.execute(
                "SELECT e.stream_id, e.ts, e.line, e.metadata, e.severity, e.trace_id, "
                f"e.span_id FROM {ENTRY_TABLE} e "
                f"JOIN {LogStream._meta.db_table} s ON s.id = e.stream_id "
                f"WHERE {' AND '.join(clauses)} "
                f"ORDER BY e.ts {order}, {fingerprint} {order}, e.line {order} LIMIT %s",
                [*params, limit + 1],
            )
            rows = cursor.fetchall()
        entries = [
            StoredEntry(
                stream_id=streams[stream_id].fingerprint,
                labels=streams[stream_id].labels,
                deployment_id=streams[stream_id].deployment_id,
                timestamp_ns=ts,
                line=line,
                metadata=_metadata_pairs(metadata),
                severity=severity,
                trace_id=trace_id,
                span_id=span_id,
            )
            for stream_id, ts, line, metadata, severity, trace_id, span_id in rows[:limit]
        ]
        more = len(rows) > limit
        return Page(entries=entries, after=entries[-1].cursor if more else None)

    def count_buckets(self, query: LogSelect, *, step_ns: int) -> list[SeriesCount]:
        if step_ns <= 0:
            raise ValueError("step_ns must be positive")
        streams = self._select_streams(query)
        if not streams or query.start_ns >= query.end_ns:
            return []
        buckets = -(-(query.end_ns - query.start_ns) // step_ns)
        if self._postgres and minutes_answer(query, step_ns):
            rows = self._count_minutes(query, streams, step_ns, buckets)
            return self._series_counts(rows, streams, buckets)
        clauses, params = self._entry_filter(query, streams)
        with transaction.atomic(using=self.using), self._cursor() as cursor:
            if self._postgres:
                # The planner cannot tell that (stream, bucket) groups are few, and with the
                # default work_mem sorts every row on disk (over twice as slow as hashing
                # them); JIT compiles for longer than such a query runs.
                cursor.execute("SET LOCAL work_mem = '64MB'")
                cursor.execute("SET LOCAL jit = off")
            cursor.execute(
                f"SELECT e.stream_id, (e.ts - %s) / %s, count(*), sum({self._vendor_octets()}) "
                f"FROM {ENTRY_TABLE} e WHERE {' AND '.join(clauses)} GROUP BY 1, 2",
                [query.start_ns, step_ns, *params],
            )
            rows = cursor.fetchall()
        return self._series_counts(rows, streams, buckets)

    def _series_counts(
        self, rows: Iterable[tuple[Any, ...]], streams: Mapping[int, _Stream], buckets: int
    ) -> list[SeriesCount]:
        series: dict[int, SeriesCount] = {}
        for stream_id, bucket, count, size in rows:
            stream = streams[stream_id]
            if stream_id not in series:
                series[stream_id] = SeriesCount(
                    stream_id=stream.fingerprint,
                    labels=stream.labels,
                    counts=[0] * buckets,
                    bytes=[0] * buckets,
                )
            series[stream_id].counts[bucket] = int(count)
            series[stream_id].bytes[bucket] = int(size)
        return sorted(series.values(), key=lambda s: s.stream_id)

    def _count_minutes(
        self, query: LogSelect, streams: Mapping[int, _Stream], step_ns: int, buckets: int
    ) -> list[tuple[int, int, int, int]]:
        """Rows ``(stream, bucket, lines, bytes)`` from the minute counts: each bucket's
        minutes summed, with the lines exactly at its start apart (see
        :func:`apps.logs.storage.base.fold_minute_edges`)."""
        base = (query.start_ns - 1) // MINUTE_NS
        per = step_ns // MINUTE_NS
        with self._cursor() as cursor:
            cursor.execute(
                f"SELECT stream_id, (minute - %s) / %s AS b, sum(lines), sum(bytes), "
                f"coalesce(sum(edge_lines) FILTER (WHERE mod(minute - %s, %s) = 0), 0), "
                f"coalesce(sum(edge_bytes) FILTER (WHERE mod(minute - %s, %s) = 0), 0) "
                f"FROM {MINUTE_TABLE} WHERE team_id = %s AND minute >= %s AND minute <= %s "
                f"AND stream_id IN ({','.join(str(i) for i in streams)}) GROUP BY 1, 2",
                [base, per, base, per, base, per, query.team_id, base, base + buckets * per],
            )
            by_stream: dict[int, list[tuple[int, int, int, int, int]]] = defaultdict(list)
            for stream_id, *row in cursor.fetchall():
                by_stream[stream_id].append(tuple(int(v) for v in row))  # type: ignore[arg-type]
        out = []
        for stream_id, rows in by_stream.items():
            counts, sizes = fold_minute_edges(rows, buckets)
            out += [
                (stream_id, bucket, count, sizes[bucket])
                for bucket, count in enumerate(counts)
                if count
            ]
        return out

    def label_names(self, *, team_id: int, start_ns: int, end_ns: int) -> list[str]:
        streams = self._streams_with_entries(team_id=team_id, start_ns=start_ns, end_ns=end_ns)
        return sorted({name for stream in streams for name, _ in stream.labels})

    def label_values(self, *, team_id: int, name: str, start_ns: int, end_ns: int) -> list[str]:
        streams = self._streams_with_entries(team_id=team_id, start_ns=start_ns, end_ns=end_ns)
        return sorted({value for s in streams for label, value in s.labels if label == name})

    def series(
        self, *, team_id: int, matchers: Sequence[Matcher], start_ns: int, end_ns: int
    ) -> list[Pairs]:
        streams = self._streams_with_entries(
            team_id=team_id, start_ns=start_ns, end_ns=end_ns, matchers=matchers
        )
        return sorted(stream.labels for stream in streams)

    # ------------------------------------------------------------------ retention

    def delete_before(self, *, team_id: int, before_ns: int, batch: int = 10_000) -> int:
        if batch <= 0:
            raise ValueError("batch must be positive")
        before_ns = _clamp(before_ns)
        removed = 0
        if self._postgres:
            tables = [DEFAULT_PARTITION]
            for partition in self.partitions():
                if partition.start_ns >= before_ns:
                    continue
                if partition.end_ns <= before_ns and not self._other_teams_in(partition, team_id):
                    removed += self._drop(partition)
                else:
                    tables.append(partition.name)
        else:
            tables = [ENTRY_TABLE]
        for table in tables:
            removed += self._delete_batches(table, team_id, before_ns, batch)
        if self._postgres:
            self._forget_minutes(team_id, before_ns)
        self._prune_streams(team_id, before_ns)
        return removed

    def _forget_minutes(self, team_id: int, before_ns: int) -> None:
        """The team's minute counts after its lines before ``before_ns`` went: the whole
        minutes before it removed, the minute it falls in counted again from the lines."""
        minute = before_ns // MINUTE_NS
        with transaction.atomic(using=self.using), self._cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {MINUTE_TABLE} WHERE team_id = %s AND minute < %s",
                [team_id, minute],
            )
            if before_ns % MINUTE_NS:
                cursor.execute(
                    f"DELETE FROM {MINUTE_TABLE} WHERE team_id = %s AND minute = %s",
                    [team_id, minute],
                )
                cursor.execute(
                    f"INSERT INTO {MINUTE_TABLE} SELECT team_id, stream_id, %s, count(*), "
                    "sum(octet_length(line)), "
                    f"count(*) FILTER (WHERE mod(ts, {MINUTE_NS}) = 0), "
                    f"coalesce(sum(octet_length(line)) FILTER (WHERE mod(ts, {MINUTE_NS}) = 0), 0) "
                    f"FROM {ENTRY_TABLE} WHERE team_id = %s AND ts >= %s AND ts < %s "
                    "GROUP BY team_id, stream_id",
                    [minute, team_id, minute * MINUTE_NS, (minute + 1) * MINUTE_NS],
                )

    def _delete_batches(self, table: str, team_id: int, before_ns: int, batch: int) -> int:
        """Delete the team's rows older than ``before_ns`` from one table, at most ``batch``
        rows a statement (each its own transaction, outside any caller's)."""
        table = self._quote(table)
        row = "ctid" if self._postgres else "rowid"
        key = f"{row} = ANY(ARRAY(%s))" if self._postgres else f"{row} IN (%s)"
        chosen = f"SELECT {row} FROM {table} WHERE team_id = %s AND ts < %s LIMIT %s"
        sql = f"DELETE FROM {table} WHERE " + key.replace("%s", chosen)
        removed = 0
        while True:
            with self._cursor() as cursor:
                cursor.execute(sql, [team_id, before_ns, batch])
                count = cursor.rowcount
            removed += count
            if count < batch:
                return removed

    def _prune_streams(self, team_id: int, before_ns: int) -> None:
        """Forget the team's streams with no entry left and none newer than the cutoff."""
        with self._cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {LogStream._meta.db_table} WHERE team_id = %s "
                "AND last_seen_ns < %s AND NOT EXISTS (SELECT 1 FROM "
                f"{ENTRY_TABLE} e WHERE e.team_id = {LogStream._meta.db_table}.team_id "
                f"AND e.stream_id = {LogStream._meta.db_table}.id)",
                [team_id, before_ns],
            )

    # ------------------------------------------------------------------ partitions

    def partitions(self) -> list[Partition]:
        """The daily partitions of ``logs_entry`` (PostgreSQL; none on SQLite), by time."""
        if not self._postgres:
            return []
        with self._cursor() as cursor:
            cursor.execute(
                "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
                "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
                [ENTRY_TABLE],
            )
            rows = cursor.fetchall()
        found = []
        for name, bound in rows:
            match = _PARTITION_BOUND.search(bound)
            if match:  # the DEFAULT partition has no bounds
                found.append(Partition(name, int(match.group(1)), int(match.group(2))))
        return sorted(found, key=lambda p: p.start_ns)

    def _other_teams_in(self, partition: Partition, team_id: int) -> bool:
        # Two index range scans; "team_id <> x" could not use the index.
        with self._cursor() as cursor:
            cursor.execute(
                f"SELECT EXISTS (SELECT 1 FROM {self._quote(partition.name)} WHERE team_id < %s) "
                f"OR EXISTS (SELECT 1 FROM {self._quote(partition.name)} WHERE team_id > %s)",
                [team_id, team_id],
            )
            return bool(cursor.fetchone()[0])

    def _drop(self, partition: Partition) -> int:
        """Drop a day's partition and the minute counts of its lines (a day is whole
        minutes, so they are exactly its minutes, of whichever team)."""
        with transaction.atomic(using=self.using), self._cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {self._quote(partition.name)}")
            (count,) = cursor.fetchone()
            cursor.execute(f"DROP TABLE {self._quote(partition.name)}")
            cursor.execute(
                f"DELETE FROM {MINUTE_TABLE} WHERE minute >= %s AND minute < %s",
                [partition.start_ns // MINUTE_NS, partition.end_ns // MINUTE_NS],
            )
        return int(count)

    def drop_partitions_before(self, *, before_ns: int) -> int:
        """Drop every daily partition wholly older than ``before_ns``, whatever teams its
        rows belong to: the caller passes the oldest cutoff of all teams. Returns the
        entries removed (0 on SQLite, which has no partitions)."""
        return sum(
            self._drop(partition)
            for partition in self.partitions()
            if partition.end_ns <= _clamp(before_ns)
        )

    def prepare(self, *, now_ns: int, days_ahead: int = 2) -> None:
        """Create the daily partitions from today's (UTC) to ``days_ahead`` days later, and
        the trigram index of every day that is over; nothing on SQLite. Idempotent."""
        if not self._postgres:
            return
        today = now_ns // DAY_NS * DAY_NS
        for day in range(max(days_ahead, 0) + 1):
            self._ensure_partition(today + day * DAY_NS)
        for partition in self.partitions():
            if partition.end_ns <= now_ns:
                self._ensure_trigram_index(partition)

    def _ensure_trigram_index(self, partition: Partition) -> None:
        """The substring search index of a day that is over, built in one pass (without
        blocking late writes to that day, unless the caller holds a transaction)."""
        index = f"{partition.name}_line_trgm"
        with self._cursor() as cursor:
            cursor.execute(
                "SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass(%s)",
                [index],
            )
            state = cursor.fetchone()
            if state is not None and state[0]:
                return
            if state is not None:  # a concurrent build that failed leaves an invalid index
                cursor.execute(f"DROP INDEX {self._quote(index)}")
            concurrently = "" if connections[self.using].in_atomic_block else "CONCURRENTLY "
            cursor.execute(
                f"CREATE INDEX {concurrently}{self._quote(index)} "
                f"ON {self._quote(partition.name)} USING gin (line gin_trgm_ops)"
            )

    def _ensure_partition(self, start_ns: int) -> None:
        name = partition_name(start_ns)
        if self._relation_exists(name):
            return
        end_ns = start_ns + DAY_NS
        with transaction.atomic(using=self.using), self._cursor() as cursor:
            # Rows of that day may sit in the default partition: move them in the same
            # transaction, with writers to the default partition held off meanwhile (the
            # attach checks that none is left there).
            # Queries reading the default partition block while the lock is waited for:
            # give up after a while rather than stall them (the next run tries again).
            cursor.execute("SET LOCAL lock_timeout = '10s'")
            cursor.execute(f"LOCK TABLE {DEFAULT_PARTITION} IN ACCESS EXCLUSIVE MODE")
            if self._relation_exists(name):
                return
            cursor.execute(f"CREATE TABLE {name} (LIKE {ENTRY_TABLE} INCLUDING DEFAULTS)")
            cursor.execute(
                f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE ts >= %s AND ts < %s "
                f"RETURNING *) INSERT INTO {name} SELECT * FROM moved",
                [start_ns, end_ns],
            )
            cursor.execute(
                f"ALTER TABLE {ENTRY_TABLE} ATTACH PARTITION {name} "
                f"FOR VALUES FROM ({int(start_ns)}) TO ({int(end_ns)})"
            )

    def _relation_exists(self, name: str) -> bool:
        with self._cursor() as cursor:
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
            return bool(cursor.fetchone()[0])
