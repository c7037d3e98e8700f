"""The engine's inputs and outputs: policy, observations, replica counts, history, decision.

Plain frozen dataclasses with their own validation; nothing here decides anything. The
replica arithmetic guard (:func:`ceil_count`, :func:`floor_count`) lives here too because
targets and rules both round counts the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal, NamedTuple, Protocol

Mode = Literal["off", "dry-run", "enforce"]
TargetKind = Literal["per_replica_average", "utilization", "latency_slo", "demand_capacity"]
ScalingPolicyType = Literal["pods", "percent"]
SelectPolicy = Literal["max", "min", "disabled"]

MODES: Final = ("off", "dry-run", "enforce")
TARGET_KINDS: Final = ("per_replica_average", "utilization", "latency_slo", "demand_capacity")
SELECT_POLICIES: Final = ("max", "min", "disabled")
SLO_BURN_RATE: Final = "slo_burn_rate"
OK: Final = "ok"
DAY_S: Final = 86400

# Replica arithmetic is done in floats; without a guard, 0.33 / 0.03 = 11.000000000000002
# would ask for 12 replicas (Kubernetes computes in float64 too and can overshoot like this;
# we follow the documented formula instead). Metric values carry a few significant digits, so
# exact ratios are whole or well over 1e-9 away from whole: a relative 1e-12 removes only noise.
EPS: Final = 1e-12


def taken(obs: Obs | None, now: float) -> float:
    """When the value of ``obs`` read at ``now`` was taken: ``now`` less its age, if known."""
    age = obs.age_s if obs is not None and obs.age_s is not None else 0.0
    return now - max(0.0, age) if math.isfinite(age) else now


# Above this, one replica (g(1) = 1 - pooling) would have next to no capacity.
MAX_POOLING = 0.9


def pool_gain(pooling: float, replicas: float) -> float:
    """``g(N) = 1 - pooling / sqrt(N)``: the share of a replica's capacity in an endless
    pool that one of ``replicas`` gets (see :class:`CapacitySizing`)."""
    return 1.0 - pooling / math.sqrt(max(replicas, 1.0))


def pooling_from(pool_a: int, per_replica_a: float, pool_b: int, per_replica_b: float) -> float:
    """The ``pooling`` that load tests at two pool sizes give (capacity per replica at
    each), within [0, MAX_POOLING]: solves ``c_b / c_a = g(b) / g(a)``. A larger pool that
    sustains no more per replica gives 0."""
    if pool_a == pool_b or per_replica_a <= 0 or per_replica_b <= 0:
        raise ValueError("two different pool sizes with positive capacities are needed")
    if pool_a > pool_b:
        pool_a, per_replica_a, pool_b, per_replica_b = pool_b, per_replica_b, pool_a, per_replica_a
    r = per_replica_b / per_replica_a
    if r <= 1.0:
        return 0.0
    # r > 1 makes the denominator positive: r / sqrt(a) > 1 / sqrt(a) > 1 / sqrt(b).
    return min(MAX_POOLING, (r - 1.0) / (r / math.sqrt(pool_a) - 1.0 / math.sqrt(pool_b)))


def ceil_count(x: float) -> int:
    return math.ceil(x - EPS * max(1.0, abs(x)))


def floor_count(x: float) -> int:
    return math.floor(x + EPS * max(1.0, abs(x)))


# --------------------------------------------------------------------------- inputs


class ObservationLike(Protocol):
    """What :meth:`Obs.from_observation` reads (``apps.metrics.collection.Observation``)."""

    @property
    def value(self) -> float | None: ...
    @property
    def timestamp(self) -> float | None: ...
    @property
    def status(self) -> str: ...
    @property
    def reason(self) -> str: ...


@dataclass(frozen=True)
class Obs:
    """One signal's latest reading.

    ``value``: the stable-window value; a deployment total for ``per_replica_average``
    targets, an average over ready replicas for ``utilization``, seconds for latency. It is
    only read when ``status`` is "ok" (ok | missing | stale | unsupported | unavailable, as
    in ``apps.metrics.collection``; any other string, e.g. "failed", is unusable too).
    ``age_s``: age of the data behind it, if known. ``panic_value``: the same signal over the
    short panic window, when the collector can produce one. ``reason``: why it is not ok.
    """

    value: float | None
    age_s: float | None = None
    status: str = OK
    panic_value: float | None = None
    reason: str = ""

    @classmethod
    def from_observation(cls, observation: ObservationLike, now: float) -> Obs:
        """Adapt a collector Observation (which carries a scrape timestamp) to an Obs."""
        ts = observation.timestamp
        age = None if ts is None else max(0.0, now - ts)
        return cls(observation.value, age, observation.status, None, observation.reason)


@dataclass(frozen=True)
class Target:
    """Scale so that ``signal`` stays at ``value``, read according to ``kind``.

    ``value`` is per replica for ``per_replica_average``, a 0-1 level for ``utilization``, an
    absolute threshold (seconds) for ``latency_slo``, and for ``demand_capacity`` the
    utilisation target (0-1) at which each replica runs against its capacity; ``signal`` is
    then the demand (requests/s or tokens/s, see :class:`CapacitySizing`).
    """

    signal: str
    value: float
    kind: TargetKind = "per_replica_average"

    def __post_init__(self) -> None:
        if not self.signal:
            raise ValueError("a target needs a signal")
        if self.kind not in TARGET_KINDS:
            raise ValueError(f"unknown target kind {self.kind!r}; use one of {TARGET_KINDS}")
        if not (math.isfinite(self.value) and self.value > 0):
            raise ValueError(f"target value for {self.signal} must be a positive number")
        if self.kind == "demand_capacity" and self.value > 1:
            raise ValueError(
                f"the demand_capacity target for {self.signal} is a utilisation target: "
                "give a value above 0 and at most 1 (e.g. 0.8)"
            )


class ScalingPolicy(NamedTuple):
    """One HPA behavior policy: change by at most ``value`` pods or percent per ``period_s``."""

    type: ScalingPolicyType
    value: int
    period_s: int


class CronMinimum(NamedTuple):
    """A floor of ``min_replicas`` from ``start_s`` to ``end_s`` (UTC seconds of day).

    ``start_s > end_s`` wraps past midnight (22:00-06:00).
    """

    start_s: int
    end_s: int
    min_replicas: int


@dataclass(frozen=True)
class SloBoost:
    """Scale up by ``step_percent`` (at least one replica) while ``slo_burn_rate`` ≥ threshold.

    14.4 is the SRE workbook's fast-burn page threshold (2 % of a 30-day budget in 1 h).
    """

    enabled: bool = False
    fast_burn_threshold: float = 14.4
    step_percent: float = 25.0


@dataclass(frozen=True)
class CapacitySizing:
    """How ``demand_capacity`` targets size a deployment: demand over learned capacity.

    desired = ceil((demand + backlog / drain time) / (capacity per replica * target)), where
    demand is the target's signal (finished requests/s or tokens/s) plus the growth of the
    backlog, which is demand the replicas did not finish. For requests/s with
    ``running_requests`` read as well, the growth is that of everything the deployment holds
    (waiting + running) and may be negative: demand is then what arrived (finished + the
    change of what is held), so a backlog being drained by new replicas is not mistaken for
    new demand, and requests that started but did not finish yet count at once. The
    backlog is ``backlog_signal``
    (waiting requests; "" for none) and the drain time is ``backlog_drain_s`` (None: the
    policy's cold start, at least ``MIN_DRAIN_S``).

    Capacity per replica, in the demand signal's unit, starts at ``initial_per_replica`` (the
    GPU/model profile) and is learned online from what the ready replicas sustained, kept in
    :attr:`History.capacity`. An interval teaches something only when the replicas were busy
    (throughput per ready replica at least ``learn_min_utilization`` of the estimate, or a
    backlog of at least one request per ready replica) and every reading involved is usable:

    - latency (``latency_signal``) above ``latency_slo_s`` with a backlog: capacity at the
      SLO is at most what they did, so the estimate moves down towards it. Without a backlog
      a breach teaches nothing: nothing waited, so the latency is the requests' own (long
      prompts whose prefill alone nears the SLO) and more replicas would not shorten it;
    - a backlog with latency within the SLO (or no latency SLO set): the replicas ran flat
      out, so their throughput is the capacity (within the SLO: at least it), and the
      estimate moves towards it (within the SLO: only up);
    - latency at most ``probe_latency_ratio`` of the SLO without a backlog while they did
      more than the estimate: capacity is at least what they did, so the estimate moves up
      towards it. Low latency at or below the estimate teaches nothing: LLM latency stays
      low until the KV cache fills and then climbs steeply, so raising the estimate on low
      latency alone walks it to that cliff.

    Moves are an EWMA with weight ``learn_rate``; the estimate stays within
    [initial / ``learn_range``, initial x ``learn_range``].

    Pooling: behind a gateway queue, a replica of a larger pool sustains more at the same
    SLO (the queue's fluctuations average out over more servers). Capacity per replica is
    taken as ``c(N) = c(pool_size) * g(N) / g(pool_size)`` with ``g(N) = 1 - pooling /
    sqrt(N)`` (square-root staffing). ``initial_per_replica`` and the learned estimate are
    per replica of a pool of ``pool_size`` (the load test's); the replicas needed for a
    demand solve ``N * c(N) >= demand / target``, and what ``ready`` replicas sustained is
    brought to ``pool_size`` before it is learned. ``pooling`` 0 (the default) is no
    pooling: every count has the same capacity per replica. :func:`pooling_from` fits it to
    load tests at two pool sizes.

    Scale-down never goes below what the highest demand of the last ``peak_window_s`` needs
    at the current estimate (``History.demand_samples``), and a proposal below the current
    count must be below it by more than the policy's tolerance; scale-up has no dead band.

    Forecast floor (off unless ``forecast_periods_s`` is given, e.g. (86400,) for a daily
    pattern): the demand is also kept as ``forecast_bucket_s`` means over the longest period
    (``History.demand_buckets``); the highest mean one period ago over the next drain time,
    times the trend (the last hour's mean against the same hour one period earlier, within
    0.5-2), is a floor for the proposal, so known peaks are met before they arrive.
    """

    initial_per_replica: float = 1.0
    backlog_signal: str = "queue_length"
    backlog_drain_s: float | None = None
    latency_signal: str = "ttft_p95"
    latency_slo_s: float | None = None
    learn_rate: float = 0.2
    learn_min_utilization: float = 0.5
    probe_latency_ratio: float = 0.5
    learn_range: float = 2.0
    peak_window_s: float = 600.0
    forecast_periods_s: tuple[float, ...] = ()
    forecast_bucket_s: float = 300.0
    pooling: float = 0.0
    pool_size: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "forecast_periods_s", tuple(self.forecast_periods_s))
        if any(not p >= 3600 for p in self.forecast_periods_s):
            raise ValueError("forecast periods must be at least 3600 s (e.g. 86400, 604800)")
        if not self.forecast_bucket_s >= 60:
            raise ValueError("forecast_bucket_s must be at least 60 s")
        if not (math.isfinite(self.initial_per_replica) and self.initial_per_replica > 0):
            raise ValueError("initial capacity per replica must be a positive number")
        if self.backlog_drain_s is not None and not self.backlog_drain_s > 0:
            raise ValueError("backlog_drain_s must be positive")
        if self.latency_slo_s is not None and not self.latency_slo_s > 0:
            raise ValueError("latency_slo_s must be positive")
        if not 0 < self.learn_rate <= 1:
            raise ValueError("learn_rate must be above 0 and at most 1")
        if not 0 < self.learn_min_utilization <= 1:
            raise ValueError("learn_min_utilization must be above 0 and at most 1")
        if not 0 < self.probe_latency_ratio < 1:
            raise ValueError("probe_latency_ratio must be between 0 and 1")
        if not self.learn_range >= 1:
            raise ValueError("learn_range must be at least 1")
        if self.peak_window_s < 0:
            raise ValueError("peak_window_s must not be negative")
        if not 0 <= self.pooling <= MAX_POOLING:
            raise ValueError(f"pooling must be between 0 and {MAX_POOLING:g}")
        if isinstance(self.pool_size, bool) or not isinstance(self.pool_size, int):
            raise ValueError("pool_size must be a whole number of replicas")
        if self.pool_size < 1:
            raise ValueError("pool_size must be at least 1")

    @property
    def capacity_bounds(self) -> tuple[float, float]:
        return (
            self.initial_per_replica / self.learn_range,
            self.initial_per_replica * self.learn_range,
        )


MIN_DRAIN_S: Final = 30.0
DEFAULT_CAPACITY: Final = CapacitySizing()

# Kubernetes HPA defaults (autoscaling/v2 behavior).
DEFAULT_SCALE_UP_POLICIES: Final = (ScalingPolicy("percent", 100, 15), ScalingPolicy("pods", 4, 15))
DEFAULT_SCALE_DOWN_POLICIES: Final = (ScalingPolicy("percent", 100, 15),)
DEFAULT_SLO_BOOST: Final = SloBoost()
DEFAULT_LOAD_SIGNALS: Final = ("queue_length", "running_requests")


@dataclass(frozen=True)
class Policy:
    """How one deployment scales. Defaults reproduce Kubernetes HPA.

    Replica bounds: ``min_replicas`` is the floor while serving (at least 1); only the
    scale-to-zero rule goes below it. ``cron_minimums`` raise the floor while active;
    ``max_replicas`` always wins over them.

    Tolerance: a target whose ratio to 1 is within ``tolerance`` (relative, as HPA) proposes
    the current count; so does one whose proposal is within ``tolerance_abs_replicas`` of it.

    Stabilization (seconds, as HPA): the recommendation used is the lowest over the scale-up
    window and the highest over the scale-down window, including the new one.

    Rate limits (as HPA behavior): ``scale_*_policies`` limit the change per period, counting
    replicas already added / removed in that period from ``History.scale_events``;
    ``scale_*_select`` picks the policy allowing the most ("max"), the least ("min"), or
    forbids that direction ("disabled").

    Panic (Knative KPA): when the short-window demand over ready replicas reaches
    ``panic_threshold`` (2.0 = 200 %), panic mode starts; it scales to the higher of the
    stable and short-window demand, never scales down, and ends ``stable_window_s`` after the
    condition last held. Short-window values come from ``Obs.panic_value`` or, failing that,
    the mean of the current reading and ``History.signal_samples[signal]`` within the last
    ``panic_window_s``.
    Latency targets take no part (a 6 s latency percentile is noise).

    Scale to zero: only after ``load_signals`` (summed) have been *observed* at zero, with no
    gap longer than ``load_sample_max_gap_s``, for ``idle_period_s``; a timer alone never
    does it. From zero, activate once load ≥ ``activation_threshold``. At zero the engines
    export nothing, so the load signals must come from something that outlives them (a
    gateway or router metric, e.g. "custom:gateway_pending").

    ``cold_start_s``: how long a new replica takes to become ready; no scale-down while any
    replica has been starting for less than that (0 disables the hold).

    ``max_metric_age_s``: readings older than this are treated as stale even if marked ok.
    """

    min_replicas: int
    max_replicas: int
    targets: tuple[Target, ...]
    mode: Mode = "dry-run"
    tolerance: float = 0.1
    tolerance_abs_replicas: int | None = None
    scale_up_stabilization_s: float = 0.0
    scale_down_stabilization_s: float = 300.0
    scale_up_policies: tuple[ScalingPolicy, ...] = DEFAULT_SCALE_UP_POLICIES
    scale_up_select: SelectPolicy = "max"
    scale_down_policies: tuple[ScalingPolicy, ...] = DEFAULT_SCALE_DOWN_POLICIES
    scale_down_select: SelectPolicy = "max"
    panic_enabled: bool = False
    stable_window_s: float = 60.0
    panic_window_s: float = 6.0
    panic_threshold: float = 2.0
    scale_to_zero_enabled: bool = False
    idle_period_s: float = 600.0
    activation_threshold: float = 1.0
    load_signals: tuple[str, ...] = DEFAULT_LOAD_SIGNALS
    load_sample_max_gap_s: float = 60.0
    cron_minimums: tuple[CronMinimum, ...] = ()
    cold_start_s: float = 0.0
    slo_boost: SloBoost = DEFAULT_SLO_BOOST
    latency_scale_down_ratio: float = 0.5
    max_metric_age_s: float | None = None
    capacity: CapacitySizing = DEFAULT_CAPACITY

    def __post_init__(self) -> None:
        # Accept lists and plain tuples where tuples of records are expected.
        object.__setattr__(self, "targets", tuple(self.targets))
        object.__setattr__(
            self, "scale_up_policies", tuple(ScalingPolicy(*p) for p in self.scale_up_policies)
        )
        object.__setattr__(
            self,
            "scale_down_policies",
            tuple(ScalingPolicy(*p) for p in self.scale_down_policies),
        )
        object.__setattr__(
            self, "cron_minimums", tuple(CronMinimum(*c) for c in self.cron_minimums)
        )
        object.__setattr__(self, "load_signals", tuple(self.load_signals))
        if not isinstance(self.slo_boost, SloBoost):
            object.__setattr__(self, "slo_boost", SloBoost(*self.slo_boost))
        if not isinstance(self.capacity, CapacitySizing):
            raise ValueError("capacity must be a CapacitySizing")
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; use one of {MODES}")
        if self.min_replicas < 0:
            raise ValueError("min_replicas must not be negative")
        if self.max_replicas < max(self.min_replicas, 1):
            raise ValueError("max_replicas must be at least min_replicas and at least 1")
        if not self.targets:
            raise ValueError("a policy needs at least one target")
        if sum(1 for t in self.targets if t.kind == "demand_capacity") > 1:
            raise ValueError("a policy takes at most one demand_capacity target")
        if self.tolerance < 0 or (self.tolerance_abs_replicas or 0) < 0:
            raise ValueError("tolerances must not be negative")
        if self.scale_up_stabilization_s < 0 or self.scale_down_stabilization_s < 0:
            raise ValueError("stabilization windows must not be negative")
        for direction, policies, select in (
            ("up", self.scale_up_policies, self.scale_up_select),
            ("down", self.scale_down_policies, self.scale_down_select),
        ):
            if select not in SELECT_POLICIES:
                raise ValueError(f"scale_{direction}_select must be one of {SELECT_POLICIES}")
            if select != "disabled" and not policies:
                raise ValueError(f"scale-{direction} needs at least one policy unless disabled")
            for p in policies:
                if p.type not in ("pods", "percent") or p.value <= 0 or p.period_s <= 0:
                    raise ValueError(f"invalid scale-{direction} policy {p!r}")
        if self.panic_enabled and not (
            self.panic_threshold > 0 and self.panic_window_s > 0 and self.stable_window_s > 0
        ):
            raise ValueError("panic needs positive windows and threshold")
        if self.idle_period_s < 0 or self.activation_threshold < 0 or self.cold_start_s < 0:
            raise ValueError(
                "idle period, activation threshold and cold start must not be negative"
            )
        if self.load_sample_max_gap_s <= 0:
            raise ValueError("load_sample_max_gap_s must be positive")
        if self.scale_to_zero_enabled and not self.load_signals:
            raise ValueError("scale to zero needs at least one load signal")
        if self.scale_to_zero_enabled and self.activation_threshold <= 0:
            # Load is never below zero: a zero threshold would activate at once, every time.
            raise ValueError("scale to zero needs a positive activation_threshold")
        for c in self.cron_minimums:
            if not (0 <= c.start_s <= DAY_S and 0 <= c.end_s <= DAY_S) or c.start_s == c.end_s:
                raise ValueError(f"cron minimum {c!r}: bounds must be distinct seconds of day")
            if c.min_replicas < 0:
                raise ValueError(f"cron minimum {c!r}: min_replicas must not be negative")
        if not 0 < self.latency_scale_down_ratio < 1:
            raise ValueError("latency_scale_down_ratio must be between 0 and 1")

    @property
    def sizes_by_demand(self) -> bool:
        return any(t.kind == "demand_capacity" for t in self.targets)

    @property
    def forecast_horizon_s(self) -> float:
        """How long demand buckets are kept for the forecast floor (0: not at all)."""
        periods = self.capacity.forecast_periods_s
        if not (self.sizes_by_demand and periods):
            return 0.0
        return max(periods) + 3600.0 + self.capacity.forecast_bucket_s

    @property
    def history_horizon_s(self) -> float:
        """How far back :class:`History` needs to reach for this policy."""
        periods = [p.period_s for p in (*self.scale_up_policies, *self.scale_down_policies)]
        return float(
            max(
                self.scale_up_stabilization_s,
                self.scale_down_stabilization_s,
                self.stable_window_s,
                self.idle_period_s if self.scale_to_zero_enabled else 0.0,
                self.capacity.peak_window_s if self.sizes_by_demand else 0.0,
                *periods,
            )
        )


@dataclass(frozen=True)
class ReplicaState:
    """Replica counts at decision time.

    ``spec``: the count set on the target. ``ready``: replicas serving. ``starting``: start
    times (seconds, same clock as ``now``) of replicas not yet ready. ``observed_spec``: the
    count the platform reports right now, if read separately; ``last_applied``: what the
    control plane last set. When both are given and differ, someone else changed it (drift).
    ``measured``: how many replicas produced the readings, when that is not ``ready`` (a
    replay of recorded data: the replicas that actually served); capacity is learned per
    measured replica.
    """

    spec: int
    ready: int
    starting: tuple[float, ...] = ()
    observed_spec: int | None = None
    last_applied: int | None = None
    measured: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "starting", tuple(self.starting))
        if self.spec < 0 or self.ready < 0 or (self.observed_spec or 0) < 0:
            raise ValueError("replica counts must not be negative")


Samples = tuple[tuple[float, float], ...]


class Capacity(NamedTuple):
    """Learned capacity per replica (demand signal units) and the intervals it came from."""

    per_replica: float
    intervals: int


@dataclass(frozen=True)
class History:
    """What the engine remembers between decisions, all kept by the caller.

    ``recommendations``: (time_s, replicas), the raw recommendation of each past decision.
    ``scale_events``: (time_s, from, to) for each applied change. ``load_samples``: (time_s,
    load) as in ``Decision.load``, for idle detection. ``signal_samples``: per signal,
    (time_s, value) readings for short-window (panic) values. ``panic_last_s``: when the
    panic condition last held (``Decision.panic_last_s``). ``capacity``: the learned capacity
    per replica and how many intervals it was learned from (``Decision.capacity``; None: not
    learned yet). ``demand_samples``: (time_s, demand) of ``demand_capacity`` sizing, for the
    peak floor.
    """

    recommendations: tuple[tuple[float, int], ...] = ()
    scale_events: tuple[tuple[float, int, int], ...] = ()
    load_samples: Samples = ()
    signal_samples: Mapping[str, Samples] = field(default_factory=dict)
    panic_last_s: float | None = None
    capacity: Capacity | None = None
    demand_samples: Samples = ()
    demand_buckets: tuple[tuple[float, float, int], ...] = ()

    def advance(
        self,
        decision: Decision,
        now: float,
        *,
        applied: bool,
        keep_s: float,
        bucket_s: float = 300.0,
        bucket_keep_s: float = 0.0,
    ) -> History:
        """The history after ``decision``: append what it produced, drop what is older than
        ``keep_s`` (use ``Policy.history_horizon_s``). ``applied`` says whether the change
        was made (enforce mode); only applied changes are scale events. Demand buckets of
        ``bucket_s`` are kept for ``bucket_keep_s`` (0: none)."""
        cutoff = now - keep_s
        recs = (*(r for r in self.recommendations if r[0] > cutoff), (now, decision.recommendation))
        events = tuple(e for e in self.scale_events if e[0] > cutoff)
        if applied and decision.changed:
            events = (*events, (now, decision.current_replicas, decision.desired_replicas))
        loads = tuple(s for s in self.load_samples if s[0] > cutoff)
        if decision.load is not None:
            loads = (*loads, (now, decision.load))
        signals = {
            name: tuple(s for s in samples if s[0] > cutoff)
            for name, samples in self.signal_samples.items()
        }
        demands = tuple(s for s in self.demand_samples if s[0] > cutoff)
        if decision.demand is not None:
            demands = (*demands, (now, decision.demand))
        buckets: tuple[tuple[float, float, int], ...] = ()
        if bucket_keep_s > 0:
            buckets = tuple(b for b in self.demand_buckets if b[0] > now - bucket_keep_s)
            if decision.demand is not None:
                start = now - now % bucket_s
                if buckets and buckets[-1][0] == start:
                    _, mean, n = buckets[-1]
                    last = (start, (mean * n + decision.demand) / (n + 1), n + 1)
                    buckets = (*buckets[:-1], last)
                else:
                    buckets = (*buckets, (start, decision.demand, 1))
        return History(
            recs,
            events,
            loads,
            signals,
            decision.panic_last_s,
            decision.capacity if decision.capacity is not None else self.capacity,
            demands,
            buckets,
        )


# --------------------------------------------------------------------------- outputs


@dataclass(frozen=True)
class Proposal:
    """What one target asked for. ``replicas`` is None when it asks for nothing: its reading
    is unusable (``status`` not "ok"), or (latency well under threshold) it does not object
    to whatever the other targets want."""

    signal: str
    kind: str
    value: float | None
    target: float
    replicas: int | None
    status: str
    why: str


@dataclass(frozen=True)
class Event:
    """Something to record or alert on: metrics_missing, stale_metrics, drift_detected,
    at_max_while_slo_burning, cron_minimum_capped."""

    kind: str
    message: str


@dataclass(frozen=True)
class Decision:
    """The outcome. ``recommendation`` (raw, before stabilization), ``load``,
    ``panic_last_s``, ``demand`` and ``capacity`` (what was learned, None if nothing) go back
    into the next :class:`History`. ``dry_run`` is True unless the
    mode is "enforce": the decision is the same, only whether to apply it differs."""

    desired_replicas: int
    current_replicas: int
    changed: bool
    rule: str
    reason: str
    proposals: tuple[Proposal, ...]
    events: tuple[Event, ...]
    recommendation: int
    mode: str
    dry_run: bool
    load: float | None = None
    panic: bool = False
    panic_last_s: float | None = None
    demand: float | None = None
    capacity: Capacity | None = None
