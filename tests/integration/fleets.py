"""Simulated vLLM fleets for integration tests: deployments with steady traffic in the
namespace ``llm``, and a fleet served over HTTP while it runs in real time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from apps.fleetsim import workload
from apps.fleetsim.exposition import serve
from apps.fleetsim.fleet import Fleet, SimulatedDeployment


def steady_deployment(
    name: str, model: str, gpu: Any, replicas: int, rate: float, seed: int, duration_s: float = 3600
) -> SimulatedDeployment:
    """``rate`` requests/s for ``duration_s``, the traffic drawn with ``seed`` too."""
    return SimulatedDeployment(
        name,
        model,
        "llm",
        gpu,
        replicas=replicas,
        workload=workload.steady(rate, duration_s, seed=seed),
        seed=seed,
    )


@contextmanager
def served_in_real_time(fleet: Fleet) -> Iterator[int]:
    """The fleet's simulator API on a free port (yielded), the fleet running in real time;
    both stopped afterwards."""
    server, port = serve(fleet)
    fleet.run_realtime()
    try:
        yield port
    finally:
        fleet.stop()
        server.stop()
