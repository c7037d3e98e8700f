"""Replay a trace through a simulated deployment while a policy sets its replica count.

The loop, in simulated time (nothing sleeps):

* every ``sample_s`` (1 s) the deployment is advanced and its metrics are sampled, as a
  scraper would read the replicas' ``/metrics``: waiting and running requests, requests in
  flight (Knative's concurrency), KV-cache use and GPU utilisation of each ready replica;
* every ``eval_period_s`` the policy decides. It sees the samples only up to
  ``now - scrape_delay_s`` (what a Prometheus scrape and rule evaluation make visible),
  plus the replica counts as of now (a controller reads those from the API server);
* a change of replica count is applied at once (:meth:`SimulatedDeployment.scale`): new
  replicas serve after the cold start; removed ones stop getting requests and drain for
  up to ``drain_s`` (vLLM's ``--shutdown-timeout``; KServe sets 45 s), after which what
  they still hold is re-queued through the router (latencies keep counting from the
  first arrival). ``drain_s`` 0 is vLLM's default: in-flight requests are aborted on
  SIGTERM and retried at once (https://github.com/vllm-project/vllm/pull/36666,
  https://github.com/kserve/kserve/pull/5496).

Routing (``SimConfig.routing``):

* ``"queue"`` (the default, what the tables use): requests wait at the gateway, in
  arrival order, until a ready replica has room, i.e. could admit the request into its
  batch now: fewer than ``max_num_seqs`` sequences running and waiting, and KV cache for
  everything it holds plus this request (``Replica.has_room``). A replica that turns
  ready takes over the backlog at once, as behind production LLM routers with flow
  control (``SimulatedDeployment(flow_control=True)``, see :mod:`apps.fleetsim.fleet`).
  The gateway queue counts as waiting requests in the metrics.
* ``"bind"``: each request goes to the least-loaded ready replica on arrival and waits in
  that engine's queue, so replicas added later never take over an existing backlog
  (:class:`apps.fleetsim.fleet.SimulatedDeployment` as it is).

Requests that no replica of the profile can serve within the TTFT SLO (see
:class:`bench.autoscale.oracle.Feasibility`) are replayed like the others, but the figures
give the TTFT attainment both over every request and over the feasible ones.

Every policy runs with the same cold start, scrape delay, evaluation period, bounds and
starting replica count. After the trace's last arrival the replica count is frozen and the
requests still in flight are served to completion; GPU-hours are counted over the trace's
span, starting and draining replicas included (a GPU is paid for from the moment it is
provisioned until its pod is gone).
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from apps.fleetsim.fleet import SimulatedDeployment
from apps.fleetsim.histograms import VLLM_TTFT_BUCKETS, Histogram
from apps.fleetsim.profiles import GpuProfile, get_profile
from apps.fleetsim.replica import RequestRecord
from apps.fleetsim.workload import Request

ROUTINGS = ("queue", "bind")

# Fields sampled every step. "kv_avg" and "util_avg" are averages over the replicas ready
# at that moment (undefined when none is ready); the rest are deployment totals.
TOTALS = ("spec", "ready", "waiting", "running", "concurrency")
AVERAGES = ("kv_avg", "util_avg")
# Cumulative counters, deployment-wide with removed pods included, read every evaluation
# period (a scrape interval; samples in between repeat the last reading): requests
# finished successfully (``vllm:request_success_total``) and the TTFT histogram's buckets
# (``vllm:time_to_first_token_seconds``).
COUNTERS = ("finished",)


@dataclass(frozen=True)
class SimConfig:
    """What every policy shares in one run."""

    gpu: str = "L4"
    cold_start_s: float | None = None  # None: the GPU profile's own
    eval_period_s: float = 15.0
    scrape_delay_s: float = 15.0
    sample_s: float = 1.0
    min_replicas: int = 1
    max_replicas: int = 32
    initial_replicas: int = 1
    ttft_slo_s: float = 2.0
    itl_slo_s: float = 0.2
    price_per_gpu_hour: float = 1.0
    drain_s: float = 45.0
    seed: int = 0
    routing: str = "queue"
    standby: int = 0  # standby replicas kept asleep beside the spec (vLLM sleep mode)
    # The fast path (apps.metrics.fastpath): every fast_period_s between evaluations, a
    # controller with a ``fast`` method reads the ready replicas' own metrics, as they are
    # now, and may scale up at once. 0: none.
    fast_period_s: float = 0.0

    def __post_init__(self) -> None:
        if self.routing not in ROUTINGS:
            raise ValueError(f"routing must be one of {', '.join(ROUTINGS)}")
        if self.sample_s <= 0 or self.eval_period_s <= 0 or self.scrape_delay_s < 0:
            raise ValueError("sample and evaluation periods must be positive, the delay >= 0")
        ratio = self.eval_period_s / self.sample_s
        if abs(ratio - round(ratio)) > 1e-9:
            raise ValueError("eval_period_s must be a whole multiple of sample_s")
        if self.fast_period_s < 0:
            raise ValueError("fast_period_s must be >= 0")
        fast = self.fast_period_s / self.sample_s
        if self.fast_period_s and abs(fast - round(fast)) > 1e-9:
            raise ValueError("fast_period_s must be a whole multiple of sample_s")
        if self.drain_s < 0:
            raise ValueError("drain_s must be >= 0")
        if self.standby < 0:
            raise ValueError("standby must be >= 0")
        if not 0 < self.min_replicas <= self.initial_replicas <= self.max_replicas:
            raise ValueError("need 0 < min_replicas <= initial_replicas <= max_replicas")

    def profile(self) -> GpuProfile:
        profile = get_profile(self.gpu)
        if self.cold_start_s is not None:
            profile = replace(profile, cold_start_s=float(self.cold_start_s))
        return profile

    @property
    def cold_start(self) -> float:
        return self.profile().cold_start_s


def make_deployment(
    profile: GpuProfile, replicas: int, requests: Sequence[Request], cfg: SimConfig
) -> SimulatedDeployment:
    """The deployment for ``cfg.routing``: gateway flow control for "queue"."""
    return SimulatedDeployment(
        "bench",
        profile.model_name,
        "bench",
        profile,
        replicas,
        requests,
        seed=cfg.seed,
        flow_control=cfg.routing == "queue",
    )


class MetricLog:
    """Samples at a fixed step, with prefix sums so that window means cost O(1)."""

    def __init__(self) -> None:
        self.t: list[float] = []
        self.values: dict[str, list[float]] = {f: [] for f in (*TOTALS, *AVERAGES)}
        self._prefix: dict[str, list[float]] = {f: [0.0] for f in (*TOTALS, *AVERAGES)}
        self._valid = [0]  # prefix count of samples with at least one ready replica
        self.counters: dict[str, list[float]] = {f: [] for f in COUNTERS}
        # Cumulative TTFT histogram per sample: one count per bucket (non-cumulative
        # across buckets, as :class:`apps.fleetsim.histograms.Histogram` stores them).
        self.ttft_buckets: list[tuple[int, ...]] = []

    def record(
        self,
        t: float,
        sample: dict[str, float],
        counters: dict[str, float] | None = None,
        ttft_buckets: Sequence[int] = (),
    ) -> None:
        """Append one sample; ``counters`` and ``ttft_buckets`` are cumulative (zeros when
        not given)."""
        self.t.append(t)
        for name in COUNTERS:
            self.counters[name].append(float((counters or {}).get(name, 0.0)))
        self.ttft_buckets.append(tuple(ttft_buckets))
        has_ready = sample["ready"] > 0
        self._valid.append(self._valid[-1] + (1 if has_ready else 0))
        for name in TOTALS:
            v = float(sample[name])
            self.values[name].append(v)
            self._prefix[name].append(self._prefix[name][-1] + v)
        for name in AVERAGES:
            v = float(sample[name]) if has_ready else math.nan
            self.values[name].append(v)
            self._prefix[name].append(self._prefix[name][-1] + (v if has_ready else 0.0))

    def index_at(self, t: float) -> int:
        """Index of the last sample taken at or before ``t`` (-1 if none)."""
        return bisect.bisect_right(self.t, t + 1e-9) - 1

    def mean(self, name: str, lo: int, hi: int) -> float | None:
        """Mean of samples ``lo..hi`` inclusive; averages skip samples with no ready replica."""
        lo = max(lo, 0)
        if hi < lo:
            return None
        total = self._prefix[name][hi + 1] - self._prefix[name][lo]
        if name in AVERAGES:
            n = self._valid[hi + 1] - self._valid[lo]
        else:
            n = hi - lo + 1
        return total / n if n else None


class MetricsView:
    """What a policy deciding at ``now`` can see: samples up to ``now - delay_s``."""

    def __init__(self, log: MetricLog, now: float, delay_s: float) -> None:
        self.log = log
        self.now = now
        self.delay_s = delay_s
        self.index = log.index_at(now - delay_s)

    @property
    def available(self) -> bool:
        return self.index >= 0

    @property
    def age_s(self) -> float | None:
        return None if self.index < 0 else self.now - self.log.t[self.index]

    def latest(self, name: str) -> float | None:
        """The newest visible sample (None for an average when no replica was ready)."""
        if self.index < 0:
            return None
        v = self.log.values[name][self.index]
        return None if math.isnan(v) else v

    def mean(self, name: str, window_s: float) -> float | None:
        """Mean over the visible samples within the last ``window_s`` before the newest."""
        if self.index < 0:
            return None
        t_last = self.log.t[self.index]
        lo = self.log.index_at(t_last - window_s) + 1
        return self.log.mean(name, lo, self.index)

    def rate(self, counter: str, window_s: float) -> float | None:
        """Per-second increase of a cumulative counter over the last ``window_s`` of
        visible samples (Prometheus' ``rate``; shorter at the start of the trace). None
        before two samples are visible."""
        lo = self._window_start(window_s)
        if lo is None:
            return None
        values = self.log.counters[counter]
        return (values[self.index] - values[lo]) / (self.log.t[self.index] - self.log.t[lo])

    def _window_start(self, window_s: float) -> int | None:
        """The sample a window of ``window_s`` ending at the newest visible one starts
        from (the earliest there is), None when fewer than two are visible."""
        if self.index < 0:
            return None
        lo = max(0, self.log.index_at(self.log.t[self.index] - window_s))
        return None if lo >= self.index else lo

    def ttft_quantile(self, q: float, window_s: float) -> float | None:
        """``histogram_quantile(q, rate(ttft_bucket[window]))`` over the visible samples:
        the TTFT quantile of the first tokens given in the last ``window_s``, linear
        within a bucket. None when no first token was given in the window."""
        lo = self._window_start(window_s)
        if lo is None:
            return None
        now, then = self.log.ttft_buckets[self.index], self.log.ttft_buckets[lo]
        if not now:
            return None
        hist = Histogram(VLLM_TTFT_BUCKETS)
        hist.counts = [a - (then[i] if then else 0) for i, a in enumerate(now)]
        hist.count = sum(hist.counts)
        return hist.quantile(q) if hist.count else None


@dataclass(frozen=True)
class ScaleState:
    """Replica counts at decision time: what the controller reads from the platform."""

    now: float
    spec: int
    ready: int
    starting: tuple[float, ...]  # creation times of replicas still in their cold start
    min_replicas: int
    max_replicas: int


class Controller(Protocol):
    """A scaling policy instance. It keeps its own state between decisions."""

    name: str

    def decide(self, view: MetricsView, state: ScaleState) -> int: ...


@dataclass(frozen=True)
class FastReading:
    """What the fast path reads from the ready replicas themselves at ``now``, with no
    scrape delay: their waiting (the gateway's queue included) and running requests."""

    now: float
    waiting: float
    running: float


class FastController(Protocol):
    """A controller that also takes the fast path: ``fast`` returns the count to scale
    to at once, or None to leave the count to the next evaluation."""

    def fast(self, reading: FastReading, view: MetricsView, state: ScaleState) -> int | None: ...


@dataclass
class RunResult:
    trace: str
    policy: str
    requests: int
    ttft_ok: float
    itl_ok: float
    ttft_p50: float
    ttft_p95: float
    ttft_p99: float
    gpu_hours: float
    cost: float
    actions: int
    replicas_min: int
    replicas_max: int
    failed: int
    requeued: int
    wall_s: float
    # (t, spec, ready) after each evaluation, for plots.
    timeline: list[tuple[float, int, int]] = field(default_factory=list)
    infeasible: int = 0  # requests no replica can serve within the SLO (same for all)
    ttft_ok_feasible: float = math.nan  # TTFT attainment over the feasible requests
    at_max: float = 0.0  # share of the trace's span spent at the maximum replica count
    standby_gpu_hours: float = 0.0  # of gpu_hours, what standby replicas held

    def as_dict(self, *, timeline: bool = True) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if timeline or k != "timeline"}


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (the smallest value with at least ``q`` of the data at or
    below it); ``inf`` entries stand for requests that never got a first token."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def feasible_share(
    records: Sequence[RequestRecord], feasible: Sequence[bool], ttft_slo_s: float
) -> float:
    """TTFT attainment over the requests flagged feasible (request ids index ``feasible``);
    NaN when none is."""
    n = sum(feasible)
    if not n:
        return math.nan
    ok = sum(
        1
        for r in records
        if r.completed
        and r.ttft_s is not None
        and r.ttft_s <= ttft_slo_s
        and r.request_id < len(feasible)
        and feasible[r.request_id]
    )
    return ok / n


def _sample(dep: SimulatedDeployment, t: float) -> dict[str, float]:
    ready = dep.replicas[: dep.ready_replicas]
    waiting = running = in_engines = 0
    kv = util = 0.0
    for r in ready:
        waiting += r.num_waiting
        running += r.num_running
        in_engines += r.outstanding
        kv += r.kv_cache_usage
        util += r.gpu_utilization(t)
    n = len(ready)
    # The rest of what the deployment holds is in the gateway queue when no replica is
    # ready (it waits too), or on draining replicas, which are terminating pods: no
    # longer scraped, not counted. Draining needs a ready replica to have been removed
    # while the floor keeps at least one, so the two never overlap.
    if dep.flow_control:
        gateway = dep.gateway_queue_length  # a gateway with flow control exports its queue
    else:
        gateway = dep.outstanding() - in_engines if n == 0 else 0
    return {
        "spec": dep.spec_replicas,
        "ready": n,
        "waiting": waiting + gateway,
        "running": running,
        "concurrency": in_engines + gateway,
        "kv_avg": kv / n if n else math.nan,
        "util_avg": util / n if n else math.nan,
    }


def _counters(dep: SimulatedDeployment) -> tuple[dict[str, float], tuple[int, ...]]:
    """The deployment's cumulative counters (removed pods included) and TTFT buckets."""
    stats = dep.totals().stats
    return {"finished": float(stats.success)}, tuple(stats.ttft.counts)


def standby_gpus(dep: SimulatedDeployment, profile: GpuProfile) -> float:
    """GPUs the standby replicas hold now: a loaded (asleep) one ``standby_gpu_fraction``
    of a GPU, one still loading a whole GPU."""
    total = 0.0
    for pod, state in dep.replica_states().items():
        if state != "asleep":
            continue
        replica = dep.find_replica(pod)
        loading = replica is not None and replica.ready_at_s > dep.now
        total += 1.0 if loading else profile.standby_gpu_fraction
    return total


def _starting_times(dep: SimulatedDeployment, t: float) -> tuple[float, ...]:
    return tuple(r.created_at_s for r in dep.replicas[dep.ready_replicas :] if not r.is_ready(t))


def summarize(
    records: Sequence[RequestRecord], total: int, cfg: SimConfig
) -> tuple[float, float, float, float, float, int]:
    """(TTFT-ok share, ITL-ok share, p50, p95, p99, failed) over ``total`` requests.

    A request meets the TTFT SLO when it completed with ``ttft <= ttft_slo_s`` and the
    inter-token SLO when it completed with a mean inter-token latency ``<= itl_slo_s``
    (single-token answers have none and pass). Requests that failed or never finished
    miss both and count as an infinite TTFT in the percentiles.
    """
    done = {r.request_id: r for r in records if r.completed}
    ttfts = sorted(
        [r.ttft_s if r.ttft_s is not None else math.inf for r in done.values()]
        + [math.inf] * (total - len(done))
    )
    ttft_ok = sum(1 for r in done.values() if r.ttft_s is not None and r.ttft_s <= cfg.ttft_slo_s)
    itl_ok = sum(1 for r in done.values() if r.mean_itl_s is None or r.mean_itl_s <= cfg.itl_slo_s)
    n = max(total, 1)
    return (
        ttft_ok / n,
        itl_ok / n,
        percentile(ttfts, 0.50),
        percentile(ttfts, 0.95),
        percentile(ttfts, 0.99),
        total - len(done),
    )


def run(
    trace_name: str,
    requests: Sequence[Request],
    duration_s: float,
    controller: Controller,
    cfg: SimConfig,
    feasible: Sequence[bool] | None = None,
) -> RunResult:
    """Replay ``requests`` for ``duration_s`` with ``controller`` in charge of the count.
    ``feasible`` flags the requests that count for the feasible attainment (all: None)."""
    wall0 = time.perf_counter()
    profile = cfg.profile()
    dep = make_deployment(profile, cfg.initial_replicas, requests, cfg)
    if cfg.standby:
        # Loaded at the start, as the initial replicas are ready at the start.
        dep.set_standby(cfg.standby, loaded=True)
    flags = [True] * len(requests) if feasible is None else list(feasible)
    at_max_s = 0.0
    log = MetricLog()
    steps = math.ceil(duration_s / cfg.sample_s - 1e-9)
    eval_every = round(cfg.eval_period_s / cfg.sample_s)
    spec = dep.spec_replicas
    gpu_s = 0.0
    standby_gpu_s = 0.0
    counters: dict[str, float] = {}
    ttft: tuple[int, ...] = ()
    actions = 0
    lo = hi = spec
    timeline: list[tuple[float, int, int]] = [(0.0, spec, dep.ready_replicas)]
    fast_every = round(cfg.fast_period_s / cfg.sample_s) if cfg.fast_period_s else 0
    fast_controller: FastController | None = (
        controller if fast_every and hasattr(controller, "fast") else None  # type: ignore[assignment]
    )

    def state_at(t: float) -> ScaleState:
        return ScaleState(
            t, spec, dep.ready_replicas, _starting_times(dep, t), cfg.min_replicas, cfg.max_replicas
        )

    def apply(desired: int) -> None:
        nonlocal spec, actions, lo, hi
        desired = max(cfg.min_replicas, min(cfg.max_replicas, int(desired)))
        if desired != spec:
            dep.scale(desired, drain_s=cfg.drain_s)
            spec = desired
            actions += 1
            lo, hi = min(lo, spec), max(hi, spec)

    for k in range(1, steps + 1):
        t = k * cfg.sample_s
        dep.advance(t)
        standby_s = cfg.sample_s * standby_gpus(dep, profile) if cfg.standby else 0.0
        standby_gpu_s += standby_s
        gpu_s += cfg.sample_s * (spec + dep.draining_replicas) + standby_s
        if spec >= cfg.max_replicas:
            at_max_s += cfg.sample_s
        if k % eval_every == 0 or k == 1:  # counters are scraped every evaluation period
            counters, ttft = _counters(dep)
        sample = _sample(dep, t)
        log.record(t, sample, counters, ttft)
        if fast_controller is not None and k % fast_every == 0 and k % eval_every:
            # The replicas' own gauges, read every fast period between evaluations.
            reading = FastReading(t, sample["waiting"], sample["running"])
            quick = fast_controller.fast(
                reading, MetricsView(log, t, cfg.scrape_delay_s), state_at(t)
            )
            if quick is not None:
                apply(quick)
                timeline.append((t, spec, dep.ready_replicas))
        if k % eval_every:
            continue
        apply(controller.decide(MetricsView(log, t, cfg.scrape_delay_s), state_at(t)))
        timeline.append((t, spec, dep.ready_replicas))
    end = steps * cfg.sample_s
    # Serve what is still in flight with the count frozen (bounded: a stuck queue ends it).
    t = end
    while not dep.is_idle() and t < end + 3600.0:
        t += 60.0
        dep.advance(t)
    records = dep.completed()
    ttft_ok, itl_ok, p50, p95, p99, failed = summarize(records, len(requests), cfg)
    gpu_hours = gpu_s / 3600.0
    return RunResult(
        trace=trace_name,
        policy=controller.name,
        requests=len(requests),
        ttft_ok=ttft_ok,
        itl_ok=itl_ok,
        ttft_p50=p50,
        ttft_p95=p95,
        ttft_p99=p99,
        gpu_hours=gpu_hours,
        cost=gpu_hours * cfg.price_per_gpu_hour,
        actions=actions,
        replicas_min=lo,
        replicas_max=hi,
        failed=failed,
        requeued=dep.totals().requeued,
        wall_s=time.perf_counter() - wall0,
        timeline=timeline,
        infeasible=len(flags) - sum(flags),
        ttft_ok_feasible=feasible_share(records, flags, cfg.ttft_slo_s),
        at_max=at_max_s / max(steps * cfg.sample_s, 1e-9),
        standby_gpu_hours=standby_gpu_s / 3600.0,
    )
