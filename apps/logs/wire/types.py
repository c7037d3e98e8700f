"""The normalized form of a log push, whatever the wire format, and the errors of decoding."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import NamedTuple, overload

from .labels import format_labels

Pairs = tuple[tuple[str, str], ...]
# Timestamps are stored as signed 64-bit nanoseconds: up to 2262-04-11.
MAX_TIMESTAMP_NS = 2**63 - 1


class DecodeError(ValueError):
    """The request body cannot be read: the whole push is refused (HTTP 400).

    `location` names where, in the terms of the wire format (`streams[2].values[5][0]`,
    `resourceLogs[0].scopeLogs[1].logRecords[3].traceId`), or is empty for the body as a whole.
    `http_status` is the answer the push endpoints give for it.
    """

    http_status = 400

    def __init__(self, reason: str, *, location: str = "") -> None:
        self.reason = reason
        self.location = location
        super().__init__(f"{location}: {reason}" if location else reason)


class BodyTooLarge(DecodeError):
    """The body, or what it decompresses to, is larger than allowed (HTTP 413)."""

    http_status = 413


class UnsupportedMediaType(DecodeError):
    """The Content-Type or Content-Encoding is not one this endpoint reads (HTTP 415)."""

    http_status = 415


def utf8_size(text: str) -> int:
    """Bytes of ``text`` in UTF-8 (without encoding it when it is ASCII, as most lines are)."""
    return len(text) if text.isascii() else len(text.encode())


class PushedEntry(NamedTuple):
    """One log line. `metadata` is the structured metadata (unique names, in the order sent);
    `severity` is the normalized level (`trace`, `debug`, `info`, `warn`, `error`, `fatal`, or
    "" when the push does not say); `trace_id` and `span_id` are lowercase hex or "".

    A named tuple, immutable as the other types here: a push makes one per line, and a
    tuple is made in a third of the time of a frozen dataclass."""

    timestamp_ns: int
    line: str
    metadata: Pairs = ()
    severity: str = ""
    trace_id: str = ""
    span_id: str = ""


class PlainEntries(Sequence[PushedEntry]):
    """The entries of a stream as columns: their times and lines, every one with the same
    level and no metadata, trace or span id (what shippers send most). The decoders make it
    without an object per line, and validation and the stores read its columns; anything
    else sees a sequence of :class:`PushedEntry`, equal to the tuple of the same entries.

    ``unique`` says that no two entries have the same time and line (validation, which
    checks it, passes it on, so that a store need not check again); False when not known."""

    __slots__ = ("lines", "severity", "times", "unique")

    def __init__(
        self, times: list[int], lines: list[str], severity: str = "", *, unique: bool = False
    ) -> None:
        if len(times) != len(lines):
            raise ValueError(f"{len(times)} times for {len(lines)} lines")
        self.times = times
        self.lines = lines
        self.severity = severity
        self.unique = unique

    def __len__(self) -> int:
        return len(self.times)

    @overload
    def __getitem__(self, index: int) -> PushedEntry: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[PushedEntry, ...]: ...

    def __getitem__(self, index: int | slice) -> PushedEntry | tuple[PushedEntry, ...]:
        if isinstance(index, slice):
            return tuple(self)[index]
        return PushedEntry(self.times[index], self.lines[index], (), self.severity)

    def __iter__(self) -> Iterator[PushedEntry]:
        return map(PushedEntry, self.times, self.lines, repeat(()), repeat(self.severity))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PlainEntries | tuple | list):
            return tuple(self) == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"PlainEntries({tuple(self)!r})"


def entry_times(entries: Sequence[PushedEntry]) -> list[int]:
    """The entries' times, in order (a column when the entries are :class:`PlainEntries`)."""
    if isinstance(entries, PlainEntries):
        return entries.times
    return [entry.timestamp_ns for entry in entries]


def all_distinct(times: list[int], lines: list[str]) -> bool:
    """Whether no two entries of these columns have the same time and line. Distinct times
    (the usual stream) make distinct entries, told without hashing the lines."""
    count = len(times)
    return len(set(times)) == count or len(set(zip(times, lines, strict=True))) == count


def entry_lines(entries: Sequence[PushedEntry]) -> list[str]:
    """The entries' lines, in order (a column when the entries are :class:`PlainEntries`)."""
    if isinstance(entries, PlainEntries):
        return entries.lines
    return [entry.line for entry in entries]


@dataclass(frozen=True, slots=True)
class PushedStream:
    """Entries sharing one label set. `labels` is sorted by name, names unique, no empty value.
    `origin` is where the stream stood in the request (`streams[3]`,
    `resourceLogs[0].scopeLogs[1]`), to name it in refusals."""

    labels: Pairs
    entries: tuple[PushedEntry, ...] | PlainEntries
    origin: str = ""

    @property
    def fingerprint(self) -> str:
        return stream_fingerprint(self.labels)


def stream_fingerprint(labels: Pairs) -> str:
    """A stable identity of a label set: the sha256 (hex) of its canonical text
    `{a="x", b="y"}` (sorted, quoted as `format_labels` does). Storage keys streams by it, so
    the printing rules must not change. The label sets seen lately are remembered (a
    shipper pushes into the same few streams again and again)."""
    found = _fingerprints.get(labels)
    if found is None:
        found = hashlib.sha256(format_labels(labels).encode()).hexdigest()
        if len(_fingerprints) >= FINGERPRINTS_KEPT:
            _fingerprints.clear()
        _fingerprints[labels] = found
    return found


FINGERPRINTS_KEPT = 10_000
_fingerprints: dict[Pairs, str] = {}


def normalize_labels(pairs: Pairs | list[tuple[str, str]]) -> Pairs:
    """Sorted by name with empty values dropped: in Prometheus' model a label with an empty
    value is the same series as no label, so `{a="", b="1"}` and `{b="1"}` are one stream."""
    return tuple(sorted((name, value) for name, value in pairs if value != ""))


LEVELS = {
    "trace": "trace",
    "debug": "debug",
    "dbg": "debug",
    "info": "info",
    "information": "info",
    "notice": "info",
    "warn": "warn",
    "warning": "warn",
    "error": "error",
    "err": "error",
    "critical": "fatal",
    "crit": "fatal",
    "fatal": "fatal",
    "panic": "fatal",
    "emerg": "fatal",
    "emergency": "fatal",
    "alert": "fatal",
}


def level_from_text(text: str) -> str:
    """`WARNING` -> `warn`: the normalized level a severity word names, or "" for others."""
    return LEVELS.get(text.strip().lower(), "")
