"""Fixtures that start real servers on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.celery_support import (  # noqa: F401 - shared fixtures
    celery_redis,
    private_redis,
    worker_processes,
)
from tests.integration.fleets import (  # noqa: F401 - shared fixtures
    chat_simulator,
    prometheus_binary,
)
from tests.integration.k8s_fake_apiserver import FakeApiServer
from tests.integration.logs.clickhouse import (  # noqa: F401 - shared fixtures
    clickhouse_server,
    clickhouse_url,
)


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


@pytest.fixture
def apiserver() -> Iterator[FakeApiServer]:
    """The fake Kubernetes API server (tests/integration/k8s_fake_apiserver.py), empty."""
    server = FakeApiServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def kubeconfig(apiserver: FakeApiServer, tmp_path: Path) -> Path:
    """A kubeconfig file whose context "fake" reaches ``apiserver`` with its token."""
    return apiserver.write_kubeconfig(tmp_path / "kubeconfig", context="fake")
