"""The ClickHouse log store, over the native protocol (``clickhouse-driver``).

Three tables and a view in the database the URL names (created by
:meth:`ClickHouseLogStore.prepare`, and on first use):

- ``logs_entries``: one row per line, a ``ReplacingMergeTree`` partitioned by day
  (``intDiv(timestamp_ns, 86400 s)``: exact for every 64-bit time, where ``toDateTime`` of
  old releases is 32-bit) and ordered by (team, deployment, stream, time, line), deployment 0
  for none. The whole entry identity is in the sorting key, so the engine folds a line
  written twice into one when parts merge.
- ``logs_streams``: one row per (team, stream): its labels (as parallel name and value
  arrays) and deployment, a ``ReplacingMergeTree`` ordered by (team, stream).
- ``logs_minutes``: per (team, deployment, stream, minute), the lines and bytes stored and
  those exactly on the minute's first nanosecond (its edge), a ``SummingMergeTree``
  partitioned by day (``intDiv(minute, 1440)``), fed by the materialized view
  ``logs_minutes_feed`` with every block inserted into ``logs_entries``. A count in buckets
  of whole minutes with no line filter reads it (with ``sum``, so unmerged parts are fine)
  instead of the lines, as the SQL store reads ``logs_entry_minute`` on PostgreSQL;
  retention keeps it in step (see :meth:`~ClickHouseLogStore.delete_before`).

**One entry per (team, stream, timestamp, line)**, with no unique constraint to lean on:
:meth:`~ClickHouseLogStore.write` first reads which of the batch's (stream, time, line) the
table already has (an external table of the batch's keys, within its streams and time span;
a stream seen for the first time has none) and inserts only the others, which makes a
retried batch store (and count) nothing and gives the ``stored`` and ``duplicates`` counts.
That read costs the server about as much CPU as the insert, and the usual batch needs none:
each stream's newest time *claimed* by a write (set in Redis before the write inserts, so a
write that fails or times out after inserting still counts) is kept per (database, team,
stream); a batch whose entries of a stream are all newer than its claim cannot match
anything stored and skips the read for that stream. A stream with no claim (Redis emptied,
a default cache that is not Redis) or with an entry at or before its claim (a retry, a
second shipper of the same stream) is read as before.
Two copies of one batch written *at the same moment* can both pass that check; for them the
engine's replacing merge is the safety net, and reads of lines keep one copy (``LIMIT 1 BY``
the entry's identity; ``FINAL``, on 18.x, merges every part read in one thread), so such a
line is never shown, or counted from the lines, twice. The minute counts do count both.

Stream matchers are applied to ``logs_streams``: ``=`` and ``!=`` in SQL (a missing label
reads as ""), RE2 regexes in Python with :mod:`apps.logs.logql.matching`, so they mean exactly
what the query evaluator means; the matching stream ids go to the entries query as an
external table. Literal line filters are ``position(line, s)`` in SQL.

The SQL is what ClickHouse 18.16 (Debian's package) accepts and current releases still do.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any
from urllib.parse import unquote, urlsplit

import structlog
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured

from apps.core.cache import RedisScript, default_redis
from apps.logs.logql.ast import Matcher
from apps.logs.logql.matching import matcher_function
from apps.logs.wire.types import (
    Pairs,
    PlainEntries,
    PushedEntry,
    PushedStream,
    all_distinct,
    entry_times,
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

logger = structlog.get_logger("controlplane.logs")

DEFAULT_PORT = 9000
# A stream's claim outlives its last write by this much (then its next batch is read).
CLAIM_TTL_MS = 2 * 86_400 * 1000
# Per key: return the earlier claim ('' for none) and keep the larger of it and ARGV[i].
_CLAIM = RedisScript(
    """
local ttl = ARGV[#KEYS + 1]
local earlier = {}
for i = 1, #KEYS do
  local claim = redis.call('GET', KEYS[i])
  earlier[i] = claim or ''
  if (not claim) or ARGV[i] > claim then
    redis.call('SET', KEYS[i], ARGV[i], 'PX', ttl)
  else
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
end
return earlier
"""
)
KNOWN_STREAMS = 100_000  # streams remembered per store before starting over

_CREATE_ENTRIES = f"""
CREATE TABLE IF NOT EXISTS logs_entries (
    team_id UInt64,
    deployment_id UInt64,
    stream_id String,
    timestamp_ns Int64,
    line String,
    metadata_names Array(String),
    metadata_values Array(String),
    severity String,
    trace_id String,
    span_id String
) ENGINE = ReplacingMergeTree()
PARTITION BY intDiv(timestamp_ns, toInt64({DAY_NS}))
ORDER BY (team_id, deployment_id, stream_id, timestamp_ns, line)
"""

_CREATE_STREAMS = """
CREATE TABLE IF NOT EXISTS logs_streams (
    team_id UInt64,
    stream_id String,
    deployment_id UInt64,
    label_names Array(String),
    label_values Array(String),
    created_ns Int64
) ENGINE = ReplacingMergeTree()
ORDER BY (team_id, stream_id)
"""

_CREATE_MINUTES = """
CREATE TABLE IF NOT EXISTS logs_minutes (
    team_id UInt64,
    deployment_id UInt64,
    stream_id String,
    minute Int64,
    lines Int64,
    bytes Int64,
    edge_lines Int64,
    edge_bytes Int64
) ENGINE = SummingMergeTree()
PARTITION BY intDiv(minute, 1440)
ORDER BY (team_id, deployment_id, stream_id, minute)
"""

# The minute of a time (floor division: ``intDiv`` truncates toward zero), and whether the
# time is exactly on it.
_MINUTE_OF = (
    f"intDiv(timestamp_ns, toInt64({MINUTE_NS})) - (modulo(timestamp_ns, toInt64({MINUTE_NS})) < 0)"
)
_ON_MINUTE = f"modulo(timestamp_ns, toInt64({MINUTE_NS})) = 0"
# What a minute row counts of some entries, negated (see ``delete_before``).
_MINUTE_UNCOUNTS = (
    "-toInt64(count()), -toInt64(sum(length(line))),"
    f" -toInt64(countIf({_ON_MINUTE})), -toInt64(sumIf(length(line), {_ON_MINUTE}))"
)

# Constant SQL: no value in it comes from outside.
_CREATE_MINUTES_FEED = f"""
CREATE MATERIALIZED VIEW IF NOT EXISTS logs_minutes_feed TO logs_minutes AS
SELECT team_id, deployment_id, stream_id, {_MINUTE_OF} AS minute,
    toInt64(count()) AS lines,
    toInt64(sum(length(line))) AS bytes,
    toInt64(countIf({_ON_MINUTE})) AS edge_lines,
    toInt64(sumIf(length(line), {_ON_MINUTE})) AS edge_bytes
FROM logs_entries
GROUP BY team_id, deployment_id, stream_id, minute
"""  # noqa: S608

_ENTRY_NAMES = (
    "team_id",
    "deployment_id",
    "stream_id",
    "timestamp_ns",
    "line",
    "metadata_names",
    "metadata_values",
    "severity",
    "trace_id",
    "span_id",
)
_ENTRY_COLUMNS = ", ".join(_ENTRY_NAMES)
# From metadata_names on, a column with no value in any row of an insert is left out of it,
# to its default (empty): clickhouse-driver writes array columns item by item in Python,
# and every string costs it the same whether empty or not.
_FIRST_DEFAULTED = 5
# The store sends its strings as UTF-8 bytes (encoded once, a whole column at a time, and
# the one copy of a constant column's value shared by its rows), which the driver then
# writes as they are.
_AS_BYTES = {"strings_as_bytes": True}
_STREAM_COLUMNS = "team_id, stream_id, deployment_id, label_names, label_values, created_ns"


class ClickHouseUnavailable(ConnectionError):
    """The server cannot be reached or refused the login: names the server."""


@dataclass(frozen=True, slots=True)
class ClickHouseTarget:
    """Where to connect, from a ``clickhouse://user:password@host:port/database`` URL."""

    host: str
    port: int
    user: str
    password: str
    database: str

    @classmethod
    def from_url(cls, url: str) -> ClickHouseTarget:
        parts = urlsplit(url)
        if parts.scheme != "clickhouse":
            raise ImproperlyConfigured(
                f"LOGS_CLICKHOUSE_URL must start with clickhouse://, not {parts.scheme!r}:// "
                "(clickhouse://user:password@host:9000/database)"
            )
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError as error:
            raise ImproperlyConfigured(f"LOGS_CLICKHOUSE_URL has a bad port: {error}") from None
        database = parts.path.lstrip("/")
        if not parts.hostname or not database or "/" in database:
            raise ImproperlyConfigured(
                "LOGS_CLICKHOUSE_URL must name a host and one database: "
                "clickhouse://user:password@host:9000/database"
            )
        return cls(
            host=parts.hostname,
            port=port,
            user=unquote(parts.username or "default"),
            password=unquote(parts.password or ""),
            database=unquote(database),
        )


@dataclass(frozen=True, slots=True)
class _Stream:
    stream_id: str
    labels: Pairs
    deployment_id: int  # 0: none


_TIMES = itemgetter(0)
_LINES = itemgetter(1)
_METADATA = itemgetter(2)
_SEVERITIES = itemgetter(3)
_TRACE_IDS = itemgetter(4)
_SPAN_IDS = itemgetter(5)


def _plain_columns(
    team_id: int, deployment: int, sid: bytes, entries: Sequence[PushedEntry]
) -> tuple[list[list[Any]], int] | None:
    """The columns of a stream sent once in the batch, with nothing stored yet at its times,
    whose entries are unique and carry no metadata, built a column at a time, strings as
    UTF-8 (with the size of its lines); None for any other."""
    if not entries:
        return None
    count = len(entries)
    if isinstance(entries, PlainEntries):
        times, lines = entries.times, entries.lines
        severities = [entries.severity.encode()] * count
        trace_ids = span_ids = [b""] * count
        unique = entries.unique
    elif any(map(_METADATA, entries)):
        return None
    else:
        times = list(map(_TIMES, entries))
        lines = list(map(_LINES, entries))
        severities = list(map(str.encode, map(_SEVERITIES, entries)))
        trace_ids = list(map(str.encode, map(_TRACE_IDS, entries)))
        span_ids = list(map(str.encode, map(_SPAN_IDS, entries)))
        unique = False
    if not unique and not all_distinct(times, lines):
        return None
    encoded = list(map(str.encode, lines))
    empty: list[bytes] = []  # never changed: every row may share it
    columns: list[list[Any]] = [
        [team_id] * count,
        [deployment] * count,
        [sid] * count,
        times,
        encoded,
        [empty] * count,
        [empty] * count,
        severities,
        trace_ids,
        span_ids,
    ]
    return columns, sum(map(len, encoded))


class ClickHouseLogStore:
    """The :class:`~apps.logs.storage.base.LogStore` on ClickHouse (see the module)."""

    vendor = "clickhouse"

    def __init__(self, url: str, *, connect_timeout_s: float = 5.0) -> None:
        self.target = ClickHouseTarget.from_url(url)
        self.connect_timeout_s = connect_timeout_s
        # clickhouse-driver's Client is one connection and not thread-safe: one per thread.
        self._local = threading.local()
        self._tables_ready = False
        # A stream's row never changes once written (its deployment is linked for good), so
        # the streams already seen are remembered, saving a query per write.
        self._known: dict[tuple[int, str], _Stream] = {}
        self._known_lock = threading.Lock()

    @classmethod
    def from_settings(cls) -> ClickHouseLogStore:
        url = getattr(settings, "LOGS_CLICKHOUSE_URL", "")
        if not url:
            raise ImproperlyConfigured(
                "LOGS_BACKEND is clickhouse but LOGS_CLICKHOUSE_URL is unset"
            )
        return cls(url)

    # -- connection -----------------------------------------------------------------------

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            from clickhouse_driver import Client

            target = self.target
            client = Client(
                host=target.host,
                port=target.port,
                user=target.user,
                password=target.password,
                database=target.database,
                connect_timeout=self.connect_timeout_s,
                settings={"max_query_size": 1 << 20},
            )
            self._local.client = client
        return client

    def _execute(self, sql: str, params: Any = None, **kwargs: Any) -> list[Any]:
        from clickhouse_driver.errors import Error, NetworkError, ServerException

        try:
            result = self._client().execute(sql, params, **kwargs)
            return result if isinstance(result, list) else []  # an INSERT answers a row count
        except (NetworkError, EOFError, OSError) as error:
            self._drop_client()
            raise self._unavailable(error) from error
        except ServerException as error:
            # No such database, unknown user, wrong password, authentication failed.
            if error.code in (81, 192, 193, 516):
                raise self._unavailable(error) from error
            raise
        except Error:
            self._drop_client()
            raise

    def _unavailable(self, error: BaseException) -> ClickHouseUnavailable:
        target = self.target
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return ClickHouseUnavailable(
            f"ClickHouse at {target.host}:{target.port} (database {target.database!r}, user "
            f"{target.user!r}) is not usable: {first}"
        )

    def _drop_client(self) -> None:
        client = getattr(self._local, "client", None)
        self._local.client = None
        if client is not None:
            client.disconnect()

    def close(self) -> None:
        """Close this thread's connection (others close with their threads)."""
        self._drop_client()

    def _ready(self) -> None:
        if not self._tables_ready:
            self._execute(_CREATE_ENTRIES)
            self._execute(_CREATE_STREAMS)
            self._execute(_CREATE_MINUTES)
            self._execute(_CREATE_MINUTES_FEED)
            self._tables_ready = True

    # -- writes ---------------------------------------------------------------------------

    def write(
        self, *, team_id: int, streams: Sequence[PushedStream], resolve: DeploymentResolver
    ) -> WriteResult:
        self._ready()
        batch = [(stream.fingerprint, stream) for stream in streams if stream.entries]
        by_id = dict(reversed(batch))  # the first stream of each id
        if not by_id:
            return WriteResult(stored=0, duplicates=0, streams=0)
        known = self._streams_by_id(team_id, list(by_id))
        new = [sid for sid in by_id if sid not in known]
        if new:
            rows = []
            for sid in new:
                labels = by_id[sid].labels
                deployment = resolve(dict(labels)) or 0
                known[sid] = _Stream(sid, labels, deployment)
                rows.append((sid, labels, deployment))
            self._insert_streams(team_id, rows)
            self._remember(team_id, [known[sid] for sid in new])

        total = sum(len(stream.entries) for _, stream in batch)
        # A stream's row is written before its first entries: one that had none has none;
        # and none whose entries are all newer than what writes have claimed.
        claimed, unclaimed = self._claim(team_id, batch)
        fresh = set(new) | claimed
        stored_before = [(sid, stream) for sid, stream in batch if sid not in fresh]
        seen = (
            self._existing(
                team_id, {known[sid].deployment_id for sid, _ in stored_before}, stored_before
            )
            if stored_before
            else set()
        )
        columns: list[list[Any]] = [[] for _ in range(10)]
        stored = stored_bytes = 0
        written: set[str] = set()
        sent = Counter(sid for sid, _ in batch)
        with_stored = {sid for sid, _, _ in seen}
        for sid, stream in batch:
            deployment = known[sid].deployment_id
            sid_bytes = sid.encode()
            if sent[sid] == 1 and sid not in with_stored:
                plain = _plain_columns(team_id, deployment, sid_bytes, stream.entries)
                if plain is not None:
                    added, octets = plain
                    for column, values in zip(columns, added, strict=True):
                        column.extend(values)
                    written.add(sid)
                    stored += len(stream.entries)
                    stored_bytes += octets
                    continue
            for entry in stream.entries:
                key = (sid, entry.timestamp_ns, entry.line)
                if key in seen:
                    continue
                seen.add(key)
                written.add(sid)
                stored += 1
                line = entry.line.encode()
                stored_bytes += len(line)
                row = (
                    team_id,
                    deployment,
                    sid_bytes,
                    entry.timestamp_ns,
                    line,
                    [name.encode() for name, _ in entry.metadata],
                    [value.encode() for _, value in entry.metadata],
                    entry.severity.encode(),
                    entry.trace_id.encode(),
                    entry.span_id.encode(),
                )
                for column, value in zip(columns, row, strict=True):
                    column.append(value)
        if stored:
            kept = [i for i, column in enumerate(columns) if i < _FIRST_DEFAULTED or any(column)]
            self._execute(
                f"INSERT INTO logs_entries ({', '.join(_ENTRY_NAMES[i] for i in kept)}) VALUES",
                [columns[i] for i in kept],
                columnar=True,
                settings=_AS_BYTES,
            )
        if unclaimed.difference(new):
            self._claim_stored(team_id, sorted(unclaimed.difference(new)))
        return WriteResult(
            stored=stored, duplicates=total - stored, streams=len(written), bytes=stored_bytes
        )

    def _claim_keys(self, team_id: int, sids: Sequence[str]) -> list[str]:
        target = self.target
        return [
            cache.make_key(
                f"logs:clickhouse-claim:{target.host}:{target.port}:{target.database}:"
                f"{team_id}:{sid}"
            )
            for sid in sids
        ]

    def _claim_stored(self, team_id: int, sids: list[str]) -> None:
        """Raise the claims of streams that had none (Redis emptied, or a stream quiet for
        longer than a claim lives) to the newest time stored for them: the claim this write
        made is only its own newest time, and stored entries may be newer (another shipper,
        a retry of a later batch), which a later batch between the two must still be
        checked against."""
        rows = self._execute(
            "SELECT stream_id, max(timestamp_ns) FROM logs_entries"
            " WHERE team_id = %(team)s AND stream_id IN %(sids)s GROUP BY stream_id",
            {"team": team_id, "sids": tuple(sids)},
        )
        if not rows:
            return
        newest = dict(rows)
        keys = self._claim_keys(team_id, list(newest))
        try:
            client = default_redis(keys[0])
            if client is not None:
                _CLAIM(client, keys, [*(f"{t:020d}" for t in newest.values()), CLAIM_TTL_MS])
        except Exception:  # noqa: BLE001 - a claim left low only costs later checks
            logger.warning("logs-clickhouse-claim-unavailable", team_id=team_id)

    def _claim(
        self, team_id: int, batch: list[tuple[str, PushedStream]]
    ) -> tuple[set[str], set[str]]:
        """Claim each stream's newest time in the batch (before inserting). Returns the
        streams whose entries are all newer than the earlier claim (nothing stored can match
        them) and the streams that had no claim. Both empty when the default cache is not
        Redis or Redis fails (then every stream is read, as without claims)."""
        spans: dict[str, tuple[int, int]] = {}
        for sid, stream in batch:
            times = entry_times(stream.entries)
            low, high = min(times), max(times)
            if sid in spans:
                low, high = min(low, spans[sid][0]), max(high, spans[sid][1])
            spans[sid] = (low, high)
        keys = self._claim_keys(team_id, list(spans))
        try:
            client = default_redis(keys[0])
            if client is None:
                return set(), set()
            # Times as 20-digit strings: Lua's numbers are doubles, too coarse for
            # nanoseconds, and equal-length digit strings compare as the numbers do.
            claims = [f"{high:020d}" for _, high in spans.values()]
            before = _CLAIM(client, keys, [*claims, CLAIM_TTL_MS])
        except Exception:  # noqa: BLE001 - without Redis, every stream is read
            logger.warning("logs-clickhouse-claim-unavailable", team_id=team_id)
            return set(), set()
        claimed = {
            sid
            for (sid, (low, _)), earlier in zip(spans.items(), before, strict=True)
            if earlier and low > int(earlier)
        }
        return claimed, {sid for sid, earlier in zip(spans, before, strict=True) if not earlier}

    def _insert_streams(self, team_id: int, rows: list[tuple[str, Pairs, int]]) -> None:
        import time

        now = time.time_ns()
        data = [
            (team_id, sid, deployment, [n for n, _ in labels], [v for _, v in labels], now)
            for sid, labels, deployment in rows
        ]
        self._execute(f"INSERT INTO logs_streams ({_STREAM_COLUMNS}) VALUES", data)

    def _existing(
        self, team_id: int, deployments: set[int], batch: list[tuple[str, PushedStream]]
    ) -> set[tuple[str, int, str]]:
        """Which (stream, time, line) of ``batch`` the team's entries already hold. Only the
        (stream, time) pairs travel to the server; the lines are compared here."""
        pairs = {(sid, entry.timestamp_ns) for sid, stream in batch for entry in stream.entries}
        times = [ts for _, ts in pairs]
        rows = self._execute(
            # PREWHERE: the small columns are read first and ``line`` only for granules
            # holding a match, so a batch of new lines (the usual case) never decompresses
            # the lines already stored around it.
            "SELECT stream_id, timestamp_ns, line FROM logs_entries"
            " PREWHERE (stream_id, timestamp_ns) IN _batch"
            " WHERE team_id = %(team)s AND deployment_id IN %(deployments)s"
            " AND stream_id IN %(streams)s"
            " AND timestamp_ns >= %(low)s AND timestamp_ns <= %(high)s",
            {
                "team": team_id,
                "deployments": tuple(sorted(deployments)),
                "streams": tuple(sorted({sid for sid, _ in batch})),
                "low": min(times),
                "high": max(times),
            },
            external_tables=[
                {
                    "name": "_batch",
                    "structure": [("stream_id", "String"), ("timestamp_ns", "Int64")],
                    "data": [{"stream_id": sid, "timestamp_ns": ts} for sid, ts in pairs],
                }
            ],
        )
        return {(sid, ts, line) for sid, ts, line in rows}

    # -- streams --------------------------------------------------------------------------

    def _streams_by_id(self, team_id: int, stream_ids: Iterable[str]) -> dict[str, _Stream]:
        """The team's streams of those ids that exist, remembered or read."""
        found: dict[str, _Stream] = {}
        missing: list[str] = []
        with self._known_lock:
            for sid in stream_ids:
                stream = self._known.get((team_id, sid))
                if stream is None:
                    missing.append(sid)
                else:
                    found[sid] = stream
        if missing:
            read = self._streams(team_id, stream_ids=sorted(missing))
            self._remember(team_id, read.values())
            found.update(read)
        return found

    def _remember(self, team_id: int, streams: Iterable[_Stream]) -> None:
        with self._known_lock:
            if len(self._known) > KNOWN_STREAMS:
                self._known.clear()
            self._known.update(((team_id, stream.stream_id), stream) for stream in streams)

    def _streams(
        self,
        team_id: int,
        *,
        stream_ids: Sequence[str] | None = None,
        matchers: Sequence[Matcher] = (),
        deployment_id: int | None = None,
    ) -> dict[str, _Stream]:
        """The team's streams by id: those named, or those matching every matcher (and the
        deployment when given)."""
        where = ["team_id = %(team)s"]
        params: dict[str, Any] = {"team": team_id}
        if stream_ids is not None:
            if not stream_ids:
                return {}
            where.append("stream_id IN %(ids)s")
            params["ids"] = tuple(stream_ids)
        if deployment_id is not None:
            where.append("deployment_id = %(deployment)s")
            params["deployment"] = deployment_id
        for index, matcher in enumerate(matchers):
            if matcher.op in ("=", "!="):
                where.append(
                    f"label_values[indexOf(label_names, %(name{index})s)]"
                    f" {matcher.op} %(value{index})s"
                )
                params[f"name{index}"] = matcher.name
                params[f"value{index}"] = matcher.value
        rows = self._execute(
            # The values are parameters: only their placeholders are in the text.
            "SELECT stream_id, deployment_id, label_names, label_values"  # noqa: S608
            f" FROM logs_streams FINAL WHERE {' AND '.join(where)}",
            params,
        )
        regexes = [
            (matcher.name, matcher_function(matcher))
            for matcher in matchers
            if matcher.op in ("=~", "!~")
        ]
        found: dict[str, _Stream] = {}
        for sid, deployment, names, values in rows:
            labels = tuple(zip(names, values, strict=True))
            if regexes:
                as_dict = dict(labels)
                if not all(test(as_dict.get(name, "")) for name, test in regexes):
                    continue
            found[sid] = _Stream(sid, labels, deployment)
        return found

    def _stream_scope(self, query: LogSelect) -> tuple[list[str], dict[str, Any], list[Any]] | None:
        """The WHERE conditions, parameters and external tables selecting ``query``'s team,
        deployment and streams (in the entries or the minutes table), or None when no stream
        can match."""
        where = ["team_id = %(team)s"]
        params: dict[str, Any] = {"team": query.team_id}
        external: list[Any] = []
        if query.deployment_id is not None:
            where.append("deployment_id = %(deployment)s")
            params["deployment"] = query.deployment_id
        if query.matchers:
            streams = self._streams(
                query.team_id, matchers=query.matchers, deployment_id=query.deployment_id
            )
            if not streams:
                return None
            where.append("deployment_id IN %(deployments)s")
            params["deployments"] = tuple(sorted({s.deployment_id for s in streams.values()}))
            where.append("stream_id IN _streams")
            external.append(_stream_table(streams))
        return where, params, external

    def _scope(self, query: LogSelect) -> tuple[str, dict[str, Any], list[Any]] | None:
        """The WHERE clause, parameters and external tables selecting ``query``'s entries
        (every copy of a line written twice at once: readers keep one), or None when no
        stream can match."""
        scope = self._stream_scope(query)
        if scope is None:
            return None
        where, params, external = scope
        where += ["timestamp_ns >= %(start)s", "timestamp_ns < %(end)s"]
        params.update(start=query.start_ns, end=query.end_ns)
        for index, needle in enumerate(query.line_contains):
            where.append(f"position(line, %(contains{index})s) > 0")
            params[f"contains{index}"] = needle
        for index, needle in enumerate(query.line_excludes):
            where.append(f"position(line, %(excludes{index})s) = 0")
            params[f"excludes{index}"] = needle
        return " AND ".join(where), params, external

    # -- reads ----------------------------------------------------------------------------

    def select(
        self,
        query: LogSelect,
        *,
        limit: int,
        direction: Direction = "backward",
        after: tuple[int, str, str] | None = None,
    ) -> Page:
        self._ready()
        if limit <= 0 or query.start_ns >= query.end_ns:
            return Page(entries=[], after=None)
        scope = self._scope(query)
        if scope is None:
            return Page(entries=[], after=None)
        where, params, external = scope
        cmp, order = ("<", "DESC") if direction == "backward" else (">", "ASC")
        if after is not None:
            where += (
                f" AND timestamp_ns {cmp}= %(after_ts)s AND (timestamp_ns {cmp} %(after_ts)s"
                f" OR (timestamp_ns = %(after_ts)s AND (stream_id {cmp} %(after_stream)s"
                f" OR (stream_id = %(after_stream)s AND line {cmp} %(after_line)s))))"
            )
            params.update(after_ts=after[0], after_stream=after[1], after_line=after[2])
        params["limit"] = limit + 1
        rows = self._execute(
            "SELECT stream_id, timestamp_ns, line, metadata_names, metadata_values,"  # noqa: S608
            f" severity, trace_id, span_id FROM logs_entries WHERE {where}"
            f" ORDER BY timestamp_ns {order}, stream_id {order}, line {order}"
            f" {_ONE_COPY} LIMIT %(limit)s",
            params,
            external_tables=external,
        )
        more = len(rows) > limit
        rows = rows[:limit]
        streams = self._streams_by_id(query.team_id, {row[0] for row in rows})
        entries = [
            StoredEntry(
                stream_id=sid,
                labels=streams[sid].labels,
                deployment_id=streams[sid].deployment_id or None,
                timestamp_ns=ts,
                line=line,
                metadata=tuple(zip(names, values, strict=True)),
                severity=severity,
                trace_id=trace_id,
                span_id=span_id,
            )
            for sid, ts, line, names, values, severity, trace_id, span_id in rows
        ]
        return Page(entries=entries, after=entries[-1].cursor if more else None)

    def count_buckets(self, query: LogSelect, *, step_ns: int) -> list[SeriesCount]:
        if step_ns <= 0:
            raise ValueError("step_ns must be positive")
        self._ready()
        if query.start_ns >= query.end_ns:
            return []
        size = -(-(query.end_ns - query.start_ns) // step_ns)
        if minutes_answer(query, step_ns):
            rows = self._count_minutes(query, step_ns, size)
        else:
            rows = self._count_lines(query, step_ns, size)
        if rows is None:
            return []
        streams = self._streams_by_id(query.team_id, set(rows))
        return [
            SeriesCount(stream_id=sid, labels=streams[sid].labels, counts=counts, bytes=sizes)
            for sid, (counts, sizes) in sorted(rows.items())
            if any(counts)
        ]

    def _count_lines(
        self, query: LogSelect, step_ns: int, size: int
    ) -> dict[str, tuple[list[int], list[int]]] | None:
        """Per stream, its lines and bytes in each bucket, counted from the lines (each
        copy of a line written twice at once counted once); None when no stream matches."""
        scope = self._scope(query)
        if scope is None:
            return None
        where, params, external = scope
        params["step"] = step_ns
        rows = self._execute(
            "SELECT stream_id, groupArray(bucket), groupArray(n), groupArray(nb) FROM ("  # noqa: S608
            " SELECT stream_id, bucket, count() AS n, sum(length(line)) AS nb FROM ("
            " SELECT stream_id, line,"
            " intDiv(timestamp_ns - toInt64(%(start)s), toInt64(%(step)s)) AS bucket"
            f" FROM logs_entries WHERE {where} {_ONE_COPY}) GROUP BY stream_id, bucket)"
            " GROUP BY stream_id",
            params,
            external_tables=external,
        )
        counted = {}
        for sid, buckets, lines, sizes in rows:
            counts, size_bytes = [0] * size, [0] * size
            for bucket, count, bucket_bytes in zip(buckets, lines, sizes, strict=True):
                counts[bucket] = count
                size_bytes[bucket] = bucket_bytes
            counted[sid] = (counts, size_bytes)
        return counted

    def _count_minutes(
        self, query: LogSelect, step_ns: int, size: int
    ) -> dict[str, tuple[list[int], list[int]]] | None:
        """Like :meth:`_count_lines`, from the minute counts. Bucket ``i`` holds the times
        in ``(b_i, b_i + step]`` with ``b_i = start - 1 + i * step`` on a minute boundary:
        the lines of its minutes but those exactly at ``b_i``, which belong to bucket
        ``i - 1``, and the minute at ``b_(i+1)`` gives it those."""
        scope = self._stream_scope(query)
        if scope is None:
            return None
        where, params, external = scope
        first = (query.start_ns - 1) // MINUTE_NS
        per = step_ns // MINUTE_NS
        where += ["minute >= %(first)s", "minute <= %(last)s"]
        params.update(first=first, per=per, last=first + size * per)
        # Times a flag, not sumIf: twice as fast on 18.x.
        starts = "(modulo(minute - %(first)s, %(per)s) = 0)"
        rows = self._execute(
            "SELECT stream_id, groupArray(bucket), groupArray(n), groupArray(nb),"  # noqa: S608
            " groupArray(en), groupArray(enb) FROM ("
            " SELECT stream_id, intDiv(minute - %(first)s, %(per)s) AS bucket,"
            " sum(lines) AS n, sum(bytes) AS nb,"
            f" sum(edge_lines * {starts}) AS en, sum(edge_bytes * {starts}) AS enb"
            f" FROM logs_minutes WHERE {' AND '.join(where)} GROUP BY stream_id, bucket)"
            " GROUP BY stream_id",
            params,
            external_tables=external,
        )
        return {sid: fold_minute_edges(zip(*columns, strict=True), size) for sid, *columns in rows}

    def _active_streams(
        self, team_id: int, start_ns: int, end_ns: int, matchers: Sequence[Matcher] = ()
    ) -> list[_Stream]:
        """The team's streams (matching ``matchers``) with entries in [start_ns, end_ns)."""
        self._ready()
        if start_ns >= end_ns:
            return []
        streams = self._streams(team_id, matchers=matchers)
        if not streams:
            return []
        rows = self._execute(
            "SELECT DISTINCT stream_id FROM logs_entries"
            " WHERE team_id = %(team)s AND timestamp_ns >= %(start)s AND timestamp_ns < %(end)s"
            " AND stream_id IN _streams",
            {"team": team_id, "start": start_ns, "end": end_ns},
            external_tables=[_stream_table(streams)],
        )
        return [streams[sid] for (sid,) in rows]

    def label_names(self, *, team_id: int, start_ns: int, end_ns: int) -> list[str]:
        active = self._active_streams(team_id, start_ns, end_ns)
        return sorted({name for stream in active for name, _ in stream.labels})

    def label_values(self, *, team_id: int, name: str, start_ns: int, end_ns: int) -> list[str]:
        active = self._active_streams(team_id, start_ns, end_ns, [Matcher(name, "!=", "")])
        return sorted({dict(stream.labels)[name] for stream in active})

    def series(
        self, *, team_id: int, matchers: Sequence[Matcher], start_ns: int, end_ns: int
    ) -> list[Pairs]:
        active = self._active_streams(team_id, start_ns, end_ns, matchers)
        return sorted(stream.labels for stream in active)

    # -- retention and upkeep ---------------------------------------------------------------

    def delete_before(self, *, team_id: int, before_ns: int, batch: int = 10_000) -> int:
        """Whole days go with ``DROP PARTITION`` when nothing in them is another team's or
        at or after ``before_ns``; what is left of the team's older entries goes with one
        ``ALTER TABLE ... DELETE`` mutation, which the server applies part by part (its unit
        of work, so ``batch`` does not apply), waited for before returning.

        The minute counts follow: a day dropped from the entries is dropped from them too
        (from 1970 on, a day of entries is exactly a day of minutes); the rest is taken off
        them before the mutation removes it, by adding its counts negated (the summing
        merge folds the pair into nothing), which also makes a minute the cutoff falls in
        count what is left of it."""
        self._ready()
        removed = self._count(
            "SELECT count() FROM logs_entries FINAL"
            " WHERE team_id = %(team)s AND timestamp_ns < %(before)s",
            {"team": team_id, "before": before_ns},
        )
        if not removed:
            return 0
        before_1970 = []
        for day in self._days_ending_by(before_ns):
            others = self._count(
                "SELECT count() FROM logs_entries"
                " WHERE intDiv(timestamp_ns, toInt64(86400000000000)) = %(day)s"
                " AND NOT (team_id = %(team)s AND timestamp_ns < %(before)s)",
                {"day": day, "team": team_id, "before": before_ns},
            )
            if others:
                continue
            if day < 0:  # its minutes straddle two days: uncounted below, then dropped
                before_1970.append(day)
                continue
            self._execute("ALTER TABLE logs_entries DROP PARTITION ID %(id)s", {"id": str(day)})
            self._execute("ALTER TABLE logs_minutes DROP PARTITION ID %(id)s", {"id": str(day)})
        self._execute(
            "INSERT INTO logs_minutes (team_id, deployment_id, stream_id, minute, lines, bytes,"  # noqa: S608
            f" edge_lines, edge_bytes) SELECT team_id, deployment_id, stream_id, {_MINUTE_OF}"
            f" AS minute, {_MINUTE_UNCOUNTS} FROM logs_entries"
            " WHERE team_id = %(team)s AND timestamp_ns < %(before)s"
            " GROUP BY team_id, deployment_id, stream_id, minute",
            {"team": team_id, "before": before_ns},
        )
        for day in before_1970:
            self._execute("ALTER TABLE logs_entries DROP PARTITION ID %(id)s", {"id": str(day)})
        left = self._count(
            "SELECT count() FROM logs_entries"
            " WHERE team_id = %(team)s AND timestamp_ns < %(before)s",
            {"team": team_id, "before": before_ns},
        )
        if left:
            self._execute(
                "ALTER TABLE logs_entries DELETE"
                " WHERE team_id = %(team)s AND timestamp_ns < %(before)s",
                {"team": team_id, "before": before_ns},
            )
            self._wait_for_mutations()
        return removed

    def _days_ending_by(self, before_ns: int) -> list[int]:
        """The day partitions of the entries table whose every possible row is older than
        ``before_ns``: partition ``d`` only holds times below ``(d + 1) * DAY_NS``
        (``intDiv`` truncates toward zero)."""
        rows = self._execute(
            "SELECT DISTINCT partition_id FROM system.parts"
            " WHERE database = currentDatabase() AND table = 'logs_entries' AND active",
        )
        days = sorted(int(partition_id) for (partition_id,) in rows)
        return [day for day in days if (day + 1) * DAY_NS <= before_ns]

    def _wait_for_mutations(self, timeout_s: float = 600.0) -> None:
        import time

        deadline = time.monotonic() + timeout_s
        while self._count(
            "SELECT count() FROM system.mutations"
            " WHERE database = currentDatabase() AND table = 'logs_entries' AND is_done = 0"
        ):
            if time.monotonic() > deadline:
                raise TimeoutError("ClickHouse did not finish deleting from logs_entries")
            time.sleep(0.1)

    def _count(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        return int(self._execute(sql, params)[0][0])

    def prepare(self, *, now_ns: int, days_ahead: int = 2) -> None:
        """Creates the tables when missing. ClickHouse creates a day's partition with its
        first row, so there is nothing to create ahead."""
        self._tables_ready = False
        self._ready()


# Keeps one of the copies of a line that two writes at the same moment both stored (the
# engine's replacing merge folds them later): cheaper than FINAL, which 18.x applies to
# every part in one thread.
_ONE_COPY = "LIMIT 1 BY deployment_id, stream_id, timestamp_ns, line"


def _stream_table(streams: Iterable[str]) -> dict[str, Any]:
    return {
        "name": "_streams",
        "structure": [("stream_id", "String")],
        "data": [{"stream_id": sid} for sid in streams],
    }
