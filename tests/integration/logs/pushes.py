"""Small builders of pushes for the log store tests."""

from __future__ import annotations

from collections.abc import Mapping

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
