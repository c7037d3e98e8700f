"""The scale decision, as one pure function, and the control step around it.

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

``demand_capacity``
    The observation is the deployment's demand (finished requests/s or tokens/s); the target
    is the utilisation (0-1) each replica should run at against its capacity, which is
    learned online (:mod:`.capacity`, :class:`.types.CapacitySizing`). desired =
    ceil((demand + backlog / drain time) / (capacity * target)); scale-up has no dead band,
    scale-down needs the tolerance and never goes below what the peak demand of the last
    ``peak_window_s`` needs. :func:`demand_capacity_policy` builds a policy with the
    defaults a new policy gets in the product.

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

One control step is :func:`step`: it decides, then advances the history (the raw
``Decision.recommendation``, the load, the panic time, the scale event if the change was
applied, and the latest signal readings); its docstring defines "applied". After applying
(or accepting) a decision, the caller's ``last_applied`` becomes ``desired_replicas``. While
metrics are missing the recommendation recorded is the current count, so after an outage the
scale-down window has to fill with real readings before anything is removed (HPA records
nothing during an outage; this is stricter).

Layout: :mod:`.types` (inputs and outputs), :mod:`.targets` (per-target proposals),
:mod:`.capacity` (``demand_capacity`` sizing and capacity learning), :mod:`.rules` (one
small function per rule over a frozen draft), :mod:`.reasons` (wording), :mod:`.decide`,
:mod:`.step` and :mod:`.presets` (ready-made policies).

Deviations from Kubernetes HPA, all outside HPA-equivalent settings: replicas still starting
and the other LLM-specific rules above; a spec of 0 is not "autoscaling disabled" (use
mode "off") but is brought back to the floor, or handled by scale-to-zero when enabled.
"""

from __future__ import annotations

from .decide import decide
from .presets import (
    DEMAND_SCALE_DOWN_POLICIES,
    DEMAND_SCALE_UP_POLICIES,
    demand_capacity_policy,
    demand_target,
)
from .step import Applied, step
from .types import (
    DEFAULT_SCALE_DOWN_POLICIES,
    DEFAULT_SCALE_UP_POLICIES,
    MAX_POOLING,
    SLO_BURN_RATE,
    Capacity,
    CapacitySizing,
    CronMinimum,
    Decision,
    Event,
    History,
    Obs,
    Policy,
    Proposal,
    ReplicaState,
    ScalingPolicy,
    SloBoost,
    Target,
    pooling_from,
)

__all__ = [
    "DEFAULT_SCALE_DOWN_POLICIES",
    "DEFAULT_SCALE_UP_POLICIES",
    "DEMAND_SCALE_DOWN_POLICIES",
    "DEMAND_SCALE_UP_POLICIES",
    "MAX_POOLING",
    "SLO_BURN_RATE",
    "Applied",
    "Capacity",
    "CapacitySizing",
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
    "demand_capacity_policy",
    "demand_target",
    "pooling_from",
    "step",
]
