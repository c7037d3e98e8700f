"""Simulated vLLM fleets for integration and browser tests: deployments with steady
traffic in the namespace ``llm``, a fleet served over HTTP while it runs in real time, and
the fixtures that start them (``chat_simulator``) and find Prometheus
(``prometheus_binary``), imported by the conftests that use them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import pytest

from apps.devstack.prometheus import find_binary
from apps.fleetsim import workload
from apps.fleetsim.exposition import serve
from apps.fleetsim.fleet import Fleet, SimulatedDeployment
from tests.servers import binary_or_skip


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


@pytest.fixture
def prometheus_binary() -> str:
    return binary_or_skip(find_binary(), "prometheus", "prometheus")


@dataclass
class ChatSimulator:
    """The simulator's "chat" deployment, alone in a fleet served on ``port``."""

    fleet: Any
    sim: Any
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def chat_simulator() -> Iterator[Callable[..., ChatSimulator]]:
    """Starts "chat" (namespace llm, an A100 with a short cold start, steady traffic) in
    real time; what it started is stopped after the test."""
    from apps.fleetsim import workload
    from apps.fleetsim.exposition import serve
    from apps.fleetsim.fleet import Fleet, SimulatedDeployment
    from apps.fleetsim.profiles import get_profile

    running: list[tuple[Any, Any]] = []

    def start(
        *, replicas: int = 1, rate: float = 2.0, cold_start_s: float = 2.0,
        workload_seed: int = 7, seed: int = 0,
    ) -> ChatSimulator:  # fmt: skip
        profile = replace(get_profile("A100-80GB"), cold_start_s=cold_start_s)
        sim = SimulatedDeployment(
            "chat",
            "llama",
            "llm",
            profile,
            replicas=replicas,
            workload=workload.steady(rate, 3600, seed=workload_seed),
            seed=seed,
        )
        fleet = Fleet([sim])
        server, port = serve(fleet)
        running.append((fleet, server))
        fleet.run_realtime()
        return ChatSimulator(fleet, sim, port)

    yield start
    for fleet, server in reversed(running):
        fleet.stop()
        server.stop()
