"""Loki's per-stream and per-entry limits, applied to decoded streams.

The refusal rule is Loki's: what breaks a limit is refused and named, everything else in the
push is accepted, and the endpoint answers 400 with the reasons when anything was refused
(after storing what was accepted). Shippers do not retry a 400 (only 429 and 5xx), so refusing
the whole push for one bad entry would drop every good line with it; accepting the rest loses
nothing that was valid, and a retried batch does not duplicate it because storage treats the
same stream, timestamp and line as one entry. A label rule refuses the whole stream; a line or
time rule refuses one entry. Refused entries are never in `accepted`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import itemgetter

from .labels import format_labels
from .types import Pairs, PlainEntries, PushedEntry, PushedStream, all_distinct, utf8_size

LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
HOUR_NS = 3600 * 1_000_000_000


@dataclass(frozen=True)
class Limits:
    """Loki's defaults. A size or count of 0, or an age of None, switches its check off."""

    max_line_size: int = 256 * 1024  # bytes of UTF-8
    max_line_size_truncate: bool = False  # cut long lines to the limit instead of refusing
    max_label_names_per_series: int = 15
    max_label_name_length: int = 1024
    max_label_value_length: int = 2048
    max_structured_metadata_size: int = 64 * 1024  # bytes of names and values, per entry
    max_structured_metadata_entries: int = 128
    reject_old_samples_max_age_ns: int | None = 7 * 24 * HOUR_NS
    creation_grace_period_ns: int | None = HOUR_NS // 6


@dataclass(frozen=True)
class Refusal:
    """Why entries were not accepted. `reason` is Loki's discard reason (`line_too_long`,
    `greater_than_max_sample_age`, ...); `entry` is None when the whole stream is refused, and
    `entries` counts what the refusal covers."""

    origin: str
    entry: int | None
    labels: str
    reason: str
    message: str
    entries: int = 1
    bytes: int = 0

    @property
    def location(self) -> str:
        return self.origin if self.entry is None else f"{self.origin} entry {self.entry}"


@dataclass(frozen=True)
class PushValidation:
    """`accepted`: one stream per label set (streams sent twice are merged, in the order first
    seen), entries in the order sent, duplicates within the push (same stream, timestamp and
    line) kept once. `duplicates` counts the ones dropped, `truncated` the lines cut;
    `accepted_bytes` is the UTF-8 size of the accepted lines."""

    accepted: tuple[PushedStream, ...]
    refused: tuple[Refusal, ...] = ()
    duplicates: int = 0
    truncated: int = 0
    accepted_bytes: int = 0

    @property
    def accepted_lines(self) -> int:
        return sum(len(stream.entries) for stream in self.accepted)

    @property
    def refused_lines(self) -> int:
        return sum(refusal.entries for refusal in self.refused)

    def error_text(self, *, most: int = 10) -> str:
        """The body of the 400 answer: one refusal a line, the first `most` of them."""
        lines = [f"{r.location}: {r.message}" for r in self.refused[:most]]
        if len(self.refused) > most:
            lines.append(f"... and {len(self.refused) - most} more refusals")
        return "\n".join(lines)


_TIMES = itemgetter(0)
_LINES = itemgetter(1)
_METADATA = itemgetter(2)


def validate_push(
    streams: Iterable[PushedStream], *, limits: Limits, now_ns: int
) -> PushValidation:
    refused: list[Refusal] = []
    merged: dict[Pairs, Sequence[PushedEntry]] = {}
    # The (time, line) keys of a label set's kept entries; None until a second stream of
    # the same labels needs them.
    seen: dict[Pairs, set[tuple[int, str]] | None] = {}
    duplicates = truncated = accepted_bytes = 0
    oldest = (
        None
        if limits.reject_old_samples_max_age_ns is None
        else now_ns - limits.reject_old_samples_max_age_ns
    )
    newest = (
        None
        if limits.creation_grace_period_ns is None
        else now_ns + limits.creation_grace_period_ns
    )
    for stream in streams:
        problem = _label_problem(stream.labels, limits)
        if problem is not None:
            printed = format_labels(stream.labels)
            reason, message = problem
            refused.append(
                Refusal(
                    origin=stream.origin,
                    entry=None,
                    labels=printed,
                    reason=reason,
                    message=f"stream {printed}: {message}; its {len(stream.entries)} entries "
                    "are refused",
                    entries=len(stream.entries),
                    bytes=sum(utf8_size(e.line) for e in stream.entries),
                )
            )
            continue
        if stream.labels not in merged:
            # The usual stream: its labels new to the push, every entry plain (in time,
            # within the line size, no metadata) and unique, checked a column at a time.
            size = _plain_size(stream.entries, limits, oldest=oldest, newest=newest)
            if size is not None:
                entries = stream.entries
                if isinstance(entries, PlainEntries) and not entries.unique:
                    # Checked unique just now: the store need not check again.
                    entries = PlainEntries(
                        entries.times, entries.lines, entries.severity, unique=True
                    )
                merged[stream.labels] = entries
                seen[stream.labels] = None
                accepted_bytes += size
                continue
        printed = format_labels(stream.labels)
        kept = merged.get(stream.labels)
        if not isinstance(kept, list):
            kept = merged[stream.labels] = list(kept or ())
        keys = seen.get(stream.labels)
        if keys is None:
            keys = seen[stream.labels] = {(e.timestamp_ns, e.line) for e in kept}
        for index, entry in enumerate(stream.entries):
            size = utf8_size(entry.line)
            entry_problem = (
                None
                # The usual entry, in time, of a line within the limit, without metadata.
                if (oldest is None or entry.timestamp_ns >= oldest)
                and (newest is None or entry.timestamp_ns <= newest)
                and (not limits.max_line_size or size <= limits.max_line_size)
                and not entry.metadata
                else _entry_problem(entry, size, limits, oldest=oldest, newest=newest)
            )
            if entry_problem is not None:
                reason, message = entry_problem
                refused.append(
                    Refusal(
                        origin=stream.origin,
                        entry=index,
                        labels=printed,
                        reason=reason,
                        message=f"stream {printed}: {message}",
                        bytes=size,
                    )
                )
                continue
            if limits.max_line_size and size > limits.max_line_size:
                entry = _truncated(entry, limits.max_line_size)
                size = utf8_size(entry.line)
                truncated += 1
            key = (entry.timestamp_ns, entry.line)
            if key in keys:
                duplicates += 1
                continue
            keys.add(key)
            kept.append(entry)
            accepted_bytes += size
    accepted = tuple(
        PushedStream(
            labels=labels,
            entries=entries if isinstance(entries, PlainEntries) else tuple(entries),
        )
        for labels, entries in merged.items()
        if entries
    )
    return PushValidation(
        accepted=accepted,
        refused=tuple(refused),
        duplicates=duplicates,
        truncated=truncated,
        accepted_bytes=accepted_bytes,
    )


def _plain_size(
    entries: Sequence[PushedEntry], limits: Limits, *, oldest: int | None, newest: int | None
) -> int | None:
    """The UTF-8 size of the entries' lines when every entry is in time, within the line
    size, without metadata and unique in the stream; else None (the caller then checks
    entry by entry, and names the refused ones)."""
    if not entries:
        return None
    if isinstance(entries, PlainEntries):
        times, lines = entries.times, entries.lines
    elif any(map(_METADATA, entries)):
        return None
    else:
        times = list(map(_TIMES, entries))
        lines = list(map(_LINES, entries))
    if (oldest is not None and min(times) < oldest) or (newest is not None and max(times) > newest):
        return None
    longest = max(map(len, lines))  # characters: at most 4 bytes each in UTF-8
    if limits.max_line_size and longest * 4 > limits.max_line_size:
        if max(map(utf8_size, lines)) > limits.max_line_size:
            return None
    if not all_distinct(times, lines):
        return None
    return utf8_size("".join(lines))


def _label_problem(labels: Pairs, limits: Limits) -> tuple[str, str] | None:
    if not labels:
        return "missing_labels", "at least one label with a value is required"
    if limits.max_label_names_per_series and len(labels) > limits.max_label_names_per_series:
        return (
            "max_label_names_per_series",
            f"{len(labels)} labels, more than the limit of {limits.max_label_names_per_series}",
        )
    previous = None
    for name, value in labels:
        if name == previous:
            return "duplicate_label_names", f"label name {name!r} given twice"
        previous = name
        if not LABEL_NAME.fullmatch(name):
            return "invalid_labels", f"{name[:100]!r} is not a valid label name"
        if limits.max_label_name_length and len(name) > limits.max_label_name_length:
            return (
                "label_name_too_long",
                f"label name {name[:100]!r}... is {len(name)} characters, more than the "
                f"limit of {limits.max_label_name_length}",
            )
        if limits.max_label_value_length and len(value) > limits.max_label_value_length:
            return (
                "label_value_too_long",
                f"the value of {name!r} is {len(value)} characters, more than the limit of "
                f"{limits.max_label_value_length}",
            )
    return None


def _entry_problem(
    entry: PushedEntry, size: int, limits: Limits, *, oldest: int | None, newest: int | None
) -> tuple[str, str] | None:
    if oldest is not None and entry.timestamp_ns < oldest:
        return (
            "greater_than_max_sample_age",
            f"timestamp {entry.timestamp_ns} is too old, the oldest accepted is {oldest}",
        )
    if newest is not None and entry.timestamp_ns > newest:
        return (
            "too_far_in_future",
            f"timestamp {entry.timestamp_ns} is too far in the future, the newest accepted "
            f"is {newest}",
        )
    too_long = limits.max_line_size and size > limits.max_line_size
    if too_long and not limits.max_line_size_truncate:
        return (
            "line_too_long",
            f"the line is {size} bytes, more than the limit of {limits.max_line_size}",
        )
    return _metadata_problem(entry.metadata, limits)


def _metadata_problem(metadata: Pairs, limits: Limits) -> tuple[str, str] | None:
    if limits.max_structured_metadata_entries and (
        len(metadata) > limits.max_structured_metadata_entries
    ):
        return (
            "structured_metadata_too_many",
            f"{len(metadata)} structured metadata entries, more than the limit of "
            f"{limits.max_structured_metadata_entries}",
        )
    if limits.max_structured_metadata_size:
        size = sum(len(name.encode()) + len(value.encode()) for name, value in metadata)
        if size > limits.max_structured_metadata_size:
            return (
                "structured_metadata_too_large",
                f"structured metadata of {size} bytes, more than the limit of "
                f"{limits.max_structured_metadata_size}",
            )
    return None


def _truncated(entry: PushedEntry, max_bytes: int) -> PushedEntry:
    """The entry with its line cut to at most `max_bytes` of UTF-8, on a character boundary."""
    line = entry.line.encode()[:max_bytes].decode("utf-8", "ignore")
    return entry._replace(line=line)
