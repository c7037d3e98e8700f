"""Collection through a real Prometheus scraping the fleet simulator."""

from __future__ import annotations

import time

import pytest

from apps.devstack.prometheus import EmbeddedPrometheus, ScrapeTarget
from apps.metrics.models import DeploymentMetrics, MetricSample, MetricsStatus
from apps.metrics.services import metrics_collect_shard, pod_load_read
from tests.factories.inventory import SimulatedDeploymentFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def _deployments():
    chat = SimulatedDeploymentFactory(
        name="chat",
    )
    code = SimulatedDeploymentFactory(
        team=chat.team,
        name="code",
    )
    return chat, code


def _collect_until(predicate, timeout_s: float = 40.0):
    deadline = time.monotonic() + timeout_s
    report = None
    while time.monotonic() < deadline:
        report = metrics_collect_shard(shard=0, shards=1)
        states = {s.deployment_id: s for s in DeploymentMetrics.objects.all()}
        if predicate(states):
            return report, states
        time.sleep(1)
    raise AssertionError(f"condition not met in {timeout_s}s; last report: {report}")


def test_collector__prometheus_scraping_simulator__sees_queue_kv_and_ttft_per_deployment(
    prometheus_binary, sim_fleet, settings
):
    fleet, port = sim_fleet
    chat, code = _deployments()
    target = ScrapeTarget("fleetsim", f"127.0.0.1:{port}", interval_s=1)
    with EmbeddedPrometheus(targets=[target], binary=prometheus_binary) as prom:
        settings.PROMETHEUS_URL = prom.url
        settings.METRICS_RATE_WINDOW = "15s"

        def ready(states):
            return all(
                d.pk in states
                and states[d.pk].observations["ttft_p95"]["status"] == "ok"
                and states[d.pk].observations["request_rate"]["status"] == "ok"
                for d in (chat, code)
            )

        report, states = _collect_until(ready)
        # Batched: one freshness query and one per signal for both deployments together.
        assert report.queries == 1 + 14
        assert report.failed_queries == 0
        for dep in (chat, code):
            obs = states[dep.pk].observations
            assert states[dep.pk].status == MetricsStatus.OK
            assert obs["queue_length"]["value"] >= 0
            assert 0 <= obs["kv_cache_usage"]["value"] <= 1
            assert 0 < obs["ttft_p50"]["value"] <= obs["ttft_p95"]["value"]
            assert obs["ttft_p95"]["value"] <= obs["ttft_p99"]["value"]
            assert 0 <= obs["gpu_utilization"]["value"] <= 1
            assert obs["queue_length"]["ts"] > time.time() - 10
        # The figures belong to the right deployment: chat has two replicas serving ~8 rps,
        # code one replica at ~3 rps, and running requests follow the simulator's state.
        chat_rate = states[chat.pk].observations["request_rate"]["value"]
        code_rate = states[code.pk].observations["request_rate"]["value"]
        assert chat_rate > code_rate
        # Per-pod load, read through Prometheus: one entry per replica the simulator serves
        # (chat two, code one), named as the simulator names its pods.
        pods = {d.name: {r.pod for r in d.replicas} for d in fleet.snapshot().deployments}
        chat_load = pod_load_read(deployment=chat)
        code_load = pod_load_read(deployment=code)
        assert set(chat_load or {}) == pods["chat"]
        assert set(code_load or {}) == pods["code"]
        assert (len(chat_load or {}), len(code_load or {})) == (2, 1)
        assert MetricSample.objects.filter(deployment=chat, signal="ttft_p95").exists()


def test_collector__prometheus_stops_then_returns__unavailable_then_recovers(
    prometheus_binary, sim_fleet, settings
):
    _, port = sim_fleet
    chat, _ = _deployments()
    target = ScrapeTarget("fleetsim", f"127.0.0.1:{port}", interval_s=1)
    prom = EmbeddedPrometheus(targets=[target], binary=prometheus_binary)
    prom.start()
    try:
        settings.PROMETHEUS_URL = prom.url
        _collect_until(lambda s: chat.pk in s and s[chat.pk].status == MetricsStatus.OK)

        prom.stop()
        report = metrics_collect_shard(shard=0, shards=1)  # must not raise
        state = DeploymentMetrics.objects.get(deployment=chat)
        assert state.status == MetricsStatus.UNAVAILABLE
        assert "cannot reach Prometheus" in state.reason
        assert report.failed_queries >= 1
        assert {o["status"] for o in state.observations.values()} == {"unavailable"}
        assert all(o["value"] is None for o in state.observations.values())

        prom.start()  # same port and data directory
        _collect_until(lambda s: s[chat.pk].status == MetricsStatus.OK)
    finally:
        prom.cleanup()


def test_collector__simulator_gone__stale_not_zero(prometheus_binary, sim_fleet, settings):
    _, port = sim_fleet
    chat, _ = _deployments()
    target = ScrapeTarget("fleetsim", f"127.0.0.1:{port}", interval_s=1)
    with EmbeddedPrometheus(targets=[target], binary=prometheus_binary) as prom:
        settings.PROMETHEUS_URL = prom.url
        settings.METRICS_STALENESS_S = 4
        _collect_until(lambda s: chat.pk in s and s[chat.pk].status == MetricsStatus.OK)
        # Make every scrape fail: point Prometheus at a port where nothing listens.
        prom.targets = [ScrapeTarget("fleetsim", "127.0.0.1:9", interval_s=1)]
        prom.reload()

        def gone(states):
            queue = states[chat.pk].observations["queue_length"]
            return queue["status"] in ("stale", "missing")

        _, states = _collect_until(gone, timeout_s=30)
        queue = states[chat.pk].observations["queue_length"]
        assert queue["value"] is None
        assert states[chat.pk].status == MetricsStatus.UNAVAILABLE, states[chat.pk].observations
