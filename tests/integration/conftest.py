"""Fixtures that start real servers on free loopback ports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from apps.devstack.prometheus import find_binary
from tests.integration.celery_support import (  # noqa: F401 - shared fixtures
    celery_redis,
    private_redis,
    worker_processes,
)
from tests.servers import binary_or_skip


@pytest.fixture
def prometheus_binary() -> str:
    return binary_or_skip(find_binary(), "prometheus", "prometheus")


@pytest.fixture
def sim_fleet() -> Iterator[tuple[object, int]]:
    """Two simulated vLLM deployments served on a free port, driven in real time."""
    from apps.fleetsim.fleet import Fleet
    from tests.integration.fleets import served_in_real_time, steady_deployment

    fleet = Fleet(
        [
            steady_deployment("chat", "llama-8b", "A100-80GB", replicas=2, rate=8.0, seed=1),
            steady_deployment("code", "qwen-7b", "H100-80GB", replicas=1, rate=3.0, seed=2),
        ]
    )
    with served_in_real_time(fleet) as port:
        yield fleet, port


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


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """moto's AWS API server (EC2, Auto Scaling) on a free loopback port, for a module."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
