"""Numbers, durations and sizes as Loki reads them, in queries and in label values.

- numbers: Go's ``strconv.ParseFloat`` (``12``, ``-1.5``, ``2e3``, ``inf``, ``NaN``);
- durations: Go's ``time.ParseDuration`` (``1.5s``, ``250ms``, ``1h30m``, units ns us µs ms
  s m h) and Prometheus's days, weeks and years (``2d``, ``1w``, ``1y``);
- sizes: ``humanize.ParseBytes`` (``512B``, ``10KB`` = 10,000, ``10KiB`` = 10,240, ``1.5 MB``).
"""

from __future__ import annotations

import math
import re

_FLOAT = re.compile(
    r"[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)",
    re.IGNORECASE,
)
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h|d|w|y)")
_DURATION_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
    "w": 7 * 86_400_000_000_000,
    "y": 365 * 86_400_000_000_000,
}
_BYTES = re.compile(r"((?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))\s*([a-zA-Z]*)")
_BYTE_UNITS = {"": 1, "b": 1}
for _power, _prefix in enumerate("kmgtpe", start=1):
    _BYTE_UNITS[_prefix] = _BYTE_UNITS[f"{_prefix}b"] = 1000**_power
    _BYTE_UNITS[f"{_prefix}i"] = _BYTE_UNITS[f"{_prefix}ib"] = 1024**_power


def parse_number(text: str) -> float | None:
    return float(text) if _FLOAT.fullmatch(text) else None


def parse_duration_ns(text: str, *, signed: bool = False) -> int | None:
    """Nanoseconds, or None when ``text`` is not a duration. ``"0"`` is one, as in Go."""
    sign = 1
    if signed and text[:1] in ("+", "-"):
        sign, text = (-1 if text[0] == "-" else 1), text[1:]
    if text == "0":
        return 0
    total = 0.0
    pos = 0
    while pos < len(text):
        part = _DURATION_PART.match(text, pos)
        if part is None:
            return None
        total += float(part.group(1)) * _DURATION_NS[part.group(2)]
        pos = part.end()
    if not pos or not math.isfinite(total):
        return None
    return sign * round(total)


def parse_bytes(text: str) -> float | None:
    """Bytes, or None when ``text`` is not a size."""
    match = _BYTES.fullmatch(text.strip())
    if match is None:
        return None
    unit = _BYTE_UNITS.get(match.group(2).lower())
    return None if unit is None else float(match.group(1)) * unit
