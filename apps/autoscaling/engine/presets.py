"""Ready-made policies: sizing from demand and learned capacity with asymmetric headroom.

These are the settings a new policy gets in the product (``AutoscalingPolicy``'s defaults)
and what a simulation constructs with :func:`demand_capacity_policy`, so both run the same
engine with the same settings.
"""

from __future__ import annotations

from typing import Any, Final

from .types import CapacitySizing, Policy, ScalingPolicy, Target

DEFAULT_DEMAND_SIGNAL: Final = "request_rate"
DEFAULT_UTILIZATION: Final = 0.8
# Up: straight to the need (11x the count or 1000 more per 15 s: no practical limit).
DEMAND_SCALE_UP_POLICIES: Final = (
    ScalingPolicy("percent", 1000, 15),
    ScalingPolicy("pods", 1000, 15),
)
# Down: proportionally, 10 % of the count per minute (at least one replica of any count ≥ 2).
DEMAND_SCALE_DOWN_POLICIES: Final = (ScalingPolicy("percent", 10, 60),)
DEMAND_SCALE_DOWN_STABILIZATION_S: Final = 60.0


def demand_target(
    signal: str = DEFAULT_DEMAND_SIGNAL, utilization: float = DEFAULT_UTILIZATION
) -> Target:
    return Target(signal, utilization, "demand_capacity")


def demand_capacity_policy(
    *,
    min_replicas: int,
    max_replicas: int,
    initial_capacity: float,
    demand_signal: str = DEFAULT_DEMAND_SIGNAL,
    utilization_target: float = DEFAULT_UTILIZATION,
    cold_start_s: float = 0.0,
    latency_slo_s: float | None = None,
    latency_signal: str = "ttft_p95",
    backlog_signal: str = "queue_length",
    scale_down_percent_per_minute: int = 10,
    peak_window_s: float = 600.0,
    learn_rate: float = 0.2,
    learn_range: float = 2.0,
    learn_min_utilization: float = 0.5,
    probe_latency_ratio: float = 0.5,
    backlog_drain_s: float | None = None,
    forecast_periods_s: tuple[float, ...] = (),
    pooling: float = 0.0,
    pool_size: int = 1,
    **overrides: Any,
) -> Policy:
    """A policy sized from demand over learned capacity, with the product's defaults.

    ``initial_capacity``: what one replica sustains at the SLO, in the demand signal's unit
    (requests/s for "request_rate"), from the GPU/model profile (a load test on
    ``pool_size`` replicas); it is refined online. ``pooling``: how much more a replica of
    a larger pool sustains (:func:`.types.pooling_from` fits it to load tests at two pool
    sizes; 0, the default, assumes nothing).
    The other arguments are :class:`CapacitySizing`'s (same names) and the scale-down
    percentage per minute; ``overrides``: any other :class:`Policy` field (mode, tolerance,
    panic, ...).
    """
    fields: dict[str, Any] = {
        "mode": "enforce",
        "scale_up_policies": DEMAND_SCALE_UP_POLICIES,
        "scale_down_policies": (ScalingPolicy("percent", scale_down_percent_per_minute, 60),),
        "scale_down_stabilization_s": DEMAND_SCALE_DOWN_STABILIZATION_S,
        "cold_start_s": cold_start_s,
    }
    fields.update(overrides)
    return Policy(
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        targets=(demand_target(demand_signal, utilization_target),),
        capacity=CapacitySizing(
            initial_per_replica=initial_capacity,
            backlog_signal=backlog_signal,
            latency_signal=latency_signal,
            latency_slo_s=latency_slo_s,
            learn_rate=learn_rate,
            learn_range=learn_range,
            learn_min_utilization=learn_min_utilization,
            probe_latency_ratio=probe_latency_ratio,
            backlog_drain_s=backlog_drain_s,
            peak_window_s=peak_window_s,
            forecast_periods_s=forecast_periods_s,
            pooling=pooling,
            pool_size=pool_size,
        ),
        **fields,
    )
