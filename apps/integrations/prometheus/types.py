from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InstantSample:
    """One series of an instant-vector result: its labels, value and sample timestamp."""

    labels: dict[str, str]
    value: float
    timestamp: float  # Unix seconds of the sample, as Prometheus reports it


@dataclass(frozen=True)
class RangeSeries:
    labels: dict[str, str]
    points: list[tuple[float, float]]  # (unix seconds, value)
