"""What a load test found: per-step figures, functional checks, capacity; JSON-safe."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, NamedTuple

from apps.fleetsim.capacity import interpolated_quantile

from .plan import LoadTestPlan, WorkloadSpec

__all__ = [
    "REDACTED",
    "CheckOutcome",
    "ClientStats",
    "LoadTestResult",
    "Quantiles",
    "StepResult",
    "plan_from_dict",
    "plan_to_dict",
]

REDACTED = "<redacted>"


@dataclass(frozen=True)
class Quantiles:
    """Latency quantiles in seconds (None without samples); ``slo`` is at the plan's
    ``slo_quantile``, the one the SLO is judged on. Quantiles interpolate between order
    statistics exactly as the simulator's :func:`apps.fleetsim.capacity.capacity_at_slo`
    does, so measured and modelled capacities compare like with like."""

    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    slo: float | None = None
    samples: int = 0

    @classmethod
    def of(cls, values: list[float], slo_quantile: float) -> Quantiles:
        return cls(
            interpolated_quantile(values, 0.50),
            interpolated_quantile(values, 0.95),
            interpolated_quantile(values, 0.99),
            interpolated_quantile(values, slo_quantile),
            len(values),
        )


@dataclass(frozen=True)
class StepResult:
    """One stretch of traffic at one asked rate.

    ``sent`` counts the requests the schedule asked for, ``client_limited`` those of them
    not sent because ``max_concurrency`` requests were in flight, ``completed`` the
    successful answers and ``errors`` the failures by kind (``timeout``, ``connection``,
    ``http_<status>``, ``stream_error``, ``incomplete_stream``, ``malformed``,
    ``cancelled``). ``itl`` is per request: its mean gap between output tokens.
    ``achieved_rps`` is the requests started over the sending window (stretched when the
    client started the last ones late); ``lag_*`` how late requests started against the
    schedule; ``cpu_s`` the client's CPU time during the step.
    """

    index: int
    phase: str  # "functional", "performance", "ramp" or "refine"
    rate_rps: float
    achieved_rps: float
    duration_s: float
    sent: int
    completed: int
    errors: dict[str, int]
    client_limited: int
    ttft: Quantiles
    itl: Quantiles
    e2e: Quantiles
    output_tokens_per_s: float
    error_rate: float
    slo_met: bool
    slo_reasons: list[str]
    lag_p99_s: float
    max_lag_s: float
    cpu_s: float
    interrupted: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepResult:
        values = dict(data)
        for key in ("ttft", "itl", "e2e"):
            values[key] = Quantiles(**values[key])
        return cls(**_known(cls, values))


class CheckOutcome(NamedTuple):
    """A functional check: its name, whether it passed, and what was observed (a named
    tuple: ``name, passed, observed = outcome`` works too)."""

    name: str
    passed: bool
    observed: str


@dataclass(frozen=True)
class ClientStats:
    """The client's own cost: CPU seconds of its event loop thread, how late it started
    requests against the schedule, and requests not sent for ``max_concurrency``."""

    cpu_s: float = 0.0
    max_lag_s: float = 0.0
    lag_p99_s: float = 0.0
    client_limited: int = 0
    requests: int = 0


@dataclass
class LoadTestResult:
    """The outcome of :func:`apps.golive.loadtest.run_load_test`.

    ``capacity_rps`` (stress only) is the highest asked rate whose step met the SLO, None
    when none did; ``stopped_reason`` says why the run ended: ``completed``,
    ``slo_broken`` (stress found its limit), ``max_rate_rps`` (stress met the SLO up to the
    plan's ceiling: the capacity is a lower bound), ``max_total_s``, ``should_stop``.
    """

    plan: LoadTestPlan
    started_at: float
    finished_at: float = 0.0
    steps: list[StepResult] = field(default_factory=list)
    functional: list[CheckOutcome] = field(default_factory=list)
    capacity_rps: float | None = None
    capacity_rps_per_replica: float | None = None
    stopped_reason: str = "completed"
    client: ClientStats = field(default_factory=ClientStats)

    @property
    def passed(self) -> bool:
        """Every functional check passed and every step met the SLO (stress: a capacity
        was found)."""
        if self.plan.mode == "functional":
            return bool(self.functional) and all(c.passed for c in self.functional)
        if self.plan.mode == "stress":
            return self.capacity_rps is not None
        return bool(self.steps) and all(s.slo_met for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (no NaN or infinity; header values redacted)."""
        return _json_safe(
            {
                "plan": plan_to_dict(self.plan),
                "started_at": self.started_at,
                "finished_at": self.finished_at,
                "steps": [asdict(s) for s in self.steps],
                "functional": [c._asdict() for c in self.functional],
                "capacity_rps": self.capacity_rps,
                "capacity_rps_per_replica": self.capacity_rps_per_replica,
                "stopped_reason": self.stopped_reason,
                "client": asdict(self.client),
                "passed": self.passed,
            }
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoadTestResult:
        return cls(
            plan=plan_from_dict(data["plan"]),
            started_at=data["started_at"],
            finished_at=data.get("finished_at", 0.0),
            steps=[StepResult.from_dict(s) for s in data.get("steps", [])],
            functional=[CheckOutcome(**c) for c in data.get("functional", [])],
            capacity_rps=data.get("capacity_rps"),
            capacity_rps_per_replica=data.get("capacity_rps_per_replica"),
            stopped_reason=data.get("stopped_reason", "completed"),
            client=ClientStats(**_known(ClientStats, data.get("client", {}))),
        )


def plan_to_dict(plan: LoadTestPlan) -> dict[str, Any]:
    """The plan as JSON-safe data; header values (credentials) are replaced by
    :data:`REDACTED`."""
    data = asdict(plan)
    data["headers"] = {name: REDACTED for name in plan.headers}
    return data


def plan_from_dict(data: dict[str, Any]) -> LoadTestPlan:
    values = _known(LoadTestPlan, data)
    values["workload"] = WorkloadSpec(**_known(WorkloadSpec, data.get("workload") or {}))
    values["headers"] = dict(data.get("headers") or {})
    return LoadTestPlan(**values)


def _known(cls: Any, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value
