"""Range reads of a deployment's signals for the backtest (signal_history)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from apps.integrations.prometheus import PrometheusError
from apps.integrations.prometheus.types import RangeSeries
from apps.inventory.models import ServingFramework
from apps.metrics.services import (
    ACTUAL_REPLICAS,
    NO_PROMETHEUS,
    SignalHistoryError,
    signal_history,
)
from tests.factories.inventory import SimulatedDeploymentFactory

pytestmark = pytest.mark.django_db

START = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
END = datetime(2026, 11, 1, 12, 10, tzinfo=UTC)


class RangePrometheus:
    """Answers range queries by the first key of ``answers`` found in the PromQL."""

    def __init__(self, answers: dict[str, list[RangeSeries]], error: Exception | None = None):
        self.answers = answers
        self.error = error
        self.asked: list[tuple[str, datetime, datetime, float]] = []

    def query_range(self, promql: str, *, start, end, step_s):
        self.asked.append((promql, start, end, step_s))
        if self.error is not None:
            raise self.error
        return next((v for k, v in self.answers.items() if k in promql), [])


def _read(deployment, prom: RangePrometheus, signals=("queue_length",)):
    return signal_history(
        deployment=deployment,
        signals=list(signals),
        start=START,
        end=END,
        step_s=60,
        client_factory=lambda url: prom,
    )


@pytest.fixture
def prometheus_url(settings):
    settings.PROMETHEUS_URL = "http://prometheus.test:9090"
    return settings.PROMETHEUS_URL


def test_signal_history__series_merged_by_max_and_replicas_and_unqueryable(prometheus_url):
    dep = SimulatedDeploymentFactory(framework=ServingFramework.TGI)
    prom = RangePrometheus(
        {
            "count(tgi_queue_size": [RangeSeries({}, [(0.0, 2.0), (60.0, 3.0)])],
            "tgi_queue_size": [
                RangeSeries({"pod": "a"}, [(0.0, 5.0), (60.0, 4.0)]),
                RangeSeries({"pod": "b"}, [(60.0, 1.0), (120.0, 7.0)]),
            ],
        }
    )
    urls: list[str] = []

    got = signal_history(
        deployment=dep,
        signals=["kv_cache_usage", "queue_length"],  # TGI exports no KV-cache metric
        start=START,
        end=END,
        step_s=60,
        client_factory=lambda url: urls.append(url) or prom,
    )

    assert urls == [prometheus_url]
    assert got.series == {
        "kv_cache_usage": [],
        "queue_length": [(0.0, 5.0), (60.0, 4.0), (120.0, 7.0)],
    }
    assert got.replicas == [(0.0, 2.0), (60.0, 3.0)]
    assert got.unqueryable == ("kv_cache_usage",)
    assert got.multiple_series == (("queue_length", 2),)
    assert {(start, end, step) for _, start, end, step in prom.asked} == {(START, END, 60)}
    assert len(prom.asked) == 2


def test_signal_history__framework_without_replica_gauge__replicas_unknown(prometheus_url):
    dep = SimulatedDeploymentFactory(framework=ServingFramework.OTHER)
    got = _read(dep, RangePrometheus({}))
    assert got.replicas is None
    assert got.series == {"queue_length": []}
    assert got.unqueryable == ("queue_length",)
    assert ACTUAL_REPLICAS not in got.series


def test_signal_history__no_prometheus__unavailable(settings):
    settings.PROMETHEUS_URL = ""
    with pytest.raises(SignalHistoryError) as info:
        _read(SimulatedDeploymentFactory(), RangePrometheus({}))
    assert str(info.value) == NO_PROMETHEUS
    assert info.value.unavailable is True


@pytest.mark.parametrize("retryable", [True, False])
def test_signal_history__query_fails__error_says_whether_it_may_pass(prometheus_url, retryable):
    prom = RangePrometheus({}, error=PrometheusError("bad_data: parse error", retryable=retryable))
    with pytest.raises(SignalHistoryError) as info:
        _read(SimulatedDeploymentFactory(), prom)
    assert str(info.value) == "Prometheus: bad_data: parse error"
    assert info.value.unavailable is retryable
