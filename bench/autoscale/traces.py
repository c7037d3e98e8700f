"""Request traces for the benchmark.

All traces are lists of :class:`apps.fleetsim.workload.Request` sorted by arrival, in
seconds from the start. ``time_scale`` compresses time as
:func:`apps.fleetsim.workload.read_trace_csv` does: 2.0 replays the same requests twice as
fast (twice the rate, half the duration).

* ``azure-conv``: the public Azure LLM inference trace, conversation service, one hour of
  November 2023 (Patel et al., "Splitwise", ISCA 2024;
  https://github.com/Azure/AzurePublicDataset/blob/master/AzureLLMInferenceDataset2023.md).
  It is shared data found at ``/work/shared/traces`` or ``../shared/traces`` relative to
  the repository, never copied into it; without it the benchmark runs the synthetic traces
  only.
* ``steady``, ``diurnal``, ``step``, ``bursty``: Poisson arrivals from
  :mod:`apps.fleetsim.workload` with token lengths fitted to the same Azure trace, one hour
  long at ``time_scale`` 1, with rates chosen to need a handful to a dozen L4 replicas.
  Prompts are capped at 4,800 tokens, the Azure trace's 99.5th percentile: the fitted
  log-normal's tail is much heavier than the real one (its 99th percentile is ~7,300
  tokens against 4,142 in the trace), and prompts that long cannot get a first token
  within 2 s on an L4 even with the GPU to themselves.
* any CSV with the columns ``TIMESTAMP,ContextTokens,GeneratedTokens``, timestamps as
  datetimes or as numbers in seconds or milliseconds (:func:`read_csv`).
* the evaluation matrix's workload mixes (:func:`mix`), sized per GPU profile.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from apps.fleetsim import workload
from apps.fleetsim.workload import (  # the mixes' lengths, shared with the load test
    CODE_LENGTHS,
    Request,
    TokenLengths,
    long_context_lengths,
)

AZURE_CONV = "azure-conv"
BASE_DURATION_S = 3600.0
LENGTHS = TokenLengths(prompt_max=4800)
MIN_DURATION_S = 60.0
_EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True)
class Trace:
    """A named request list. ``duration_s`` is the span the policies are run over."""

    name: str
    requests: tuple[Request, ...]
    duration_s: float
    description: str

    @property
    def mean_rate(self) -> float:
        return len(self.requests) / self.duration_s if self.duration_s > 0 else 0.0


def _scaled(requests: list[Request], time_scale: float) -> tuple[Request, ...]:
    if time_scale <= 0:
        raise ValueError("time_scale must be positive")
    if time_scale == 1.0:
        return tuple(requests)
    return tuple(
        Request(r.arrival_s / time_scale, r.prompt_tokens, r.output_tokens) for r in requests
    )


def _steady(seed: int) -> list[Request]:
    return workload.steady(5.0, BASE_DURATION_S, seed=seed, lengths=LENGTHS)


def _diurnal(seed: int) -> list[Request]:
    # One compressed day per hour, starting at the trough: 1.5 → 8.5 → 1.5 requests/s.
    return workload.diurnal(
        5.0,
        BASE_DURATION_S,
        amplitude=0.7,
        period_s=BASE_DURATION_S,
        phase_s=900.0,
        seed=seed,
        lengths=LENGTHS,
    )


def _step(seed: int) -> list[Request]:
    return workload.step(2.0, 7.0, BASE_DURATION_S, seed=seed, lengths=LENGTHS)


def _bursty(seed: int) -> list[Request]:
    return workload.burst(
        3.5,
        BASE_DURATION_S,
        burst_multiplier=2.0,
        mean_burst_interval_s=300.0,
        burst_duration_s=30.0,
        seed=seed,
        lengths=LENGTHS,
    )


SYNTHETIC: dict[str, tuple[Callable[[int], list[Request]], str]] = {
    "steady": (_steady, "Poisson, 5 req/s"),
    "diurnal": (_diurnal, "sinusoid 1.5-8.5 req/s, one period per hour"),
    "step": (_step, "2 req/s, 7 req/s in the middle third, 2 req/s"),
    "bursty": (_bursty, "3.5 req/s with 30 s spikes to 7 req/s, ~every 300 s"),
}


def synthetic(name: str, *, seed: int = 0, time_scale: float = 1.0) -> Trace:
    """One of the synthetic traces (see :data:`SYNTHETIC`)."""
    try:
        make, text = SYNTHETIC[name]
    except KeyError:
        raise ValueError(
            f"unknown synthetic trace {name!r}; use one of {sorted(SYNTHETIC)}"
        ) from None
    requests = _scaled(make(seed), time_scale)
    duration = BASE_DURATION_S / time_scale
    scale = "" if time_scale == 1.0 else f", time x{time_scale:g}"
    return Trace(name, requests, duration, f"synthetic: {text}{scale}, seed {seed}")


TIME_UNITS = ("auto", "datetime", "s", "ms")
COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")


@dataclass(frozen=True)
class CsvRead:
    """What :func:`read_csv` made of a file: the requests and how it read them."""

    requests: tuple[Request, ...]
    unit: str  # "datetime", "s" or "ms"
    skipped: int  # rows that could not be read (bad numbers, empty fields)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _tokens(text: str) -> int | None:
    value = _number(text.strip())
    if value is None or value < 0:
        return None
    return max(1, round(value))  # zero-token rows (failed calls) still occupy the fleet


def _timestamp(text: str) -> datetime | None:
    try:
        return workload._parse_trace_timestamp(text)
    except ValueError:
        return None


def _epoch_s(moment: datetime) -> float:
    # Naive datetimes are taken as UTC (no local-time or DST shift); aware ones converted.
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return (moment - _EPOCH).total_seconds()


def numeric_unit(values: Sequence[float]) -> str:
    """``"ms"`` or ``"s"`` for numeric timestamps.

    Epoch values tell by size (seconds since 1970 are ~1.7e9 today, milliseconds ~1.7e12).
    Relative values are read as milliseconds when seconds would make the trace longer than
    two days while milliseconds keep it within one, and as seconds otherwise.
    """
    hi, lo = max(values), min(values)
    if hi >= 1e11:
        return "ms"
    if hi >= 1e9:
        return "s"
    span = hi - lo
    return "ms" if span > 2 * 86_400 and span / 1000 <= 86_400 else "s"


def read_csv(path: str | Path, *, time_unit: str = "auto", time_scale: float = 1.0) -> CsvRead:
    """Requests from a CSV with the columns ``TIMESTAMP,ContextTokens,GeneratedTokens``.

    Column names match case-insensitively, in any order, with other columns ignored.
    ``TIMESTAMP`` holds datetimes (ISO 8601, as the Azure traces) or numbers in seconds or
    milliseconds (``time_unit`` "auto" tells which, see :func:`numeric_unit`). Rows whose
    fields cannot be read are skipped and counted; arrivals are made relative to the
    earliest, sorted, and divided by ``time_scale``. ValueError (with the reason) when the
    file has no such columns or no readable row.
    """
    if time_unit not in TIME_UNITS:
        raise ValueError(f"time unit must be one of {', '.join(TIME_UNITS)}")
    if not time_scale > 0 or not math.isfinite(time_scale):
        raise ValueError("time_scale must be a positive number")
    path = Path(path)
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: empty file")
        index = {name.strip().lower(): i for i, name in enumerate(header)}
        missing = [c for c in COLUMNS if c.lower() not in index]
        if missing:
            raise ValueError(
                f"{path}: missing column(s) {', '.join(missing)} (need {','.join(COLUMNS)})"
            )
        cols = [index[c.lower()] for c in COLUMNS]
        raw = [[row[i].strip() if i < len(row) else "" for i in cols] for row in reader if row]
    stamps = [r[0] for r in raw if r[0]]
    unit = time_unit
    if unit == "auto":
        numbers = [_number(x) for x in stamps]
        numeric = [x for x in numbers if x is not None]
        if numeric and len(numeric) * 2 >= len(stamps):
            unit = numeric_unit(numeric)
        else:
            unit = "datetime"
    rows: list[tuple[float, int, int]] = []
    skipped = 0
    for stamp, prompt_text, output_text in raw:
        prompt, output = _tokens(prompt_text), _tokens(output_text)
        t: float | None
        if unit == "datetime":
            moment = _timestamp(stamp) if stamp else None
            t = None if moment is None else _epoch_s(moment)
        else:
            t = _number(stamp) if stamp else None
            if t is not None and unit == "ms":
                t /= 1000.0
        if t is None or prompt is None or output is None:
            skipped += 1
            continue
        rows.append((t, prompt, output))
    if not rows:
        raise ValueError(f"{path}: no readable row ({skipped} skipped; timestamps read as {unit})")
    origin = min(r[0] for r in rows)
    rows.sort(key=lambda r: r[0])
    requests = tuple(Request((t - origin) / time_scale, p, o) for t, p, o in rows)
    return CsvRead(requests, unit, skipped)


def from_csv(
    path: str | Path,
    *,
    name: str | None = None,
    time_scale: float = 1.0,
    time_unit: str = "auto",
) -> Trace:
    """A trace from a CSV (see :func:`read_csv`). Its span runs to the last arrival, at
    least one minute."""
    path = Path(path)
    read = read_csv(path, time_unit=time_unit, time_scale=time_scale)
    duration = max(read.requests[-1].arrival_s, MIN_DURATION_S)
    scale = "" if time_scale == 1.0 else f", time x{time_scale:g}"
    skipped = f", {read.skipped} unreadable rows skipped" if read.skipped else ""
    text = f"{path.name} (timestamps as {read.unit}{scale}{skipped})"
    return Trace(name or path.stem, read.requests, duration, text)


def azure_conv(path: str | Path | None = None, *, time_scale: float = 1.0) -> Trace | None:
    """The Azure conversation trace, or None when this machine does not have it."""
    found = workload.find_azure_trace(*([path] if path else []))
    if found is None:
        return None
    trace = from_csv(found, name=AZURE_CONV, time_scale=time_scale)
    scale = "" if time_scale == 1.0 else f", time x{time_scale:g}"
    return Trace(AZURE_CONV, trace.requests, trace.duration_s, f"Azure LLM conv trace{scale}")


# =====================================================================================
# Workload mixes of the evaluation matrix
# =====================================================================================

# Load per GPU profile, relative to an L4: rates are multiplied by it (and a CSV trace's
# time compressed by it) so that each profile needs a handful to a dozen replicas.
LOAD_SCALE = {"L4": 1.0, "A100-80GB": 4.0, "H100-80GB": 6.0}


def _mix_requests(
    name: str, seed: int, duration: float, scale: float, max_len: int
) -> list[Request]:
    r = scale
    if name == "chat":
        return workload.steady(5.0 * r, duration, seed=seed, lengths=LENGTHS)
    if name == "code":
        return workload.diurnal(
            2.0 * r,
            duration,
            amplitude=0.4,
            period_s=duration,
            seed=seed,
            lengths=CODE_LENGTHS,
        )
    if name == "long-context":
        return workload.steady(1.0 * r, duration, seed=seed, lengths=long_context_lengths(max_len))
    if name == "bursty":
        return workload.burst(
            3.5 * r,
            duration,
            burst_multiplier=2.0,
            mean_burst_interval_s=300.0,
            burst_duration_s=30.0,
            seed=seed,
            lengths=LENGTHS,
        )
    if name == "diurnal":
        return workload.diurnal(
            5.0 * r,
            duration,
            amplitude=0.7,
            period_s=duration,
            phase_s=duration / 4,
            seed=seed,
            lengths=LENGTHS,
        )
    if name == "step":
        return workload.step(2.0 * r, 7.0 * r, duration, seed=seed, lengths=LENGTHS)
    raise ValueError(f"unknown workload mix {name!r}; use one of {', '.join(MIXES)}")


MIXES: dict[str, str] = {
    "chat": "chat: Poisson 5 req/s, Azure-conv lengths",
    "code": "code completion: prompts ~2,500 tokens, outputs ~40, diurnal 2 req/s +-40 %",
    "long-context": "long context: prompts ~5,000 tokens up to the context limit, 1 req/s",
    "bursty": "chat lengths, 3.5 req/s with 30 s spikes to 7 req/s ~every 300 s",
    "diurnal": "chat lengths, sinusoid 1.5-8.5 req/s, one period per trace",
    "step": "chat lengths, 2 req/s, 7 req/s in the middle third, 2 req/s",
}


def mix(name: str, gpu: str, *, seed: int, duration_s: float = 600.0) -> Trace:
    """Workload mix ``name`` (see :data:`MIXES`) sized for GPU profile ``gpu``: the rates
    are those of :data:`MIXES` (an L4's) times :data:`LOAD_SCALE`."""
    from apps.fleetsim.profiles import get_profile

    profile = get_profile(gpu)
    scale = LOAD_SCALE.get(profile.name, 1.0)
    requests = _mix_requests(name, seed, duration_s, scale, profile.max_model_len)
    load = "" if scale == 1.0 else f", rates x{scale:g}"
    return Trace(name, tuple(requests), duration_s, f"{MIXES[name]}{load}, seed {seed}")
