"""Fixtures for the fleet simulator tests (pure Python: no Django settings, no database)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from apps.fleetsim.exposition import FleetHTTPServer, serve
from apps.fleetsim.fleet import Fleet, SimulatedDeployment
from apps.fleetsim.workload import AZURE_CONV_TRACE_PATH, find_azure_trace, steady


@pytest.fixture(scope="session")
def azure_trace() -> Path:
    path = find_azure_trace()
    if path is None:
        pytest.skip(
            f"Azure trace not found at {AZURE_CONV_TRACE_PATH} or ../shared/traces "
            "(it is shared data, never vendored into the repository)"
        )
    return path


@pytest.fixture
def small_fleet() -> Fleet:
    """Two deployments, one serving a steady load, advanced a little."""
    chat = SimulatedDeployment(
        "chat", "llama-3.1-8b", "prod", "A100-80GB", 2, steady(3.0, 600.0, seed=7)
    )
    batch = SimulatedDeployment("batch", "llama-3.1-8b", "jobs", "L4", 1, ())
    fleet = Fleet([chat, batch])
    fleet.step_to(60.0)
    return fleet


@pytest.fixture
def fleet_server(small_fleet: Fleet) -> Iterator[tuple[Fleet, str]]:
    server: FleetHTTPServer
    server, port = serve(small_fleet, host="127.0.0.1", port=0)
    try:
        yield small_fleet, f"http://127.0.0.1:{port}"
    finally:
        server.stop()
