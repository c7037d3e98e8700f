"""How decisions read: number formatting and the phrases reasons are built from.

Reasons are shown to operators as they are, so their wording is part of the behaviour
(tests compare them); every phrase used in more than one rule lives here.
"""

from __future__ import annotations

from .types import DAY_S, ScalingPolicy


def number(x: float) -> str:
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}"


def per_replica(x: float) -> str:
    return f"{x:.1f}" if abs(x) >= 1 else f"{x:.2f}"


def percent(fraction: float) -> str:
    return f"{fraction * 100:g}%"


def replicas_text(n: int) -> str:
    return f"{n} replica" if n == 1 else f"{n} replicas"


def serving(ready: int, starting: int) -> str:
    if starting:
        return f"{ready} ready + {starting} starting replicas"
    return f"{ready} ready replica" if ready == 1 else f"{ready} ready replicas"


def clock(s: int) -> str:
    s %= DAY_S
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}"


def describe_policies(policies: tuple[ScalingPolicy, ...], sign: str, select: str) -> str:
    if select == "disabled":
        return "disabled"
    parts = [
        f"{sign}{p.value}{'%' if p.type == 'percent' else ' pod' if p.value == 1 else ' pods'} "
        f"per {p.period_s} s"
        for p in policies
    ]
    joiner = " or " if select == "max" else " and "
    return joiner.join(parts)


def move(current: int, desired: int) -> str:
    return f"{current} → {desired}" if desired != current else f"holding at {current}"
