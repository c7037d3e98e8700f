"""Small builders of pushes for the log store tests."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from apps.logs.storage.base import LogSelect, LogStore
from apps.logs.wire.types import PushedEntry, PushedStream, normalize_labels

SECOND = 10**9
MINUTE = 60 * SECOND
DAY = 86_400 * SECOND
# 2026-01-10 00:00:00 UTC: a day no test prepares a partition for unless it says so.
DAY0 = 1_768_003_200 * SECOND
T0 = DAY0 + 12 * 3600 * SECOND


def stream(labels: Mapping[str, str], *entries: tuple[int, str] | PushedEntry) -> PushedStream:
    return PushedStream(
        labels=normalize_labels(list(labels.items())),
        entries=tuple(e if isinstance(e, PushedEntry) else PushedEntry(*e) for e in entries),
    )


def no_deployment(labels: Mapping[str, str]) -> int | None:
    return None


def minute_fleet(seed: int = 5) -> list[PushedStream]:
    """Two streams over the 30 minutes from T0: random times, and lines exactly on every
    fifth minute boundary and one nanosecond either side of it."""
    rng = random.Random(seed)
    edges = [T0 + k * MINUTE + d for k in range(0, 30, 5) for d in (-1, 0, 1)]
    streams = []
    for app in ("api", "worker"):
        times = sorted(
            set(
                edges
                + [T0 + rng.randrange(0, 30 * 60) * SECOND for _ in range(300)]
                + [T0 + rng.randrange(0, 30 * MINUTE) for _ in range(100)]
            )
        )
        streams.append(
            stream({"app": app}, *((t, f"{app} line é {i}") for i, t in enumerate(times)))
        )
    return streams


def bucket_counts(store: LogStore, select: LogSelect, step_ns: int) -> list[tuple[Any, ...]]:
    """``count_buckets`` as sorted (stream, counts, bytes)."""
    return sorted(
        (c.stream_id, c.counts, c.bytes) for c in store.count_buckets(select, step_ns=step_ns)
    )


def with_empty_filter(select: LogSelect) -> LogSelect:
    """The same selection with a line filter every line passes: counted from the lines."""
    return replace(select, line_contains=("",))
