"""Go-live checks against the fleet simulator: real replicas answering /v1/models over HTTP,
their DCGM and vLLM series scraped by a real Prometheus, the metrics collected as the
control loop does. A different served model name fails the version check, a GPU mismatch
fails environment, a deployment whose metrics are missing fails monitoring."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from apps.devstack.prometheus import EmbeddedPrometheus, ScrapeTarget
from apps.fleetsim.exposition import serve
from apps.fleetsim.fleet import Fleet
from apps.fleetsim.replica_http import ReplicaHTTPServer
from apps.golive.models import CheckResult
from apps.golive.services import checks_run
from apps.integrations.prometheus import PrometheusClient
from apps.metrics.services import metrics_collect_shard
from tests.factories.inventory import LLMModelFactory, SimulatedDeploymentFactory
from tests.integration.fleets import steady_deployment
from tests.servers import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

SERVED = "llama-3.1-8b"
KEYS = ["model.served_version", "environment.gpu", "environment.framework", "monitoring.signals"]


@pytest.fixture
def simulated(prometheus_binary: str, tmp_path: Path, settings) -> Iterator[tuple[str, str]]:
    """ "chat" (2 A100 replicas) served over HTTP and scraped; yields (Prometheus URL, the
    base URL of one replica's OpenAI-compatible server)."""
    fleet = Fleet([steady_deployment("chat", SERVED, "A100-80GB", replicas=2, rate=4.0, seed=3)])
    replicas = ReplicaHTTPServer(fleet, tick_s=0.02)
    replicas.start()
    api, port = serve(fleet)
    fleet.run_realtime(speed=1.0)
    prom = EmbeddedPrometheus(
        targets=[ScrapeTarget("fleetsim", f"127.0.0.1:{port}", 1)], binary=prometheus_binary
    )
    prom.start()
    settings.PROMETHEUS_URL = prom.url
    settings.METRICS_RATE_WINDOW = "15s"
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    try:
        endpoint = wait_for(replicas.endpoints, 30, "a replica listening")[0]
        yield prom.url, f"http://127.0.0.1:{endpoint['port']}/v1"
    finally:
        prom.cleanup()
        fleet.stop()
        api.stop()
        replicas.stop()


def _statuses(deployment) -> dict[str, CheckResult]:
    checks_run(deployment=deployment, keys=KEYS)
    return {key: CheckResult.objects.filter(deployment=deployment, key=key).first() for key in KEYS}


def test_checks_against_simulator__mismatches_fail_each_in_its_group(simulated):
    prom_url, endpoint = simulated
    model = LLMModelFactory(name=SERVED)
    selector = '{namespace="llm", deployment="chat"}'
    common = {"team": model.team, "model": model, "endpoint_url": endpoint, "max_replicas": 4}
    good = SimulatedDeploymentFactory(
        name="chat", gpu_type="a100-80gb", prometheus_selector=selector, **common
    )
    ghost = SimulatedDeploymentFactory(
        name="ghost",
        gpu_type="a100-80gb",
        prometheus_selector='{namespace="llm", deployment="ghost"}',
        **common,
    )
    client = PrometheusClient(prom_url)
    wait_for(
        lambda: len(client.query('DCGM_FI_DEV_GPU_UTIL{deployment="chat"}')) == 2,
        60,
        "both replicas' GPUs in Prometheus",
        interval_s=0.5,
    )

    last: list[str] = []

    def collected() -> bool:
        metrics_collect_shard(shard=0, shards=1)
        signals = _statuses(good)["monitoring.signals"]
        last[:] = [signals.message]
        return signals.status == "pass"

    try:
        wait_for(collected, 90, "every catalogue signal of chat fresh", interval_s=1.0)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last: {last}") from None

    # Created once chat's metrics are stored: the collector maps each series to one
    # deployment, so copies with the same selector are only checked on what they read
    # themselves (the endpoint, Prometheus).
    wrong_gpu = SimulatedDeploymentFactory(
        name="chat-h100", gpu_type="h100-80gb", prometheus_selector=selector, **common
    )
    wrong_model = SimulatedDeploymentFactory(
        name="chat-other",
        gpu_type="a100-80gb",
        prometheus_selector=selector,
        **{**common, "model": LLMModelFactory(team=model.team, name="org/other-model")},
    )
    ok = _statuses(good)
    assert {k: r.status for k, r in ok.items()} == dict.fromkeys(KEYS, "pass"), {
        k: r.message for k, r in ok.items()
    }
    assert ok["environment.gpu"].observed["models"] == ["NVIDIA A100-SXM4-80GB"]
    assert ok["environment.gpu"].observed["pods"] == 2
    assert ok["model.served_version"].observed["served"] == [SERVED]
    assert ok["environment.gpu"].evidence_url.startswith(prom_url + "/graph?")

    gpu = _statuses(wrong_gpu)
    assert gpu["environment.gpu"].status == "fail"
    assert "A100" in gpu["environment.gpu"].message
    assert gpu["model.served_version"].status == "pass"

    name = _statuses(wrong_model)
    assert name["model.served_version"].status == "fail"
    assert "org/other-model" in name["model.served_version"].message
    assert name["environment.gpu"].status == "pass"

    missing = _statuses(ghost)
    assert missing["monitoring.signals"].status == "fail"
    assert missing["environment.gpu"].status == "fail"
    assert missing["environment.framework"].status == "fail"
