"""The one interface every log storage backend implements (SQLite/PostgreSQL through the
Django ORM and raw SQL, ClickHouse through its native protocol), so ingestion, the query
APIs, retention and the benchmark never know which one is configured.

Rules every backend keeps:

- **Team first.** Every call names the team; a backend never returns, counts or deletes a
  row of another team, whatever the matchers say.
- **One entry per (team, stream, timestamp, line).** Writing the same entry again (a
  shipper retrying a batch whose answer it did not get) stores nothing new: Loki's rule.
- **Durable on return.** When :meth:`LogStore.write` returns, the rows are committed; an
  exception means the caller must answer 5xx so the shipper retries, and because of the
  rule above a retry never shows a line twice.
- **Push-down, then exact.** :meth:`LogStore.select` and :meth:`LogStore.count_buckets`
  apply the stream matchers and the literal line filters they are given in the database;
  the query layer applies the rest of a LogQL query (regex line filters, parsers, label
  filters) on what comes back, with the pure evaluator of :mod:`apps.logs.logql`. A
  backend may apply more than it is asked to, never less, and never something else.
- **Times** are integer nanoseconds since the Unix epoch, ranges half-open: ``start_ns``
  included, ``end_ns`` excluded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from apps.logs.logql.ast import Matcher
from apps.logs.wire.types import Pairs, PushedStream

Direction = Literal["backward", "forward"]


@dataclass(frozen=True, slots=True)
class LogSelect:
    """What to read: the team's entries in [start_ns, end_ns) of the streams matching all
    ``matchers`` (a LogQL stream selector's: RE2 regexes match the whole value, and a label
    a stream lacks reads as "") and of ``deployment_id`` when given, whose line contains
    every string of ``line_contains`` and none of ``line_excludes`` (plain, case-sensitive
    substrings)."""

    team_id: int
    start_ns: int
    end_ns: int
    matchers: tuple[Matcher, ...] = ()
    deployment_id: int | None = None
    line_contains: tuple[str, ...] = ()
    line_excludes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """One stored line with its stream."""

    stream_id: str  # the stream's fingerprint (apps.logs.wire.types.stream_fingerprint)
    labels: Pairs
    deployment_id: int | None
    timestamp_ns: int
    line: str
    metadata: Pairs = ()
    severity: str = ""
    trace_id: str = ""
    span_id: str = ""

    @property
    def cursor(self) -> tuple[int, str, str]:
        """The total order pages are cut on: time, then stream, then line."""
        return (self.timestamp_ns, self.stream_id, self.line)


@dataclass(frozen=True, slots=True)
class Page:
    """Entries in the requested direction, and where the next page starts (``None`` when
    this is the last one). Pass ``after`` back to :meth:`LogStore.select` as is."""

    entries: list[StoredEntry]
    after: tuple[int, str, str] | None


@dataclass(frozen=True, slots=True)
class WriteResult:
    stored: int  # entries new to the store
    duplicates: int  # entries it already had (a retried batch)
    streams: int  # streams written to
    bytes: int = 0  # UTF-8 bytes of the stored lines


@dataclass(frozen=True, slots=True)
class SeriesCount:
    """The number of matching lines (and their bytes) of one stream per time bucket:
    ``counts[i]`` covers [start_ns + i * step_ns, start_ns + (i + 1) * step_ns)."""

    stream_id: str
    labels: Pairs
    counts: list[int] = field(default_factory=list)
    bytes: list[int] = field(default_factory=list)


# --- per-minute counts, for backends that keep them -------------------------------------

MINUTE_NS = 60 * 10**9
# Both backends partition by UTC day; a day is whole minutes.
DAY_NS = 86_400 * 10**9


def minutes_answer(query: LogSelect, step_ns: int) -> bool:
    """Whether per-minute counts give ``count_buckets`` exactly: no line filter, and
    buckets of whole minutes. The query layer asks for ``(t - step, t]`` buckets, so the
    start it gives is a minute boundary plus one nanosecond."""
    return (
        not query.line_contains
        and not query.line_excludes
        and step_ns % MINUTE_NS == 0
        and (query.start_ns - 1) % MINUTE_NS == 0
        and (query.end_ns - query.start_ns) % step_ns == 0
    )


def fold_minute_edges(
    rows: Iterable[tuple[int, int, int, int, int]], size: int
) -> tuple[list[int], list[int]]:
    """One stream's line and byte counts per bucket from its minute rows summed per
    bucket: ``(bucket, lines, bytes, edge_lines, edge_bytes)``, where a bucket's minutes
    are ``[b_i, b_i + step)`` and its edge counts are the lines exactly at ``b_i``. Bucket
    ``i`` is ``(b_i, b_i + step]``: its minutes' lines but its edge, which belongs to bucket
    ``i - 1``. Rows of bucket ``size`` (the minute just past the last) give only their
    edge, to the last bucket."""
    counts, sizes = [0] * size, [0] * size
    for bucket, lines, size_bytes, edge_lines, edge_bytes in rows:
        if bucket < size:
            counts[bucket] += lines - edge_lines
            sizes[bucket] += size_bytes - edge_bytes
        if 0 < bucket <= size:
            counts[bucket - 1] += edge_lines
            sizes[bucket - 1] += edge_bytes
    return counts, sizes


# Which inventory deployment a stream belongs to, from its labels (None: none matches).
DeploymentResolver = Callable[[Mapping[str, str]], "int | None"]


class LogStore(Protocol):
    """A log storage backend (see the module's rules)."""

    vendor: str  # "sqlite", "postgresql", "clickhouse"

    def write(
        self, *, team_id: int, streams: Sequence[PushedStream], resolve: DeploymentResolver
    ) -> WriteResult:
        """Store the streams' entries for the team (already validated and deduplicated
        within the push); ``resolve`` links each new stream to a deployment."""
        ...

    def select(
        self,
        query: LogSelect,
        *,
        limit: int,
        direction: Direction = "backward",
        after: tuple[int, str, str] | None = None,
    ) -> Page:
        """At most ``limit`` entries, newest first (``backward``) or oldest first, strictly
        after the ``after`` cursor in that direction."""
        ...

    def count_buckets(self, query: LogSelect, *, step_ns: int) -> list[SeriesCount]:
        """Per stream, the matching lines and bytes per ``step_ns`` bucket from
        ``query.start_ns`` (the last bucket may be cut by ``end_ns``): what LogQL's
        ``count_over_time``, ``rate`` and ``bytes_over_time`` and the search histogram are
        computed from when the query has no parser or regex filter."""
        ...

    def label_names(self, *, team_id: int, start_ns: int, end_ns: int) -> list[str]:
        """Sorted label names of the team's streams with entries in the range."""
        ...

    def label_values(self, *, team_id: int, name: str, start_ns: int, end_ns: int) -> list[str]:
        """Sorted values of one label over those streams."""
        ...

    def series(
        self, *, team_id: int, matchers: Sequence[Matcher], start_ns: int, end_ns: int
    ) -> list[Pairs]:
        """Label sets of the team's streams matching all matchers, with entries in range."""
        ...

    def delete_before(self, *, team_id: int, before_ns: int, batch: int = 10_000) -> int:
        """Retention: remove the team's entries older than ``before_ns``, in bounded steps
        (whole partitions where the backend can, else batches of at most ``batch`` rows),
        never one unbounded DELETE. Returns the entries removed."""
        ...

    def prepare(self, *, now_ns: int, days_ahead: int = 2) -> None:
        """Create what the coming days need (daily partitions) ahead of time; idempotent."""
        ...
