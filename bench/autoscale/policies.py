"""The scaling policies under test.

The baselines are reimplemented from their public definitions, step by step, as small pure
functions (tested against hand-computed steps in ``tests/unit/bench``; Kubernetes HPA's are
in :mod:`bench.autoscale.hpa_reference`) wrapped in controllers that keep the state the real
controllers keep. Where the simulation has to
map a real-world notion onto the replica model, the docstring says how.

Replicas still in their cold start are pods that are not ready and export no metrics
(a vLLM pod serves ``/metrics`` only once the model is loaded). Metrics are those a
scraper reads from the ready replicas, delayed by the shared scrape delay.

Our own policy calls :func:`apps.autoscaling.engine.step`, the control step the live loop
and the backtest call; it only says where observations and replica counts come from.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from apps.autoscaling import engine
from bench.autoscale.hpa_reference import (
    HPA_TOLERANCE,
    HpaBehavior,
    hpa_apply_rate_limits,
    hpa_external_average_replicas,
    hpa_pods_metric_replicas,
    hpa_stabilize,
)
from bench.autoscale.sim import FastReading, MetricsView, ScaleState

# =====================================================================================
# Static
# =====================================================================================


class Static:
    """A fixed replica count. The benchmark's static-peak and static-mean are sized by the
    oracle's capacity model from the whole trace (clairvoyant): they are references."""

    def __init__(self, name: str, replicas: int) -> None:
        self.name = name
        self.replicas = replicas

    def decide(self, view: MetricsView, state: ScaleState) -> int:
        return self.replicas


# =====================================================================================
# Kubernetes HPA (autoscaling/v2): the algorithm is in bench.autoscale.hpa_reference
# =====================================================================================


class Hpa:
    """A HorizontalPodAutoscaler on one metric, synced every evaluation period.

    ``source``:
      * ``"pods"``: a Pods metric averaged over pods (prometheus-adapter style), read per
        replica from the scrape: ``metric`` is ``"util_avg"`` (DCGM_FI_DEV_GPU_UTIL, in
        percent) or ``"waiting"`` (vllm:num_requests_waiting);
      * ``"external"``: an External metric with an AverageValue target (what KEDA
        registers), the deployment total ``metric``.

    The first sync seeds the recommendation history with the current count, as
    ``maybeInitScaleDownStabilizationWindow`` does, so nothing is removed during the first
    scale-down window.
    """

    def __init__(
        self,
        name: str,
        *,
        metric: Literal["util_avg", "waiting"],
        target: float,
        source: Literal["pods", "external"] = "pods",
        behavior: HpaBehavior | None = None,
        tolerance: float = HPA_TOLERANCE,
        metric_fetch: Callable[[MetricsView, str], float | None] | None = None,
    ) -> None:
        self.name = name
        self.metric = metric
        self.target = target
        self.source = source
        self.behavior = behavior or HpaBehavior()
        self.tolerance = tolerance
        self.fetch = metric_fetch or _latest_total
        self.recommendations: list[tuple[float, int]] = []
        self.up_events: list[tuple[float, int]] = []
        self.down_events: list[tuple[float, int]] = []

    def _proposal(self, view: MetricsView, state: ScaleState) -> int | None:
        if self.source == "external":
            total = self.fetch(view, self.metric)
            if total is None:
                return None
            return hpa_external_average_replicas(
                state.spec, total, self.target, tolerance=self.tolerance
            )
        ready_then = int(view.latest("ready") or 0)
        if ready_then == 0:
            return None
        if self.metric == "util_avg":
            avg = view.latest("util_avg")
            if avg is None:
                return None
            per_pod_sum = avg * 100.0 * ready_then
        else:
            waiting = view.latest("waiting")
            if waiting is None:
                return None
            per_pod_sum = waiting
        # Pods that turned ready after the scrape have no sample yet ("missing"); those
        # still starting are not ready ("unready").
        missing = max(0, state.ready - ready_then)
        unready = max(0, state.spec - state.ready)
        return hpa_pods_metric_replicas(
            state.spec,
            per_pod_sum,
            ready_then,
            self.target,
            unready=unready,
            missing=missing,
            tolerance=self.tolerance,
        )

    def decide(self, view: MetricsView, state: ScaleState) -> int:
        now, current = state.now, state.spec
        if not self.recommendations:
            self.recommendations.append((now, current))
        if current > state.max_replicas:
            return state.max_replicas
        if current < state.min_replicas:
            return state.min_replicas
        proposal = self._proposal(view, state)
        if proposal is None:
            return current  # FailedGetMetrics: no change, nothing recorded
        stabilized = hpa_stabilize(self.recommendations, now, proposal, current, self.behavior)
        self._record(now, proposal)
        desired = hpa_apply_rate_limits(
            current,
            stabilized,
            state.min_replicas,
            state.max_replicas,
            self.up_events,
            self.down_events,
            self.behavior,
            now,
        )
        if desired > current:
            self.up_events.append((now, desired - current))
        elif desired < current:
            self.down_events.append((now, current - desired))
        horizon = max(r.period_s for r in (*self.behavior.up_rules, *self.behavior.down_rules))
        self.up_events = [e for e in self.up_events if e[0] > now - horizon]
        self.down_events = [e for e in self.down_events if e[0] > now - horizon]
        return desired

    def _record(self, now: float, proposal: int) -> None:
        # Replaces a sample older than both windows, else appends (same set either way).
        keep = max(self.behavior.up_stabilization_s, self.behavior.down_stabilization_s)
        self.recommendations = [r for r in self.recommendations if r[0] > now - keep]
        self.recommendations.append((now, proposal))


class HpaOnSignals(Hpa):
    """Plain Kubernetes HPA behaviour on the signals ours uses, as a control: one HPA
    with two Pods metrics, the waiting requests per replica (target
    ``OursSpec.queue_per_replica``) and the KV-cache use (target ``OursSpec.kv_target``),
    the larger proposal winning as with several metrics in ``spec.metrics``; default
    behavior (300 s scale-down stabilization, the default rate limits). What it shares with
    ours is the choice of signals and targets; what differs is the control logic."""

    def __init__(self, name: str, *, queue_target: float, kv_target: float) -> None:
        super().__init__(name, metric="waiting", target=queue_target)
        self.kv_target = kv_target

    def _proposal(self, view: MetricsView, state: ScaleState) -> int | None:
        queue = super()._proposal(view, state)
        ready_then = int(view.latest("ready") or 0)
        kv = view.latest("kv_avg")
        kv_proposal = None
        if ready_then and kv is not None:
            kv_proposal = hpa_pods_metric_replicas(
                state.spec,
                kv * ready_then,
                ready_then,
                self.kv_target,
                unready=max(0, state.spec - state.ready),
                missing=max(0, state.ready - ready_then),
                tolerance=self.tolerance,
            )
        proposals = [p for p in (queue, kv_proposal) if p is not None]
        return max(proposals) if proposals else None


def _latest_total(view: MetricsView, metric: str) -> float | None:
    return view.latest(metric)


# =====================================================================================
# KEDA, Prometheus scaler
#
# https://keda.sh/docs/latest/scalers/prometheus/ and
# https://keda.sh/docs/latest/reference/scaledobject-spec/
# KEDA registers the trigger as an External metric of an HPA it creates, target type
# AverageValue by default, with the HPA's default behavior unless the ScaledObject sets
# one. pollingInterval (30 s default) is how often the KEDA operator checks triggers to
# activate 0 <-> 1 replica; between 1 and N the HPA asks KEDA's metrics server at every
# sync, which queries Prometheus then, unless ``useCachedMetrics`` is set, in which case
# the value is refreshed once per pollingInterval. The vLLM production stack ships the
# trigger with ``vllm:num_requests_waiting`` and threshold 5
# (https://github.com/vllm-project/production-stack/blob/main/docs/source/use_cases/autoscaling-keda.rst);
# its query has no ``sum()``, which only works with one pod (the scaler needs a single
# element), so the benchmark uses ``sum(vllm:num_requests_waiting)``.
# =====================================================================================


class _PolledMetric:
    """KEDA's metric cache with ``useCachedMetrics``: refreshed every polling interval."""

    def __init__(self, polling_interval_s: float) -> None:
        self.interval = polling_interval_s
        self.at: float | None = None
        self.value: float | None = None

    def __call__(self, view: MetricsView, metric: str) -> float | None:
        if self.at is None or view.now - self.at >= self.interval - 1e-9:
            self.at, self.value = view.now, view.latest(metric)
        return self.value


def keda(
    *,
    threshold: float = 5.0,
    polling_interval_s: float = 30.0,
    use_cached_metrics: bool = False,
    behavior: HpaBehavior | None = None,
) -> Hpa:
    """KEDA's Prometheus trigger on the deployment's total waiting requests."""
    fetch = _PolledMetric(polling_interval_s) if use_cached_metrics else None
    return Hpa(
        "keda",
        metric="waiting",
        target=threshold,
        source="external",
        behavior=behavior,
        metric_fetch=fetch,
    )


# =====================================================================================
# Knative Pod Autoscaler (KPA)
#
# https://knative.dev/docs/serving/autoscaling/kpa-specific/ (stable window 60 s, panic
# window 10 % of it, panic threshold 200 %, max scale-up rate 1000, max scale-down rate 2)
# and https://knative.dev/docs/serving/autoscaling/concurrency/ (target 100 x 70 %
# utilisation by default). Decision step as in knative/serving
# pkg/autoscaler/scaling/autoscaler.go (autoscaler.Scale):
# https://github.com/knative/serving/blob/main/pkg/autoscaler/scaling/autoscaler.go
# The metric is the deployment's concurrency (requests in flight), averaged over the
# stable and panic windows of per-second samples. Knative's default target (100 in flight
# at 70 %) is a web-service figure far above an LLM replica's capacity; the benchmark
# passes 70 % of the in-flight requests a replica holds at its measured capacity instead
# (``KpaSpec.target`` is the product, i.e. Knative's TargetValue).
# =====================================================================================


@dataclass(frozen=True)
class KpaSpec:
    target: float  # per-pod concurrency target (containerConcurrency x utilisation)
    stable_window_s: float = 60.0
    panic_window_pct: float = 10.0
    panic_threshold: float = 2.0  # 200 %
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0

    @property
    def panic_window_s(self) -> float:
        return self.stable_window_s * self.panic_window_pct / 100.0


@dataclass
class KpaState:
    panic_time: float | None = None
    max_panic_pods: int = 0


def kpa_scale(
    spec: KpaSpec,
    state: KpaState,
    *,
    now: float,
    ready: int,
    stable_value: float,
    panic_value: float,
) -> int:
    """One ``autoscaler.Scale`` step (concurrency metric, reachable revision); updates
    ``state`` (panic start and the highest count asked for while panicking)."""
    ready_f = max(1.0, float(ready))
    max_up = math.ceil(spec.max_scale_up_rate * ready_f)
    max_down = math.floor(ready_f / spec.max_scale_down_rate)
    dspc = math.ceil(stable_value / spec.target)
    dppc = math.ceil(panic_value / spec.target)
    stable_pods = int(min(max(dspc, max_down), max_up))
    panic_pods = int(min(max(dppc, max_down), max_up))
    over = dppc / ready_f >= spec.panic_threshold
    if state.panic_time is None and over:
        state.panic_time = now
    elif over:
        state.panic_time = now
    elif state.panic_time is not None and state.panic_time + spec.stable_window_s < now:
        state.panic_time = None
        state.max_panic_pods = 0
    desired = stable_pods
    if state.panic_time is not None:
        desired = max(desired, panic_pods)
        if desired > state.max_panic_pods:
            state.max_panic_pods = desired
        desired = state.max_panic_pods
    return desired


class Kpa:
    """Knative's KPA. Like ``newAutoscaler``, it starts in panic mode when more than one
    pod is ready, keeping the current count until it has a window of data."""

    def __init__(self, spec: KpaSpec, name: str = "kpa") -> None:
        self.name = name
        self.spec = spec
        self.state: KpaState | None = None

    def decide(self, view: MetricsView, state: ScaleState) -> int:
        if self.state is None:
            self.state = KpaState()
            if state.ready > 1:
                self.state.panic_time = state.now
                self.state.max_panic_pods = state.ready
        stable = view.mean("concurrency", self.spec.stable_window_s)
        panic = view.mean("concurrency", self.spec.panic_window_s)
        if stable is None or panic is None:
            return state.spec  # no data yet: invalid scale result, nothing changes
        return kpa_scale(
            self.spec,
            self.state,
            now=state.now,
            ready=state.ready,
            stable_value=stable,
            panic_value=panic,
        )


# =====================================================================================
# AIBrix Pod Autoscaler (APA)
#
# Algorithm: vllm-project/aibrix pkg/controller/podautoscaler/algorithm/apa.go
# (computeTargetReplicas); defaults in pkg/controller/podautoscaler/context/context.go
# (max scale-up and scale-down rate 2, scale-down cooldown window 300 s, no scale-up
# cooldown); the sample PodAutoscaler samples/autoscaling/apa.yaml sets
# up-fluctuation-tolerance 0.1, down-fluctuation-tolerance 0.2, a 30 s metric window and
# kv_cache_usage_perc with target 0.5. Docs:
# https://aibrix.readthedocs.io/latest/features/autoscaling/metric-based-autoscaling.html
# https://github.com/vllm-project/aibrix/blob/main/pkg/controller/podautoscaler/algorithm/apa.go
#
# Cooldown: the docs call the scale-down cooldown window a stabilization window for
# scale-down recommendations, "similar to K8s HPA". The controller's
# stabilizeRecommendation (pkg/controller/podautoscaler/podautoscaler_controller.go)
# however picks the *lowest* recommendation in the window on the way down, which does
# not delay anything. "documented" (default) applies the HPA meaning (the highest
# recommendation in the window); "controller" follows the code.
# =====================================================================================


@dataclass(frozen=True)
class ApaSpec:
    target: float = 0.5
    up_tolerance: float = 0.1
    down_tolerance: float = 0.2
    max_scale_up_rate: float = 2.0
    max_scale_down_rate: float = 2.0
    window_s: float = 30.0
    up_cooldown_s: float = 0.0
    down_cooldown_s: float = 300.0
    cooldown: Literal["documented", "controller"] = "documented"


def apa_target_replicas(current: int, use_per_pod: float, spec: ApaSpec) -> int:
    """``computeTargetReplicas``: outside the fluctuation band, scale in proportion,
    by at most ``max_scale_up_rate`` / ``max_scale_down_rate`` per decision."""
    ratio = use_per_pod / spec.target
    if ratio > 1 + spec.up_tolerance:
        max_up = math.ceil(spec.max_scale_up_rate * current)
        return int(min(math.ceil(current * ratio), max_up))
    if ratio < 1 - spec.down_tolerance:
        max_down = math.floor(current / spec.max_scale_down_rate)
        return int(max(math.ceil(current * ratio), max_down))
    return current


def apa_cooldown(
    history: Sequence[tuple[float, int]],
    now: float,
    recommendation: int,
    current: int,
    spec: ApaSpec,
) -> int:
    """The cooldown step over the recommendations of the window, the new one included.

    Going up: the highest within the scale-up window. Going down: the highest within the
    scale-down window ("documented") or the lowest ("controller")."""
    if recommendation == current:
        return current
    up = recommendation > current
    window = spec.up_cooldown_s if up else spec.down_cooldown_s
    inside = [r for t, r in history if t > now - window] + [recommendation]
    if up or spec.cooldown == "documented":
        chosen = max(inside)
    else:
        chosen = min(inside)
    # The documented meaning never overshoots the direction it was asked for.
    if spec.cooldown == "documented" and not up:
        chosen = min(chosen, current)
    return chosen


class Apa:
    """AIBrix APA on the mean KV-cache use of the ready pods over its metric window."""

    def __init__(self, spec: ApaSpec | None = None, name: str = "apa") -> None:
        self.name = name
        self.spec = spec or ApaSpec()
        self.history: list[tuple[float, int]] = []

    def decide(self, view: MetricsView, state: ScaleState) -> int:
        current = state.spec
        if current > state.max_replicas:
            return state.max_replicas
        if current < state.min_replicas:
            return state.min_replicas
        use = view.mean("kv_avg", self.spec.window_s)
        if use is None:
            return current
        rec = apa_target_replicas(current, use, self.spec)
        rec = max(state.min_replicas, min(state.max_replicas, rec))
        desired = apa_cooldown(self.history, state.now, rec, current, self.spec)
        keep = max(self.spec.up_cooldown_s, self.spec.down_cooldown_s)
        self.history = [h for h in self.history if h[0] > state.now - keep]
        self.history.append((state.now, rec))
        return max(state.min_replicas, min(state.max_replicas, desired))


# =====================================================================================
# Ours: apps.autoscaling.engine.step
# =====================================================================================


@dataclass(frozen=True)
class OursSpec:
    """The benchmark's default LLM policy for the project's engine."""

    queue_per_replica: float = 1.0
    kv_target: float = 0.52
    panic: bool = True
    panic_window_s: float | None = None  # None: twice the evaluation period (see below)
    stable_window_s: float = 60.0
    scale_down_stabilization_s: float = 300.0
    # One replica per minute at most: KV-cache use falls faster than load when replicas
    # are added (small batches decode faster, so sequences hold their cache for less
    # time), so a proportional scale-down from an over-provisioned state undershoots.
    scale_down_policies: tuple[tuple[str, int, int], ...] = (("pods", 1, 60),)
    scale_up_policies: tuple[tuple[str, int, int], ...] = (("percent", 100, 15), ("pods", 4, 15))
    tolerance: float = 0.05


def ours_policy(
    spec: OursSpec,
    *,
    min_replicas: int,
    max_replicas: int,
    cold_start_s: float,
    eval_period_s: float,
) -> engine.Policy:
    """The engine Policy. The live loop keeps one reading per signal per evaluation in
    ``History.signal_samples`` and does not supply ``Obs.panic_value``; the engine's short
    window averages the reading being decided on with the earlier ones inside the window.
    The benchmark's default window, twice the evaluation period, spans the current and the
    previous evaluation's readings."""
    panic_window = spec.panic_window_s or 2.0 * eval_period_s
    return engine.Policy(
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        targets=(
            engine.Target("queue_length", spec.queue_per_replica, "per_replica_average"),
            engine.Target("kv_cache_usage", spec.kv_target, "utilization"),
        ),
        mode="enforce",
        tolerance=spec.tolerance,
        scale_down_stabilization_s=spec.scale_down_stabilization_s,
        scale_down_policies=tuple(engine.ScalingPolicy(*p) for p in spec.scale_down_policies),  # type: ignore[arg-type]
        scale_up_policies=tuple(engine.ScalingPolicy(*p) for p in spec.scale_up_policies),  # type: ignore[arg-type]
        panic_enabled=spec.panic,
        stable_window_s=max(spec.stable_window_s, panic_window),
        panic_window_s=panic_window,
        cold_start_s=cold_start_s,
    )


class Ours:
    """Drives :func:`apps.autoscaling.engine.step` as ``apps.autoscaling.evaluation`` does.

    Observations are what the live collector stores: the deployment's total waiting and
    running requests and the mean KV-cache use over the replicas that report, each with
    the age of its data. Replicas still starting are passed with their real start times.
    Every decision is applied (the simulation sets the count at once).
    """

    def __init__(self, policy: engine.Policy, name: str = "ours") -> None:
        self.name = name
        self.policy = policy
        self.history = engine.History()
        self.last_applied: int | None = None
        self.rules: Counter[str] = Counter()
        self.last_decision: engine.Decision | None = None

    def observations(self, view: MetricsView) -> dict[str, engine.Obs]:
        age = view.age_s
        out: dict[str, engine.Obs] = {}
        for signal, name in (("queue_length", "waiting"), ("running_requests", "running")):
            value = view.latest(name)
            out[signal] = (
                engine.Obs(value, age)
                if value is not None
                else engine.Obs(None, status="missing", reason="no sample yet")
            )
        kv = view.latest("kv_avg")
        out["kv_cache_usage"] = (
            engine.Obs(kv, age)
            if kv is not None
            else engine.Obs(None, status="missing", reason="no replica reported")
        )
        return out

    def measured(self, view: MetricsView) -> int | None:
        """How many replicas produced the readings (None: the ready ones)."""
        return None

    def decide(self, view: MetricsView, state: ScaleState) -> int:
        return self.step(self.observations(view), state, self.measured(view))

    def step(
        self,
        observations: dict[str, engine.Obs],
        state: ScaleState,
        measured: int | None,
        between_scrapes: bool = False,
    ) -> int:
        replicas = engine.ReplicaState(
            spec=state.spec,
            ready=state.ready,
            starting=state.starting,
            observed_spec=state.spec,
            last_applied=self.last_applied,
            measured=measured,
        )
        # The simulation carries out every decision at once.
        decision, self.history = engine.step(
            self.policy,
            observations,
            self.history,
            state.now,
            replicas=replicas,
            applied=True,
            between_scrapes=between_scrapes,
        )
        self.last_decision = decision
        self.rules[decision.rule] += 1
        if decision.changed:
            self.last_applied = decision.desired_replicas
        return decision.desired_replicas


# =====================================================================================
# Ours, engine v2: demand over learned capacity (apps.autoscaling.engine.capacity)
# =====================================================================================

# The window of the latency reading, as the live collector's ttft_p95 (a 1 m rate).
LATENCY_WINDOW_S = 60.0


@dataclass(frozen=True)
class OursV2Spec:
    """The benchmark's engine v2 policy: :func:`engine.presets.demand_capacity_policy`
    with the product's defaults, except the ``settings`` named here (keyword arguments
    of that function, e.g. ``(("utilization_target", 0.7),)``), and ``standby`` standby
    replicas for the ``ours+standby`` variant, which sizes at ``standby_utilization``
    when it is set (warm capacity answers a rise in seconds, so it may need less headroom
    than a cold start does; 0, the default: the same target as ``ours``)."""

    settings: tuple[tuple[str, float], ...] = ()
    standby: int = 2
    standby_utilization: float = 0.0


def ours_v2_policy(
    spec: OursV2Spec,
    *,
    min_replicas: int,
    max_replicas: int,
    initial_capacity: float,
    cold_start_s: float,
    latency_slo_s: float,
    pooling: float = 0.0,
    pool_size: int = 1,
    warm: bool = False,
) -> engine.Policy:
    """The policy a new deployment gets in the product, for this GPU profile: requests/s
    as the demand, ``initial_capacity`` requests/s per replica until learned, the
    deployment's cold start and its TTFT SLO. ``warm``: for ``ours+standby``, which
    sizes at ``spec.standby_utilization`` when that is set."""
    settings: dict[str, Any] = {"pooling": pooling, "pool_size": pool_size}
    settings.update(spec.settings)
    if warm and spec.standby_utilization > 0:
        settings["utilization_target"] = spec.standby_utilization
    return engine.demand_capacity_policy(
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        initial_capacity=initial_capacity,
        cold_start_s=cold_start_s,
        latency_slo_s=latency_slo_s,
        **settings,
    )


class OursV2(Ours):
    """Engine v2 driven through :func:`apps.autoscaling.engine.step`, as the live loop
    does. Besides v1's observations it reads what the live collector gives the
    ``demand_capacity`` target:

    * ``request_rate``: finished requests/s, the increase of the cumulative
      success counter over the last evaluation interval (``interval_s``);
    * ``queue_length``: the waiting requests, the gateway's queue included;
    * ``ttft_p95``: the TTFT histogram's 95th percentile over the last 60 s
      (``histogram_quantile`` of the bucket rates), missing when no first token was given.

    All are as of the newest visible sample (``now - scrape delay``)."""

    def __init__(self, policy: engine.Policy, interval_s: float, name: str = "ours") -> None:
        super().__init__(policy, name)
        self.interval_s = interval_s

    def measured(self, view: MetricsView) -> int | None:
        """The replicas behind the throughput: the mean ready count over the interval the
        rate covers (a replica that turned ready since did not produce it)."""
        ready = view.mean("ready", self.interval_s)
        return None if ready is None else round(ready)

    def observations(self, view: MetricsView) -> dict[str, engine.Obs]:
        out = super().observations(view)
        age = view.age_s
        rate = view.rate("finished", self.interval_s)
        out["request_rate"] = (
            engine.Obs(rate, age)
            if rate is not None
            else engine.Obs(None, status="missing", reason="fewer than two samples")
        )
        ttft = view.ttft_quantile(0.95, LATENCY_WINDOW_S)
        out["ttft_p95"] = (
            engine.Obs(ttft, age)
            if ttft is not None
            else engine.Obs(None, status="missing", reason="no first token in the window")
        )
        return out

    def fast(self, reading: FastReading, view: MetricsView, state: ScaleState) -> int | None:
        """The product's fast path (``apps.autoscaling.evaluation.fast_path_evaluate``):
        the replicas' own waiting and running requests replace the scraped ones (the
        finished rate stays the scraped one); when the engine then asks for more than is
        set or on the way, the full evaluation runs at once with them (and is kept in the
        history, as there); otherwise nothing happens until the next evaluation."""
        observations = self.observations(view)
        observations["queue_length"] = engine.Obs(reading.waiting, 0.0)
        observations["running_requests"] = engine.Obs(reading.running, 0.0)
        known = max(state.ready, self.last_applied or 0)
        quick = engine.decide(
            self.policy,
            observations,
            self.history,
            state.now,
            replicas=engine.ReplicaState(spec=known, ready=state.ready),
        )
        if quick.recommendation <= known:
            return None
        return self.step(observations, state, state.ready, between_scrapes=True)


# =====================================================================================
# Oracle
# =====================================================================================


class Scheduled:
    """Follows a precomputed replica schedule (the oracle's): ``counts[i]`` from
    ``i * step_s`` on."""

    def __init__(self, name: str, counts: Sequence[int], step_s: float) -> None:
        self.name = name
        self.counts = list(counts)
        self.step_s = step_s

    def decide(self, view: MetricsView, state: ScaleState) -> int:
        i = min(len(self.counts) - 1, max(0, int(state.now / self.step_s + 1e-9)))
        return self.counts[i]
