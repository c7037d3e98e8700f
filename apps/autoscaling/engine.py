"""The scale decision, as one pure function.

``decide(policy, observations, history, now, replicas=...)`` turns a policy, the latest metric
readings, the replica counts, a short history and the time into a :class:`Decision`. It does
no I/O, reads no clock and imports nothing from Django, so the live control loop, backtests
and benchmarks all call the very same code. Same inputs, same Decision.

Signals are plain strings, aligned with ``apps.metrics.catalogue.Signal`` ("queue_length",
"running_requests", "kv_cache_usage", "gpu_utilization", "generation_token_rate",
"ttft_p95", ...), plus "custom:<name>" for custom queries and "slo_burn_rate" for the SLO
boost input (the highest short-window burn rate of the deployment's SLOs).

Target kinds
------------
``per_replica_average``
    The observation is a deployment total (e.g. waiting requests); the target is per replica.
    As HPA's AverageValue: skip when total / (target * replicas) is within tolerance of 1,
    otherwise desired = ceil(total / target).
``utilization``
    The observation is a 0-1 average over ready replicas (KV-cache use, GPU utilisation). As
    HPA's Utilization: skip within tolerance, otherwise desired = ceil(ready * value / target).
``latency_slo``
    The observation is a latency (e.g. TTFT p95, seconds); the target is an absolute threshold.
    Above threshold * (1 + tolerance) it proposes ceil(ready * value / threshold), never less
    than the current count. Between half the threshold (``latency_scale_down_ratio``) and
    that, it holds the current count, which also vetoes scale-downs proposed by other
    targets. At or under half the threshold it does not object to other targets scaling
    down; if it is the only target it proposes one replica fewer per decision (latency has
    a floor set by prefill compute, not by load, so proportional scale-down from latency
    would shed far too much).

Replicas still starting are capacity on the way. They report no metrics, so demand is
measured on ready replicas only and compared with the spec, which already includes them:
two ready replicas at twice the target ask for four, and once four are requested the same
readings ask for four again rather than eight (AIBrix #2670, the 2 → 4 → 8 → 16 runaway).

Rules and precedence
--------------------
1. ``drift``: when the platform's replica count differs from what the control plane last
   applied, the platform's count becomes current (ai-dynamo #4420: a planner that keeps
   comparing against its own stored value wedges). Decisions then proceed normally; "drift"
   is the rule only when the targets keep that count (a hold rule explains more).
2. Out of bounds, as HPA: above ``max_replicas`` → max at once (``max_replicas``); below the
   floor → the floor at once (``min_replicas`` / ``cron_minimum``). At zero with
   scale-to-zero enabled: ``activation`` once load reaches the activation threshold,
   otherwise stay at zero (``scale_to_zero``, or ``hold:missing_metrics`` if load is unknown).
3. Raw recommendation: the highest per-target proposal (``target:<signal>``); held at current
   when no target is usable or when some target is unusable and the rest want fewer
   (``hold:missing_metrics``); raised by ``slo_boost``; raised by ``panic``; set to zero by
   ``scale_to_zero`` after observed idleness. This is ``Decision.recommendation``.
4. Stabilization, as HPA (``stabilization:up`` / ``stabilization:down``). Panic, SLO boost
   and activation skip the scale-up window; scale-to-zero skips the scale-down window (its
   idle period is a stricter one).
5. Scale-down vetoes: ``panic`` (never scale down in panic), then ``cold_start_hold``.
6. Bounds: ``max_replicas``, then the floor (``min_replicas`` or ``cron_minimum``).
7. Rate limits, as HPA behavior policies (``rate_limit:up`` / ``rate_limit:down``). On the
   way to zero they step down to the floor, then zero follows in one step (counts in
   between would be below ``min_replicas``).

The final ``rule`` is the last step that changed the outcome.

History is the caller's to keep: append ``Decision.recommendation`` (and ``load``, and the
scale event if applied, and ``panic_last_s``) after each decision; :meth:`History.advance`
does exactly that. After applying (or accepting) a decision, the caller's ``last_applied``
becomes ``desired_replicas``. While metrics are missing the recommendation recorded is the
current count, so after an outage the scale-down window has to fill with real readings
before anything is removed (HPA records nothing during an outage; this is stricter).

Deviations from Kubernetes HPA, all outside HPA-equivalent settings: replicas still starting
and the other LLM-specific rules above; a spec of 0 is not "autoscaling disabled" (use
mode "off") but is brought back to the floor, or handled by scale-to-zero when enabled.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal, NamedTuple, Protocol

__all__ = [
    "DEFAULT_SCALE_DOWN_POLICIES",
    "DEFAULT_SCALE_UP_POLICIES",
    "SLO_BURN_RATE",
    "CronMinimum",
    "Decision",
    "Event",
    "History",
    "Obs",
    "Policy",
    "Proposal",
    "ReplicaState",
    "ScalingPolicy",
    "SloBoost",
    "Target",
    "decide",
]

Mode = Literal["off", "dry-run", "enforce"]
TargetKind = Literal["per_replica_average", "utilization", "latency_slo"]
ScalingPolicyType = Literal["pods", "percent"]
SelectPolicy = Literal["max", "min", "disabled"]

MODES: Final = ("off", "dry-run", "enforce")
TARGET_KINDS: Final = ("per_replica_average", "utilization", "latency_slo")
SELECT_POLICIES: Final = ("max", "min", "disabled")
SLO_BURN_RATE: Final = "slo_burn_rate"
OK: Final = "ok"
DAY_S: Final = 86400

# Replica arithmetic is done in floats; without a guard, 0.33 / 0.03 = 11.000000000000002
# would ask for 12 replicas (Kubernetes computes in float64 too and can overshoot like this;
# we follow the documented formula instead). Metric values carry a few significant digits, so
# exact ratios are whole or well over 1e-9 away from whole: a relative 1e-12 removes only noise.
_EPS: Final = 1e-12


def _ceil(x: float) -> int:
    return math.ceil(x - _EPS * max(1.0, abs(x)))


def _floor(x: float) -> int:
    return math.floor(x + _EPS * max(1.0, abs(x)))


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

    ``value`` is per replica for ``per_replica_average``, a 0-1 level for ``utilization`` and
    an absolute threshold (seconds) for ``latency_slo``.
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
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; use one of {MODES}")
        if self.min_replicas < 0:
            raise ValueError("min_replicas must not be negative")
        if self.max_replicas < max(self.min_replicas, 1):
            raise ValueError("max_replicas must be at least min_replicas and at least 1")
        if not self.targets:
            raise ValueError("a policy needs at least one target")
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
    def history_horizon_s(self) -> float:
        """How far back :class:`History` needs to reach for this policy."""
        periods = [p.period_s for p in (*self.scale_up_policies, *self.scale_down_policies)]
        return float(
            max(
                self.scale_up_stabilization_s,
                self.scale_down_stabilization_s,
                self.stable_window_s,
                self.idle_period_s if self.scale_to_zero_enabled else 0.0,
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
    """

    spec: int
    ready: int
    starting: tuple[float, ...] = ()
    observed_spec: int | None = None
    last_applied: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "starting", tuple(self.starting))
        if self.spec < 0 or self.ready < 0 or (self.observed_spec or 0) < 0:
            raise ValueError("replica counts must not be negative")


Samples = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class History:
    """What the engine remembers between decisions, all kept by the caller.

    ``recommendations``: (time_s, replicas), the raw recommendation of each past decision.
    ``scale_events``: (time_s, from, to) for each applied change. ``load_samples``: (time_s,
    load) as in ``Decision.load``, for idle detection. ``signal_samples``: per signal,
    (time_s, value) readings for short-window (panic) values. ``panic_last_s``: when the
    panic condition last held (``Decision.panic_last_s``).
    """

    recommendations: tuple[tuple[float, int], ...] = ()
    scale_events: tuple[tuple[float, int, int], ...] = ()
    load_samples: Samples = ()
    signal_samples: Mapping[str, Samples] = field(default_factory=dict)
    panic_last_s: float | None = None

    def advance(self, decision: Decision, now: float, *, applied: bool, keep_s: float) -> History:
        """The history after ``decision``: append what it produced, drop what is older than
        ``keep_s`` (use ``Policy.history_horizon_s``). ``applied`` says whether the change
        was made (enforce mode); only applied changes are scale events."""
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
        return History(recs, events, loads, signals, decision.panic_last_s)


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
    """The outcome. ``recommendation`` (raw, before stabilization), ``load`` and
    ``panic_last_s`` go back into the next :class:`History`. ``dry_run`` is True unless the
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


# --------------------------------------------------------------------------- formatting


def _n(x: float) -> str:
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}"


def _per(x: float) -> str:
    return f"{x:.1f}" if abs(x) >= 1 else f"{x:.2f}"


def _pct(fraction: float) -> str:
    return f"{fraction * 100:g}%"


def _replicas(n: int) -> str:
    return f"{n} replica" if n == 1 else f"{n} replicas"


def _serving(ready: int, starting: int) -> str:
    if starting:
        return f"{ready} ready + {starting} starting replicas"
    return f"{ready} ready replica" if ready == 1 else f"{ready} ready replicas"


def _clock(s: int) -> str:
    s %= DAY_S
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}"


# --------------------------------------------------------------------------- steps


class _Reading(NamedTuple):
    status: str
    value: float | None
    reason: str


def _read(o: Obs | None, policy: Policy) -> _Reading:
    """Usable value or why not. Missing never reads as zero."""
    if o is None:
        return _Reading("missing", None, "no observation was supplied")
    if o.status != OK:
        return _Reading(o.status or "missing", None, o.reason)
    v = o.value
    if v is None or not math.isfinite(v) or v < 0:
        return _Reading("invalid", None, f"value {v!r} is not a usable reading")
    limit = policy.max_metric_age_s
    if limit is not None and o.age_s is not None and o.age_s > limit:
        return _Reading("stale", None, f"data is {o.age_s:.0f} s old (limit {limit:.0f} s)")
    return _Reading(OK, float(v), "")


def _unusable(target: Target, r: _Reading) -> Proposal:
    detail = f": {r.reason}" if r.reason else ""
    return Proposal(
        target.signal,
        target.kind,
        None,
        target.value,
        None,
        r.status,
        f"{target.signal} is {r.status}{detail}",
    )


def _propose(
    target: Target, r: _Reading, policy: Policy, current: int, ready: int, starting: int
) -> Proposal:
    if r.status != OK or r.value is None:
        return _unusable(target, r)
    v, t, tol = r.value, target.value, policy.tolerance
    sig = target.signal
    capacity = ready + starting
    within = f"within the {_pct(tol)} tolerance"

    def made(replicas: int | None, why: str) -> Proposal:
        abs_tol = policy.tolerance_abs_replicas
        if (
            replicas is not None
            and replicas != current
            and abs_tol is not None
            and abs(replicas - current) <= abs_tol
        ):
            replicas = current
            why += f", within {_replicas(abs_tol)} of the current {current} so it holds"
        return Proposal(sig, target.kind, v, t, replicas, OK, why)

    if target.kind == "per_replica_average":
        if capacity == 0:
            n = _ceil(v / t)
            return made(n, f"{sig} {_n(v)} with no replicas against a target of {_n(t)} each")
        ratio = v / (t * capacity)
        head = (
            f"{sig} {_n(v)} over {_serving(ready, starting)} is {_per(v / capacity)} per "
            f"replica against a target of {_n(t)}"
        )
        if abs(1.0 - ratio) <= tol + _EPS:
            return made(current, f"{head}, {within}")
        return made(_ceil(v / t), head)

    if ready == 0:
        # An average over no ready replica means nothing; it must not read as "idle".
        return Proposal(
            sig, target.kind, v, t, None, "no_ready_replicas", f"{sig}: no replica is ready"
        )
    ratio = v / t

    if target.kind == "utilization":
        head = (
            f"{sig} {_n(v)} averaged over {_serving(ready, starting)} against a target of {_n(t)}"
        )
        if starting and ratio > 1.0:
            # HPA counts unready pods as idle when scaling up: the demand is ready * ratio,
            # which the replicas on the way may already cover (AIBrix #2670).
            spread = v * ready / (t * capacity)
            if spread < 1.0 or abs(1.0 - spread) <= tol + _EPS:
                return made(current, f"{head}; the starting replicas already cover it")
            return made(_ceil(v * ready / t), head)
        if abs(1.0 - ratio) <= tol + _EPS:
            return made(current, f"{head}, {within}")
        return made(_ceil(v * ready / t), head)

    # latency_slo
    if ratio > 1.0 + tol + _EPS:
        n = max(current, _ceil(v * ready / t))
        return made(n, f"{sig} {_n(v)} s is {ratio:.2f}x the {_n(t)} s threshold")
    if ratio <= policy.latency_scale_down_ratio + _EPS:
        return Proposal(
            sig,
            target.kind,
            v,
            t,
            None,
            OK,
            f"{sig} {_n(v)} s is well under the {_n(t)} s threshold "
            f"(at most {_pct(policy.latency_scale_down_ratio)} of it)",
        )
    return made(current, f"{sig} {_n(v)} s is near the {_n(t)} s threshold, so latency holds")


def _metric_events(proposals: tuple[Proposal, ...], events: list[Event]) -> None:
    for p in proposals:
        if p.status in (OK, "no_ready_replicas"):
            continue
        kind = "stale_metrics" if p.status == "stale" else "metrics_missing"
        events.append(Event(kind, p.why))


class _Raw(NamedTuple):
    replicas: int
    rule: str
    reason: str
    all_ok: bool


def _aggregate(proposals: tuple[Proposal, ...], current: int) -> _Raw:
    usable = [p for p in proposals if p.status == OK]
    bad = [p for p in proposals if p.status != OK]
    all_ok = not bad
    bad_text = " and ".join(p.why for p in bad)
    numbered = [p for p in usable if p.replicas is not None]
    if not usable:
        return _Raw(
            current,
            "hold:missing_metrics",
            f"no target has a usable reading ({bad_text}), and nothing is read as zero",
            False,
        )
    if not numbered:
        lead = usable[0]
        if not all_ok:
            return _Raw(
                current,
                "hold:missing_metrics",
                f"{lead.why}, but {bad_text}, and a partial picture never scales down",
                False,
            )
        return _Raw(
            max(current - 1, 0),
            f"target:{lead.signal}",
            f"{lead.why}, so latency alone allows one replica fewer",
            True,
        )
    best = max(p.replicas for p in numbered if p.replicas is not None)
    winner = next(p for p in numbered if p.replicas == best)
    if best < current and not all_ok:
        return _Raw(
            current,
            "hold:missing_metrics",
            f"{winner.why}, asking for {best}, but {bad_text}, and a partial picture may scale "
            "up but never down",
            False,
        )
    return _Raw(best, f"target:{winner.signal}", winner.why, all_ok)


def _cron_floor(policy: Policy, now: float) -> tuple[int, CronMinimum | None]:
    # Unix time has no leap seconds, so now mod 86400 is the UTC time of day.
    sod = now % DAY_S
    best: tuple[int, CronMinimum | None] = (0, None)
    for c in policy.cron_minimums:
        if c.start_s < c.end_s:
            active = c.start_s <= sod < c.end_s
        else:
            active = sod >= c.start_s or sod < c.end_s
        if active and c.min_replicas > best[0]:
            best = (c.min_replicas, c)
    return best


def _load(policy: Policy, observations: Mapping[str, Obs]) -> tuple[float | None, str]:
    total = 0.0
    for signal in policy.load_signals:
        r = _read(observations.get(signal), policy)
        if r.status != OK or r.value is None:
            detail = f" ({r.reason})" if r.reason else ""
            return None, f"load signal {signal} is {r.status}{detail}"
        total += r.value
    return total, ""


def _idle_for(policy: Policy, history: History, now: float, load: float | None) -> float:
    """Seconds of load *observed* at zero, without gaps, up to now (0 if loaded or unknown)."""
    if load is None or load > 0:
        return 0.0
    since = now
    for t, value in sorted((s for s in history.load_samples if s[0] <= now), reverse=True):
        # A gap means load was not observed then: the idle clock restarts after it.
        if since - t > policy.load_sample_max_gap_s or not value <= 0:
            break
        since = t
    return now - since


def _short_window(
    signal: str, o: Obs | None, policy: Policy, history: History, now: float
) -> float | None:
    if o is not None and o.panic_value is not None:
        pv = o.panic_value
        return pv if math.isfinite(pv) and pv >= 0 else None
    window = [
        v
        for t, v in history.signal_samples.get(signal, ())
        if now - policy.panic_window_s < t < now and math.isfinite(v) and v >= 0
    ]
    # The reading being decided on is the freshest sample there is. Without it a loop that
    # evaluates less often than the panic window (10 s vs Knative's 6 s) would never see a
    # sample inside the window, and panic could never start.
    if o is not None and o.status == OK and o.value is not None:
        if math.isfinite(o.value) and o.value >= 0:
            window.append(o.value)
    return sum(window) / len(window) if window else None


class _Panic(NamedTuple):
    active: bool
    last_s: float | None
    demand: float | None  # replicas the short window asks for (unrounded)
    signal: str
    condition: bool


def _panic(
    policy: Policy,
    observations: Mapping[str, Obs],
    proposals: tuple[Proposal, ...],
    history: History,
    now: float,
    ready: int,
) -> _Panic:
    if not policy.panic_enabled:
        return _Panic(False, None, None, "", False)
    demand: float | None = None
    signal = ""
    usable = {p.signal for p in proposals if p.status == OK}
    for target in policy.targets:
        if target.kind == "latency_slo" or target.signal not in usable:
            continue
        short = _short_window(target.signal, observations.get(target.signal), policy, history, now)
        if short is None:
            continue
        if target.kind == "per_replica_average":
            d = short / target.value
        else:
            d = ready * short / target.value
        if demand is None or d > demand:
            demand, signal = d, target.signal
    # Knative divides by ready pods, with at least one.
    condition = demand is not None and demand / max(ready, 1) >= policy.panic_threshold - _EPS
    last = now if condition else history.panic_last_s
    active = condition or (last is not None and now - last < policy.stable_window_s)
    return _Panic(active, last if active else None, demand, signal, condition)


def _period_change(history: History, period_s: float, now: float) -> tuple[int, int]:
    added = removed = 0
    for t, before, after in history.scale_events:
        if t > now - period_s:
            if after > before:
                added += after - before
            else:
                removed += before - after
    return added, removed


def _describe_policies(policies: tuple[ScalingPolicy, ...], sign: str, select: str) -> str:
    if select == "disabled":
        return "disabled"
    parts = [
        f"{sign}{p.value}{'%' if p.type == 'percent' else ' pod' if p.value == 1 else ' pods'} "
        f"per {p.period_s} s"
        for p in policies
    ]
    joiner = " or " if select == "max" else " and "
    return joiner.join(parts)


def _up_limit(policy: Policy, current: int, history: History, now: float) -> int:
    if policy.scale_up_select == "disabled":
        return current
    limits = []
    for p in policy.scale_up_policies:
        added, removed = _period_change(history, p.period_s, now)
        start = current - added + removed
        if p.type == "pods":
            limits.append(start + p.value)
        else:
            # Rounded up so that a small count can always grow (as HPA).
            limits.append(_ceil(start * (100 + p.value) / 100))
    return max(limits) if policy.scale_up_select == "max" else min(limits)


def _down_limit(policy: Policy, current: int, history: History, now: float) -> int:
    if policy.scale_down_select == "disabled":
        return current
    limits = []
    for p in policy.scale_down_policies:
        added, removed = _period_change(history, p.period_s, now)
        start = current - added + removed
        if p.type == "pods":
            limits.append(start - p.value)
        else:
            limits.append(_floor(start * (100 - p.value) / 100))
    # "max" means the biggest change allowed, i.e. the lowest count.
    return min(limits) if policy.scale_down_select == "max" else max(limits)


def _move(current: int, desired: int) -> str:
    return f"{current} → {desired}" if desired != current else f"holding at {current}"


# --------------------------------------------------------------------------- decide


def decide(
    policy: Policy,
    observations: Mapping[str, Obs],
    history: History,
    now: float,
    *,
    replicas: ReplicaState,
) -> Decision:
    """Decide the replica count for one deployment. Pure and deterministic."""
    events: list[Event] = []

    # 1. Current count, adopting a change made outside the control plane.
    current = replicas.spec if replicas.observed_spec is None else replicas.observed_spec
    drift = ""
    if (
        replicas.observed_spec is not None
        and replicas.last_applied is not None
        and replicas.observed_spec != replicas.last_applied
    ):
        drift = (
            f"replicas were changed outside the control plane (last applied "
            f"{replicas.last_applied}, the platform reports {replicas.observed_spec}); "
            f"taking {replicas.observed_spec} as current"
        )
        events.append(Event("drift_detected", drift))
    ready = replicas.ready
    starting = len(replicas.starting)

    # Per-target proposals.
    proposals = tuple(
        _propose(t, _read(observations.get(t.signal), policy), policy, current, ready, starting)
        for t in policy.targets
    )
    _metric_events(proposals, events)

    # Bounds: the floor is min_replicas (at least 1) raised by active cron minimums.
    upper = policy.max_replicas
    base_floor = max(policy.min_replicas, 1)
    cron_floor, cron = _cron_floor(policy, now)
    lower, lower_rule = base_floor, "min_replicas"
    lower_text = f"min_replicas is {base_floor}"
    if cron is not None and cron_floor > base_floor:
        lower, lower_rule = cron_floor, "cron_minimum"
        lower_text = (
            f"the cron minimum of {cron_floor} is active "
            f"({_clock(cron.start_s)}-{_clock(cron.end_s)} UTC)"
        )
    if lower > upper:
        events.append(
            Event(
                "cron_minimum_capped",
                f"cron minimum {cron_floor} is above max_replicas {upper}; max_replicas wins",
            )
        )
        lower = upper
        lower_text += f", capped at max_replicas {upper}"

    load, load_problem = _load(policy, observations)
    burn = _read(observations.get(SLO_BURN_RATE), policy)
    burning = burn.value is not None and burn.value >= policy.slo_boost.fast_burn_threshold

    # 3. Raw recommendation.
    raw, rule, reason, all_ok = _aggregate(proposals, current)
    emergency_up = False  # skips the scale-up stabilization window
    to_zero = False

    if policy.slo_boost.enabled and burning and burn.value is not None and current > 0:
        if starting:
            # The previous step has not landed yet; stepping again now would stack boosts
            # on capacity that is already on its way (AIBrix #2670).
            reason += (
                f"; SLO burn rate {_n(burn.value)} is at or above "
                f"{_n(policy.slo_boost.fast_burn_threshold)} but "
                f"{_replicas(starting)} {'is' if starting == 1 else 'are'} still starting, "
                "so no further boost yet"
            )
        else:
            step = max(1, _ceil(current * policy.slo_boost.step_percent / 100))
            if current + step > raw:
                reason = (
                    f"SLO burn rate {_n(burn.value)} is at or above the fast-burn threshold "
                    f"{_n(policy.slo_boost.fast_burn_threshold)}, so boost by "
                    f"{_n(policy.slo_boost.step_percent)}% ({step} more) although the "
                    f"targets ask for {raw}"
                )
                raw, rule, emergency_up = current + step, "slo_boost", True

    panic = _panic(policy, observations, proposals, history, now, ready)
    if panic.active and panic.demand is not None:
        wanted = _ceil(panic.demand)
        if wanted > raw:
            raw, rule, emergency_up = wanted, "panic", True
            reason = (
                f"panic mode: {panic.signal} over the last {_n(policy.panic_window_s)} s needs "
                f"{wanted} replicas, {panic.demand / max(ready, 1):.1f}x the {ready} ready "
                f"(threshold {policy.panic_threshold:g}x)"
            )

    idle_s = _idle_for(policy, history, now, load)
    if (
        policy.scale_to_zero_enabled
        and current > 0
        and cron_floor == 0
        and all_ok
        and raw <= current
        and not panic.active
        and load is not None
        and idle_s >= policy.idle_period_s
    ):
        raw, rule, to_zero = 0, "scale_to_zero", True
        reason = f"no load observed for {idle_s:.0f} s (idle period {_n(policy.idle_period_s)} s)"

    recommendation = raw
    young = [s for s in replicas.starting if now - s < policy.cold_start_s]

    # 2. Out of bounds, and life at zero. Checked after the raw recommendation because that
    # is recorded whichever way the decision goes.
    if current > upper:
        desired, rule = upper, "max_replicas"
        reason = f"{reason}; above max_replicas {upper}, so back to it at once"
    elif current == 0 and policy.scale_to_zero_enabled and cron_floor == 0:
        if load is None:
            desired, rule = 0, "hold:missing_metrics"
            reason = f"at zero and {load_problem}, so activation cannot be judged"
            events.append(Event("metrics_missing", reason))
        elif load >= policy.activation_threshold:
            numbers = [p.replicas for p in proposals if p.status == OK and p.replicas is not None]
            wanted = max([1, *numbers])
            limit = max(1, _up_limit(policy, 0, history, now))
            desired = max(lower, min(wanted, limit, upper))
            rule = "activation"
            reason = (
                f"load {_n(load)} reached the activation threshold of "
                f"{_n(policy.activation_threshold)}; the targets ask for {wanted}"
            )
            recommendation = max(recommendation, wanted)
            if desired < wanted:
                reason += f", the scale-up policies allow {desired} now"
        else:
            desired, rule = 0, "scale_to_zero"
            reason = (
                f"scaled to zero; load {_n(load)} is below the activation threshold of "
                f"{_n(policy.activation_threshold)}"
            )
    elif current < lower:
        desired, rule = lower, lower_rule
        verb = "is" if current == 1 else "are"
        reason = f"{lower_text} and only {current} {verb} set, so up to it at once"
    else:
        desired, rule, reason = _normal(
            policy,
            history,
            now,
            current=current,
            raw=raw,
            rule=rule,
            reason=reason,
            emergency_up=emergency_up,
            to_zero=to_zero,
            in_panic=panic.active,
            young=young,
            lower=lower,
            lower_rule=lower_rule,
            lower_text=lower_text,
            upper=upper,
        )

    if rule.startswith("target:") and desired != current:
        reason = f"{reason}; {_move(current, desired)} (tolerance {_pct(policy.tolerance)})"
    else:
        reason = f"{reason}; {_move(current, desired)}"
    if drift and desired == current and rule.startswith("target:"):
        # A hold (missing metrics, cold start, panic, stabilization) explains more than
        # "drift" does; the drift_detected event is there either way.
        rule = "drift"
    if drift:
        reason = f"{drift}; {reason}"
    if burning and burn.value is not None and desired >= upper:
        events.append(
            Event(
                "at_max_while_slo_burning",
                f"at max_replicas {upper} while the SLO burn rate is {_n(burn.value)} "
                f"(fast-burn threshold {_n(policy.slo_boost.fast_burn_threshold)})",
            )
        )

    return Decision(
        desired_replicas=desired,
        current_replicas=current,
        changed=desired != current,
        rule=rule,
        reason=reason,
        proposals=proposals,
        events=tuple(events),
        recommendation=recommendation,
        mode=policy.mode,
        dry_run=policy.mode != "enforce",
        load=load,
        panic=panic.active,
        panic_last_s=panic.last_s,
    )


def _normal(
    policy: Policy,
    history: History,
    now: float,
    *,
    current: int,
    raw: int,
    rule: str,
    reason: str,
    emergency_up: bool,
    to_zero: bool,
    in_panic: bool,
    young: list[float],
    lower: int,
    lower_rule: str,
    lower_text: str,
    upper: int,
) -> tuple[int, str, str]:
    """Steps 4-7 for a current count within bounds."""
    # 4. Stabilization, exactly as HPA: the new recommendation counts, as do those strictly
    # inside each window; the result is the current count pulled to within [up, down].
    up_cut = now - policy.scale_up_stabilization_s
    down_cut = now - policy.scale_down_stabilization_s
    up_rec = down_rec = raw
    for t, r in history.recommendations:
        if t > up_cut:
            up_rec = min(up_rec, r)
        if t > down_cut:
            down_rec = max(down_rec, r)
    if emergency_up:
        up_rec = raw
    desired = min(max(current, up_rec), down_rec)
    if to_zero:
        desired = 0
    clauses: list[str] = []
    if desired != raw:
        if raw > current:
            rule = "stabilization:up"
            clauses.append(
                f"the lowest recommendation in the last {_n(policy.scale_up_stabilization_s)} s "
                f"is {up_rec}"
            )
        else:
            rule = "stabilization:down"
            clauses.append(
                f"the highest recommendation in the last "
                f"{_n(policy.scale_down_stabilization_s)} s is {down_rec}"
            )

    # 5. Scale-down vetoes.
    if desired < current:
        if in_panic:
            rule = "panic"
            clauses.append("panic mode never scales down")
            desired = current
        elif young:
            # New replicas report nothing yet and the ready ones look less busy than they
            # will be; shedding now is how fleets oscillate (Knative #15316, KServe #1247).
            rule = "cold_start_hold"
            newest = min(now - s for s in young)
            clauses.append(
                f"{_replicas(len(young))} still within the {_n(policy.cold_start_s)} s cold "
                f"start (the newest started {newest:.0f} s ago), so no scale-down"
            )
            desired = current

    # 6. Bounds.
    if desired > upper:
        rule = "max_replicas"
        clauses.append(f"max_replicas is {upper}")
        desired = upper
    floor = 0 if to_zero else lower
    if desired < floor:
        rule = lower_rule
        clauses.append(lower_text)
        desired = floor

    # 7. Rate limits, as HPA behavior policies.
    if desired > current:
        limit = max(current, _up_limit(policy, current, history, now))
        if desired > limit:
            rule = "rate_limit:up"
            allowed = _describe_policies(policy.scale_up_policies, "+", policy.scale_up_select)
            clauses.append(f"the scale-up policies ({allowed}) allow {limit} now")
            desired = limit
    elif desired < current:
        limit = min(current, _down_limit(policy, current, history, now))
        if to_zero:
            # Counts between zero and the floor are below min_replicas: step down to the floor
            # as the policies allow, then drop from the floor to zero in one step.
            limit = 0 if current <= lower or limit <= 0 else max(limit, lower)
        if desired < limit:
            rule = "rate_limit:down"
            allowed = _describe_policies(policy.scale_down_policies, "-", policy.scale_down_select)
            clauses.append(f"the scale-down policies ({allowed}) allow {limit} now")
            desired = limit
    if clauses:
        # Say what the recommendation was before the steps that changed it.
        reason = "; ".join([f"{reason}, asking for {raw}", *clauses])
    return desired, rule, reason
