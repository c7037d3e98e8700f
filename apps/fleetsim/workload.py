"""Request streams for the fleet simulator: synthetic load patterns and trace replay.

Every generator is deterministic for a given ``seed`` and returns requests sorted by
arrival time, expressed in seconds from the start of the workload.

Token lengths default to log-normal distributions fitted to the public Azure LLM
inference trace (conversation service, November 2023; Patel et al., "Splitwise",
ISCA 2024; https://github.com/Azure/AzurePublicDataset). Over its 19,366 requests the
prompt length has mean 1155 tokens and its logarithm a standard deviation of about
0.99; the output length has mean 211 and a log standard deviation of about 0.86, with
a hard maximum of 1000. A log-normal reproduces the long right tail (a median well
below the mean) that makes KV-cache pressure bursty, which a Poisson or exponential
length model would understate.

Arrivals are Poisson processes. Time-varying rates (diurnal, step, burst) are drawn
by thinning (Lewis & Shedler, 1979): candidates are generated at the peak rate and
each is kept with probability ``rate(t) / peak``, which is exact for any bounded rate
function.
"""

from __future__ import annotations

import bisect
import csv
import math
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

__all__ = [
    "AZURE_CONV_LENGTHS",
    "AZURE_CONV_TRACE_PATH",
    "CHAT_LENGTHS",
    "CODE_LENGTHS",
    "LENGTH_PRESETS",
    "Request",
    "TokenLengths",
    "burst",
    "demand_series",
    "diurnal",
    "find_azure_trace",
    "long_context_lengths",
    "poisson_arrivals",
    "preset_lengths",
    "rate_at",
    "read_trace_csv",
    "repeat_requests",
    "sort_requests",
    "steady",
    "step",
]

# Where the shared copy of the Azure conversation trace lives on project machines.
# The project never vendors the data; callers must cope with it being absent.
AZURE_CONV_TRACE_PATH = Path("/work/shared/traces/AzureLLMInferenceTrace_conv.csv")


@dataclass(frozen=True, slots=True)
class Request:
    """One inference request as seen by the serving fleet."""

    arrival_s: float
    prompt_tokens: int
    output_tokens: int

    def __post_init__(self) -> None:
        if self.prompt_tokens < 1 or self.output_tokens < 1:
            raise ValueError(
                f"a request needs at least one prompt and one output token, got "
                f"prompt_tokens={self.prompt_tokens}, output_tokens={self.output_tokens}"
            )


@dataclass(frozen=True, slots=True)
class TokenLengths:
    """Log-normal prompt and output length distributions, parameterised by their means.

    ``*_sigma`` is the standard deviation of the logarithm. The underlying normal's mean
    is chosen so that the unclipped distribution has exactly the requested mean;
    clipping to ``[1, *_max]`` lowers the realised mean by a few percent for heavy tails.
    """

    prompt_mean: float = 1155.0
    prompt_sigma: float = 0.99
    prompt_max: int = 14_050
    output_mean: float = 211.0
    output_sigma: float = 0.86
    output_max: int = 1000

    def __post_init__(self) -> None:
        if self.prompt_mean < 1 or self.output_mean < 1:
            raise ValueError("mean token lengths must be at least 1")
        if self.prompt_sigma < 0 or self.output_sigma < 0:
            raise ValueError("log-normal sigmas must be non-negative")
        if self.prompt_max < 1 or self.output_max < 1:
            raise ValueError("maximum token lengths must be at least 1")

    def sample(self, rng: random.Random) -> tuple[int, int]:
        return (
            _lognormal_tokens(rng, self.prompt_mean, self.prompt_sigma, self.prompt_max),
            _lognormal_tokens(rng, self.output_mean, self.output_sigma, self.output_max),
        )


AZURE_CONV_LENGTHS = TokenLengths()

# Named length mixes, the same as the autoscaling benchmark's workload mixes
# (bench/autoscale/traces.py) and the built-in load test's presets.
# Chat: the Azure conversation fit with prompts capped at 4,800 tokens, the trace's
# 99.5th percentile (the fitted log-normal's tail is much heavier than the real one).
CHAT_LENGTHS = TokenLengths(prompt_max=4800)
# Code completion: long prompts (a file and its neighbours), short outputs.
CODE_LENGTHS = TokenLengths(
    prompt_mean=2500.0, prompt_sigma=0.7, prompt_max=16_000, output_mean=40.0, output_max=256
)
LENGTH_PRESETS = ("chat", "code", "long-context")


def long_context_lengths(max_model_len: int) -> TokenLengths:
    """Document QA / RAG: long prompts up to the context limit, medium outputs. The tail
    reaches ``max_model_len`` so that some requests do not fit at all."""
    return TokenLengths(
        prompt_mean=5000.0,
        prompt_sigma=0.8,
        prompt_max=max_model_len,
        output_mean=250.0,
        output_max=1000,
    )


def preset_lengths(name: str, max_model_len: int = 16_384) -> TokenLengths:
    """The length mix called ``name`` (one of :data:`LENGTH_PRESETS`); ``max_model_len``
    bounds the long-context prompts. ValueError for an unknown name."""
    if name == "chat":
        return CHAT_LENGTHS
    if name == "code":
        return CODE_LENGTHS
    if name == "long-context":
        return long_context_lengths(max_model_len)
    raise ValueError(f"unknown workload preset {name!r}; use one of {', '.join(LENGTH_PRESETS)}")


def _lognormal_tokens(rng: random.Random, mean: float, sigma: float, cap: int) -> int:
    mu = math.log(mean) - sigma * sigma / 2.0
    value = round(rng.lognormvariate(mu, sigma))
    return max(1, min(cap, value))


def _rngs(seed: int) -> tuple[random.Random, random.Random]:
    # Separate streams keep token lengths independent of how many arrival candidates
    # were drawn, so e.g. doubling a rate does not reshuffle the lengths of the
    # requests that both runs share at the start.
    return random.Random(f"arrivals:{seed}"), random.Random(f"lengths:{seed}")


def poisson_arrivals(
    rate_fn: Callable[[float], float],
    peak_rate: float,
    duration_s: float,
    *,
    seed: int = 0,
    lengths: TokenLengths = AZURE_CONV_LENGTHS,
) -> list[Request]:
    """Non-homogeneous Poisson arrivals with intensity ``rate_fn(t)`` (requests/s).

    ``peak_rate`` must bound ``rate_fn`` from above over ``[0, duration_s)``; values of
    ``rate_fn`` above it are clipped, which would silently lower the intended load.
    """
    if duration_s < 0:
        raise ValueError("duration_s must be non-negative")
    if peak_rate < 0:
        raise ValueError("peak_rate must be non-negative")
    arrivals_rng, lengths_rng = _rngs(seed)
    requests: list[Request] = []
    if peak_rate == 0:
        return requests
    t = 0.0
    while True:
        t += arrivals_rng.expovariate(peak_rate)
        if t >= duration_s:
            break
        if arrivals_rng.random() * peak_rate < rate_fn(t):
            prompt, output = lengths.sample(lengths_rng)
            requests.append(Request(t, prompt, output))
    return requests


def steady(
    rate_per_s: float,
    duration_s: float,
    *,
    seed: int = 0,
    lengths: TokenLengths = AZURE_CONV_LENGTHS,
) -> list[Request]:
    """Homogeneous Poisson arrivals at ``rate_per_s``."""
    return poisson_arrivals(
        lambda _t: rate_per_s, rate_per_s, duration_s, seed=seed, lengths=lengths
    )


def diurnal(
    mean_rate_per_s: float,
    duration_s: float,
    *,
    amplitude: float = 0.5,
    period_s: float = 86_400.0,
    phase_s: float = 0.0,
    seed: int = 0,
    lengths: TokenLengths = AZURE_CONV_LENGTHS,
) -> list[Request]:
    """Sinusoidal daily cycle: ``rate(t) = mean * (1 + amplitude * sin(2π (t - phase) / period))``.

    With the default phase the rate starts at the mean and rises; a compressed period
    (e.g. one hour) turns a day of traffic into a short demo.
    """
    if not 0.0 <= amplitude <= 1.0:
        raise ValueError("amplitude must be within [0, 1] so the rate never goes negative")
    if period_s <= 0:
        raise ValueError("period_s must be positive")
    omega = 2.0 * math.pi / period_s

    def rate(t: float) -> float:
        return mean_rate_per_s * (1.0 + amplitude * math.sin(omega * (t - phase_s)))

    return poisson_arrivals(
        rate, mean_rate_per_s * (1.0 + amplitude), duration_s, seed=seed, lengths=lengths
    )


def step(
    low_rate_per_s: float,
    high_rate_per_s: float,
    duration_s: float,
    *,
    step_start_s: float | None = None,
    step_end_s: float | None = None,
    seed: int = 0,
    lengths: TokenLengths = AZURE_CONV_LENGTHS,
) -> list[Request]:
    """Low rate, then ``high_rate_per_s`` during ``[step_start_s, step_end_s)``, then low again.

    Defaults put the high plateau in the middle third of the run.
    """
    start = duration_s / 3.0 if step_start_s is None else step_start_s
    end = 2.0 * duration_s / 3.0 if step_end_s is None else step_end_s
    if end < start:
        raise ValueError("step_end_s must not precede step_start_s")

    def rate(t: float) -> float:
        return high_rate_per_s if start <= t < end else low_rate_per_s

    return poisson_arrivals(
        rate, max(low_rate_per_s, high_rate_per_s), duration_s, seed=seed, lengths=lengths
    )


def burst(
    base_rate_per_s: float,
    duration_s: float,
    *,
    burst_multiplier: float = 5.0,
    mean_burst_interval_s: float = 300.0,
    burst_duration_s: float = 20.0,
    seed: int = 0,
    lengths: TokenLengths = AZURE_CONV_LENGTHS,
) -> list[Request]:
    """Poisson background load with short spikes of ``burst_multiplier`` times the base rate.

    Spike start times themselves form a Poisson process with mean spacing
    ``mean_burst_interval_s``, so spikes occasionally overlap or cluster the way flash
    crowds do; overlapping spikes do not stack.
    """
    if burst_multiplier < 1.0:
        raise ValueError("burst_multiplier must be at least 1")
    if mean_burst_interval_s <= 0 or burst_duration_s < 0:
        raise ValueError("burst spacing must be positive and burst duration non-negative")
    spikes_rng = random.Random(f"bursts:{seed}")
    starts: list[float] = []
    t = 0.0
    while True:
        t += spikes_rng.expovariate(1.0 / mean_burst_interval_s)
        if t >= duration_s:
            break
        starts.append(t)

    def rate(at: float) -> float:
        i = bisect.bisect_right(starts, at) - 1
        if i >= 0 and at < starts[i] + burst_duration_s:
            return base_rate_per_s * burst_multiplier
        return base_rate_per_s

    return poisson_arrivals(
        rate, base_rate_per_s * burst_multiplier, duration_s, seed=seed, lengths=lengths
    )


def _parse_trace_timestamp(text: str) -> datetime:
    # The Azure traces carry 7 fractional digits (100 ns ticks, .NET style) while
    # datetime only holds microseconds: truncate the digits beyond the sixth.
    # Sub-microsecond precision is irrelevant at request granularity.
    text = text.strip()
    head, dot, frac = text.partition(".")
    if dot:
        frac = (frac + "000000")[:6]
        text = f"{head}.{frac}"
    return datetime.fromisoformat(text)


def read_trace_csv(
    path: str | Path,
    time_scale: float = 1.0,
    limit: int | None = None,
) -> list[Request]:
    """Read a trace with header ``TIMESTAMP,ContextTokens,GeneratedTokens``.

    Arrival times are made relative to the first row's timestamp and divided by
    ``time_scale`` (2.0 replays twice as fast). ``limit`` keeps only the first rows.
    Rows with zero tokens, which some traces contain for failed calls, are clamped to
    one token so they still occupy the fleet.
    """
    if time_scale <= 0:
        raise ValueError("time_scale must be positive")
    if limit is not None and limit < 0:
        raise ValueError("limit must be non-negative")
    rows: list[tuple[datetime, int, int]] = []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        expected = {"TIMESTAMP", "ContextTokens", "GeneratedTokens"}
        missing = expected - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing trace columns {sorted(missing)}")
        for row in reader:
            if limit is not None and len(rows) >= limit:
                break
            rows.append(
                (
                    _parse_trace_timestamp(row["TIMESTAMP"]),
                    max(1, int(row["ContextTokens"])),
                    max(1, int(row["GeneratedTokens"])),
                )
            )
    if not rows:
        return []
    origin = min(r[0] for r in rows)
    requests = [
        Request((ts - origin).total_seconds() / time_scale, prompt, output)
        for ts, prompt, output in rows
    ]
    requests.sort(key=lambda r: r.arrival_s)
    return requests


def find_azure_trace(*candidates: str | Path) -> Path | None:
    """Locate the Azure conversation trace, or ``None`` when this machine lacks it.

    Looks at the explicit candidates first, then the shared location, then
    ``../shared/traces`` relative to the repository root.
    """
    repo_root = Path(__file__).resolve().parents[2]
    search = [
        *(Path(c) for c in candidates),
        AZURE_CONV_TRACE_PATH,
        repo_root.parent / "shared" / "traces" / AZURE_CONV_TRACE_PATH.name,
    ]
    for path in search:
        if path.is_file():
            return path
    return None


def repeat_requests(
    requests: Sequence[Request], times: int | None = None, gap_s: float = 0.0
) -> Iterator[Request]:
    """Replay a finite request list back to back, ``times`` times or forever.

    Each repetition is shifted by the span of the list plus ``gap_s``, which lets a
    real-time demo run on an hour-long trace indefinitely.
    """
    if not requests:
        return
    if gap_s < 0:
        raise ValueError("gap_s must be non-negative")
    span = requests[-1].arrival_s - requests[0].arrival_s + gap_s
    if span <= 0:
        span = 1.0
    first = requests[0].arrival_s
    round_no = 0
    while times is None or round_no < times:
        shift = round_no * span
        for r in requests:
            yield Request(r.arrival_s - first + shift, r.prompt_tokens, r.output_tokens)
        round_no += 1


def rate_at(requests: Sequence[Request], t: float, window_s: float = 60.0) -> float:
    """Mean arrival rate (requests/s) over the trailing window ``[t - window_s, t)``.

    ``requests`` must be sorted by arrival time, as every function here returns them.
    """
    if window_s <= 0:
        raise ValueError("window_s must be positive")
    lo = bisect.bisect_left(requests, t - window_s, key=_arrival)
    hi = bisect.bisect_left(requests, t, key=_arrival)
    return (hi - lo) / window_s


def demand_series(
    requests: Sequence[Request],
    step_s: float = 60.0,
    window_s: float | None = None,
    end_s: float | None = None,
) -> list[tuple[float, float, float]]:
    """``(t, requests/s, prompt+output tokens/s)`` sampled every ``step_s`` for plotting demand.

    Each sample averages over the trailing ``window_s`` (defaults to ``step_s``).
    """
    if step_s <= 0:
        raise ValueError("step_s must be positive")
    window = step_s if window_s is None else window_s
    if window <= 0:
        raise ValueError("window_s must be positive")
    if not requests:
        return []
    horizon = requests[-1].arrival_s if end_s is None else end_s
    token_prefix = [0]
    for r in requests:
        token_prefix.append(token_prefix[-1] + r.prompt_tokens + r.output_tokens)
    series: list[tuple[float, float, float]] = []
    t = step_s
    while t <= horizon + step_s:
        lo = bisect.bisect_left(requests, t - window, key=_arrival)
        hi = bisect.bisect_left(requests, t, key=_arrival)
        series.append((t, (hi - lo) / window, (token_prefix[hi] - token_prefix[lo]) / window))
        t += step_s
    return series


def _arrival(request: Request) -> float:
    return request.arrival_s


def sort_requests(requests: Iterable[Request]) -> list[Request]:
    """Sorted copy of ``requests`` by arrival time, for callers holding unsorted lists."""
    return sorted(requests, key=_arrival)
