"""What a load test is asked to do (:class:`LoadTestPlan`) and the bounds it must respect."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from apps.fleetsim.workload import LENGTH_PRESETS

__all__ = [
    "APIS",
    "HARD_MAX_CONCURRENCY",
    "HARD_MAX_RATE_RPS",
    "HARD_MAX_TOTAL_S",
    "MODES",
    "LoadTestPlan",
    "WorkloadSpec",
    "validate_plan",
]

MODES = ("functional", "performance", "stress")
APIS = ("chat", "completions")
# Ceilings no plan may exceed, whatever the caller asks: the client is one Python process.
HARD_MAX_TOTAL_S = 3600.0
HARD_MAX_RATE_RPS = 2000.0
HARD_MAX_CONCURRENCY = 4096


@dataclass(frozen=True)
class WorkloadSpec:
    """The prompt and output length mix: a named preset, or the lengths of a CSV trace
    (Azure format: ``TIMESTAMP,ContextTokens,GeneratedTokens``; only the lengths are used,
    arrivals stay Poisson at the plan's rate). ``max_prompt_tokens`` clips prompts to the
    deployment's limit when it is known."""

    preset: str = "chat"
    trace_path: str | None = None
    max_prompt_tokens: int | None = None


@dataclass(frozen=True)
class LoadTestPlan:
    """One load test of an OpenAI-compatible endpoint (see docs/loadtest.md).

    ``rate_rps`` is the target of a performance run and the first step of a stress run;
    ``duration_s`` the length of the whole performance run or of each stress step. A
    stress run multiplies the rate by ``rate_factor`` after every step that meets the SLO,
    up to ``max_rate_rps``, then bisects ``refine_steps`` times between the last rate that
    met it and the first that did not. ``max_total_s`` bounds the whole run,
    ``max_concurrency`` the requests in flight, ``request_timeout_s`` each request.
    ``ignore_eos`` asks the server (vLLM's extension) to generate exactly ``max_tokens``.
    """

    base_url: str
    model: str
    mode: str
    rate_rps: float = 1.0
    duration_s: float = 30.0
    max_rate_rps: float = 50.0
    rate_factor: float = 1.5
    max_total_s: float = 300.0
    max_concurrency: int = 256
    slo_ttft_s: float = 2.0
    slo_itl_s: float = 0.1
    slo_quantile: float = 0.95
    max_error_rate: float = 0.01
    replicas: int = 1
    stream: bool = True
    api: str = "chat"
    workload: WorkloadSpec = WorkloadSpec()
    headers: Mapping[str, str] = field(default_factory=dict)
    request_timeout_s: float = 120.0
    seed: int = 0
    refine_steps: int = 3
    ignore_eos: bool = True

    @property
    def endpoint_path(self) -> str:
        return "/v1/chat/completions" if self.api == "chat" else "/v1/completions"

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path


def _number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_plan(plan: LoadTestPlan) -> list[str]:
    """Human-readable reasons why ``plan`` cannot run; empty when it can."""
    problems: list[str] = []
    parts = urlsplit(plan.base_url) if isinstance(plan.base_url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append("base_url must be an http:// or https:// URL with a host")
    elif parts.path.rstrip("/") or parts.query or parts.fragment:
        problems.append("base_url must be the server's root (no path: /v1 is added)")
    if not isinstance(plan.model, str) or not plan.model.strip():
        problems.append("model must be a non-empty string")
    if plan.mode not in MODES:
        problems.append(f"mode must be one of {', '.join(MODES)}")
    if plan.api not in APIS:
        problems.append(f"api must be one of {', '.join(APIS)}")
    positive = {
        "rate_rps": plan.rate_rps,
        "duration_s": plan.duration_s,
        "max_rate_rps": plan.max_rate_rps,
        "max_total_s": plan.max_total_s,
        "slo_ttft_s": plan.slo_ttft_s,
        "slo_itl_s": plan.slo_itl_s,
        "request_timeout_s": plan.request_timeout_s,
    }
    for name, value in positive.items():
        if not _number(value) or value <= 0:
            problems.append(f"{name} must be a positive number")
    if _number(plan.max_total_s) and plan.max_total_s > HARD_MAX_TOTAL_S:
        problems.append(f"max_total_s must be at most {HARD_MAX_TOTAL_S:g} s")
    if _number(plan.max_rate_rps) and plan.max_rate_rps > HARD_MAX_RATE_RPS:
        problems.append(f"max_rate_rps must be at most {HARD_MAX_RATE_RPS:g} requests/s")
    if _number(plan.rate_rps) and _number(plan.max_rate_rps) and plan.rate_rps > plan.max_rate_rps:
        problems.append("rate_rps must not exceed max_rate_rps")
    if (
        _number(plan.duration_s)
        and _number(plan.max_total_s)
        and plan.mode != "functional"
        and plan.duration_s > plan.max_total_s
    ):
        problems.append("duration_s must not exceed max_total_s")
    if not _number(plan.rate_factor) or plan.rate_factor <= 1.0:
        problems.append("rate_factor must be a number above 1")
    if not _integer(plan.max_concurrency) or not 1 <= plan.max_concurrency <= HARD_MAX_CONCURRENCY:
        problems.append(f"max_concurrency must be an integer from 1 to {HARD_MAX_CONCURRENCY}")
    if not _number(plan.slo_quantile) or not 0.0 < plan.slo_quantile < 1.0:
        problems.append("slo_quantile must be between 0 and 1 (exclusive)")
    if not _number(plan.max_error_rate) or not 0.0 <= plan.max_error_rate < 1.0:
        problems.append("max_error_rate must be from 0 up to (not including) 1")
    if not _integer(plan.replicas) or plan.replicas < 1:
        problems.append("replicas must be a positive integer")
    if not _integer(plan.refine_steps) or not 0 <= plan.refine_steps <= 10:
        problems.append("refine_steps must be an integer from 0 to 10")
    if not _integer(plan.seed):
        problems.append("seed must be an integer")
    if not isinstance(plan.headers, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in plan.headers.items()
    ):
        problems.append("headers must map strings to strings")
    problems.extend(_workload_problems(plan.workload))
    return problems


def _workload_problems(spec: WorkloadSpec) -> list[str]:
    problems = []
    if spec.trace_path is None and spec.preset not in LENGTH_PRESETS:
        problems.append(f"workload preset must be one of {', '.join(LENGTH_PRESETS)}")
    if spec.trace_path is not None and not (
        isinstance(spec.trace_path, str) and os.path.isfile(spec.trace_path)
    ):
        problems.append(f"workload trace {spec.trace_path!r} is not a readable file")
    if spec.max_prompt_tokens is not None and (
        not _integer(spec.max_prompt_tokens) or spec.max_prompt_tokens < 8
    ):
        problems.append("workload max_prompt_tokens must be an integer of at least 8")
    return problems
