from __future__ import annotations

import pytest

from apps.integrations.prometheus.types import InstantSample
from apps.metrics.catalogue import CATALOGUE, Signal, render, template_for
from apps.metrics.collection import (
    FRESHNESS,
    Target,
    build_observations,
    map_results,
    plan_queries,
)

URL = "http://127.0.0.1:9"


def _target(dep_id: int, name: str, ns: str = "llm", framework: str = "vllm", **kw) -> Target:
    return Target(dep_id, framework, f'{{namespace="{ns}", deployment="{name}"}}', URL, **kw)


def test_plan_queries__many_deployments_one_framework__one_query_per_signal():
    targets = [_target(i, f"d{i}") for i in range(50)]
    signals = [Signal.QUEUE_LENGTH, Signal.TTFT_P95, Signal.KV_CACHE_USAGE]
    queries = plan_queries(targets, signals)
    # One freshness query plus one per signal, whatever the number of deployments.
    assert len(queries) == 1 + len(signals)
    queue = next(q for q in queries if q.signal == Signal.QUEUE_LENGTH)
    assert queue.promql.startswith("sum by (deployment, namespace) (vllm:num_requests_waiting{")
    assert 'namespace="llm"' in queue.promql
    assert 'deployment=~"d0|d1|' in queue.promql
    assert len(queue.members) == 50


def test_plan_queries__regex_special_values__are_escaped():
    queries = plan_queries([_target(1, "a.b"), _target(2, "c+d")], [Signal.QUEUE_LENGTH])
    queue = next(q for q in queries if q.signal == Signal.QUEUE_LENGTH)
    assert r'deployment=~"a\\.b|c\\+d"' in queue.promql


def test_plan_queries__frameworks_split_into_groups():
    targets = [
        _target(1, "a"),
        _target(2, "b", framework="tgi"),
        _target(3, "c", framework="sglang"),
    ]
    queries = plan_queries(targets, [Signal.QUEUE_LENGTH])
    metrics = sorted(q.promql.split("(", 2)[1] for q in queries if q.signal == Signal.QUEUE_LENGTH)
    assert len(metrics) == 3
    assert any("tgi_queue_size" in q.promql for q in queries)
    assert any("sglang:num_queue_reqs" in q.promql for q in queries)


def test_plan_queries__selector_without_equality__gets_its_own_query():
    odd = Target(9, "vllm", '{deployment=~"chat-.*"}', URL)
    queries = plan_queries([_target(1, "a"), odd], [Signal.QUEUE_LENGTH])
    single = [q for q in queries if q.members == {(): 9}]
    assert {q.signal for q in single} == {FRESHNESS, Signal.QUEUE_LENGTH}
    assert all("by ()" in q.promql for q in single)


def test_plan_queries__custom_query__replaces_catalogue_for_that_deployment():
    custom = _target(2, "b", custom={Signal.QUEUE_LENGTH: 'sum(my_queue{app="b"})'})
    queries = plan_queries([_target(1, "a"), custom], [Signal.QUEUE_LENGTH])
    batched = [q for q in queries if q.signal == Signal.QUEUE_LENGTH and q.identity]
    assert [set(q.members.values()) for q in batched] == [{1}]
    own = [q for q in queries if q.promql == 'sum(my_queue{app="b"})']
    assert own
    assert own[0].members == {(): 2}


def test_map_results__series_mapped_by_identity_labels__strangers_ignored():
    queries = plan_queries([_target(1, "a"), _target(2, "b")], [Signal.QUEUE_LENGTH])
    queue = next(q for q in queries if q.signal == Signal.QUEUE_LENGTH)
    samples = [
        InstantSample({"namespace": "llm", "deployment": "a"}, 3.0, 100.0),
        InstantSample({"namespace": "llm", "deployment": "b"}, 0.0, 100.0),
        InstantSample({"namespace": "other", "deployment": "a"}, 99.0, 100.0),
    ]
    assert map_results(queue, samples) == {1: (3.0, 100.0), 2: (0.0, 100.0)}


def _observe(**overrides):
    args = dict(
        deployment_ids=[1],
        signals=[Signal.QUEUE_LENGTH, Signal.TTFT_P95],
        frameworks={1: "vllm"},
        custom={},
        values={Signal.QUEUE_LENGTH: {1: (4.0, 1000.0)}, Signal.TTFT_P95: {1: (0.3, 1000.0)}},
        freshness={1: 995.0},
        failures={},
        now=1000.0,
        staleness_s=30.0,
    )
    args.update(overrides)
    return build_observations(**args)[1]


def test_build_observations__fresh_values__ok_with_scrape_timestamp():
    obs = _observe()
    assert obs[Signal.QUEUE_LENGTH].status == "ok"
    assert obs[Signal.QUEUE_LENGTH].value == 4.0
    assert obs[Signal.QUEUE_LENGTH].timestamp == 995.0


def test_build_observations__old_scrape__stale_and_no_value():
    obs = _observe(freshness={1: 900.0})
    assert obs[Signal.QUEUE_LENGTH].status == "stale"
    assert obs[Signal.QUEUE_LENGTH].value is None
    assert "100s ago" in obs[Signal.QUEUE_LENGTH].reason


def test_build_observations__no_series__missing_never_zero():
    obs = _observe(values={}, freshness={})
    assert obs[Signal.QUEUE_LENGTH].status == "missing"
    assert obs[Signal.QUEUE_LENGTH].value is None


def test_build_observations__nan_quantile__missing():
    obs = _observe(values={Signal.TTFT_P95: {1: (float("nan"), 1000.0)}})
    assert obs[Signal.TTFT_P95].status == "missing"


def test_build_observations__query_failed__unavailable_with_reason():
    obs = _observe(failures={FRESHNESS: {1: "cannot reach Prometheus"}})
    assert {o.status for o in obs.values()} == {"unavailable"}
    assert obs[Signal.TTFT_P95].reason == "cannot reach Prometheus"


def test_build_observations__framework_without_signal__unsupported():
    obs = _observe(frameworks={1: "tgi"})
    assert obs[Signal.TTFT_P95].status == "unsupported"


@pytest.mark.parametrize("framework", sorted(CATALOGUE))
def test_catalogue__every_template__renders_with_no_placeholder_left(framework):
    for signal in Signal:
        template = template_for(framework, signal)
        if template is None:
            continue
        text = render(template, sel='namespace="x",', by="namespace", window="2m")
        assert "$" not in text
        assert text.count("(") == text.count(")")
        assert text.count("{") == text.count("}")


def test_build_observations__no_current_scrape_but_window_value__missing_not_old_value():
    # Prometheus still answers rate()/quantile queries from the window after a target
    # disappears; without a current scrape that value must not be used.
    obs = _observe(freshness={})
    assert obs[Signal.TTFT_P95].status == "missing"
    assert obs[Signal.TTFT_P95].value is None


def test_plan_queries__one_unreadable_stored_selector__only_that_deployment_left_out():
    # "\d" is not a PromQL escape: such a selector can only come from a row stored before
    # the parser was strict. It must not stop the planning of the other deployments.
    good = _target(1, "chat")
    bad = Target(2, "vllm", '{deployment="chat-\\d"}', URL)
    queries = plan_queries([bad, good], [Signal.QUEUE_LENGTH])
    assert queries
    assert all(set(q.members.values()) == {1} for q in queries)
