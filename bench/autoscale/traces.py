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
* any CSV with the columns ``TIMESTAMP,ContextTokens,GeneratedTokens``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from apps.fleetsim import workload
from apps.fleetsim.workload import Request, TokenLengths

AZURE_CONV = "azure-conv"
BASE_DURATION_S = 3600.0
LENGTHS = TokenLengths(prompt_max=4800)


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


def from_csv(path: str | Path, *, name: str | None = None, time_scale: float = 1.0) -> Trace:
    """A trace from a CSV with the Azure columns (``TIMESTAMP,ContextTokens,GeneratedTokens``)."""
    path = Path(path)
    requests = workload.read_trace_csv(path, time_scale=time_scale)
    if not requests:
        raise ValueError(f"{path}: no requests")
    duration = requests[-1].arrival_s
    scale = "" if time_scale == 1.0 else f", time x{time_scale:g}"
    return Trace(name or path.stem, tuple(requests), duration, f"{path.name}{scale}")


def azure_conv(path: str | Path | None = None, *, time_scale: float = 1.0) -> Trace | None:
    """The Azure conversation trace, or None when this machine does not have it."""
    found = workload.find_azure_trace(*([path] if path else []))
    if found is None:
        return None
    trace = from_csv(found, name=AZURE_CONV, time_scale=time_scale)
    scale = "" if time_scale == 1.0 else f", time x{time_scale:g}"
    return Trace(AZURE_CONV, trace.requests, trace.duration_s, f"Azure LLM conv trace{scale}")
