"""A team's Prometheus URL is called only through the outbound guard; the operator's own
PROMETHEUS_URL is trusted as configured."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from apps.integrations.prometheus import PrometheusClient, PrometheusError
from apps.metrics.services import metrics_collect, targets_for
from tests.factories.inventory import ClusterFactory, DeploymentFactory
from tests.servers import Answer, RecordingServer, Request

_VECTOR = {
    "status": "success",
    "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1700000000, "1"]}]},
}


class _FakePrometheus(RecordingServer):
    """Answers every query with one sample of value 1, or redirects to ``redirect_to``."""

    def __init__(self, host: str = "127.0.0.1", redirect_to: str | None = None) -> None:
        def respond(request: Request) -> Answer:
            if redirect_to:
                return 307, {"Location": redirect_to + request.path}, b""
            return 200, {"Content-Type": "application/json"}, json.dumps(_VECTOR).encode()

        super().__init__(respond, host=host)


@pytest.fixture
def prom() -> Iterator[_FakePrometheus]:
    server = _FakePrometheus()
    yield server
    server.stop()


def test_client__team_url_on_loopback__refused_nothing_reached(
    prom: _FakePrometheus, settings: Any
) -> None:
    settings.PROMETHEUS_URL = None
    with pytest.raises(PrometheusError) as err:
        PrometheusClient(prom.url).query("up")
    assert "not an allowed destination" in str(err.value)
    assert "loopback" in str(err.value)
    assert err.value.unreachable
    assert prom.hits == []


def test_client__operator_prometheus_url__trusted(prom: _FakePrometheus, settings: Any) -> None:
    settings.PROMETHEUS_URL = prom.url + "/"
    assert PrometheusClient(prom.url).query("up")[0].value == 1.0
    assert [h.split("?")[0] for h in prom.hits] == ["/api/v1/query"]


def test_client__odd_numeric_host__refused_without_connecting(settings: Any) -> None:
    settings.PROMETHEUS_URL = None
    client = PrometheusClient("http://0x7f000001:9090")
    with pytest.raises(PrometheusError, match="non-standard form"):
        client.query("up")
    assert client.ready() is False


def test_client__redirect_to_a_loopback_address_not_allowed__not_followed(settings: Any) -> None:
    settings.PROMETHEUS_URL = None
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    target = _FakePrometheus("127.0.0.2")
    entry = _FakePrometheus("127.0.0.1", redirect_to=target.url)
    try:
        with pytest.raises(PrometheusError, match=r"127\.0\.0\.2, a loopback address"):
            PrometheusClient(entry.url).query("up")
    finally:
        entry.stop()
        target.stop()
    assert [h.split("?")[0] for h in entry.hits] == ["/api/v1/query"]
    assert target.hits == []


@pytest.mark.django_db
def test_metrics_collect__cluster_saved_with_internal_prometheus__unavailable_not_reached(
    prom: _FakePrometheus, settings: Any
) -> None:
    """A cluster stored before the rule cannot make the collector call an internal address."""
    settings.PROMETHEUS_URL = None
    deployment = DeploymentFactory(cluster=ClusterFactory(prometheus_url=prom.url))
    report = metrics_collect(targets=targets_for([deployment]), signals=["ttft_p95"])
    assert report.failed_queries >= 1
    observation = report.observations[deployment.pk]["ttft_p95"]
    assert observation.status == "unavailable"
    assert "not an allowed destination" in observation.reason
    assert prom.hits == []
