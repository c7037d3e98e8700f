"""The built-in load test: drives an OpenAI-compatible endpoint with a trace-shaped
workload and measures TTFT, inter-token latency, end-to-end latency, throughput and errors
(see docs/loadtest.md). Pure: no Django, runnable from any thread."""

from .engine import run_load_test
from .plan import LoadTestPlan, WorkloadSpec, validate_plan
from .result import CheckOutcome, ClientStats, LoadTestResult, Quantiles, StepResult

__all__ = [
    "CheckOutcome",
    "ClientStats",
    "LoadTestPlan",
    "LoadTestResult",
    "Quantiles",
    "StepResult",
    "WorkloadSpec",
    "run_load_test",
    "validate_plan",
]
