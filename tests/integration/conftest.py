"""Fixtures that start real servers on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from apps.devstack.prometheus import find_binary
from tests.integration.celery_support import (  # noqa: F401 - shared fixtures
    celery_redis,
    private_redis,
    worker_processes,
)


@pytest.fixture
def prometheus_binary() -> str:
    binary = find_binary()
    if binary is None:
        pytest.skip("prometheus binary not installed (Debian package 'prometheus')")
    return binary


@pytest.fixture
def sim_fleet() -> Iterator[tuple[object, int]]:
    """Two simulated vLLM deployments served on a free port, driven in real time."""
    from apps.fleetsim import workload
    from apps.fleetsim.exposition import serve
    from apps.fleetsim.fleet import Fleet, SimulatedDeployment

    fleet = Fleet(
        [
            SimulatedDeployment(
                "chat",
                "llama-8b",
                "llm",
                "A100-80GB",
                replicas=2,
                workload=workload.steady(8.0, 3600, seed=1),
                seed=1,
            ),
            SimulatedDeployment(
                "code",
                "qwen-7b",
                "llm",
                "H100-80GB",
                replicas=1,
                workload=workload.steady(3.0, 3600, seed=2),
                seed=2,
            ),
        ]
    )
    server, port = serve(fleet)
    fleet.run_realtime(speed=1.0)
    try:
        yield fleet, port
    finally:
        fleet.stop()
        server.stop()
