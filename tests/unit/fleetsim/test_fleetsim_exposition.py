from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from apps.fleetsim.exposition import metrics_text
from apps.fleetsim.fleet import Fleet
from apps.fleetsim.histograms import VLLM_E2E_BUCKETS, VLLM_ITL_BUCKETS, VLLM_TTFT_BUCKETS

POD_LABELS = {"namespace", "pod", "deployment"}
VLLM_LABELS = {"model_name", "engine", *POD_LABELS}
DCGM_LABELS = {"gpu", "UUID", "device", "modelName", "Hostname", "container", *POD_LABELS}


def _request(
    method: str, url: str, body: Any = None, raw: bytes | None = None
) -> tuple[int, str, str]:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return (
                response.status,
                response.headers.get("Content-Type", ""),
                response.read().decode(),
            )
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def test_metrics__fleet_snapshot__exact_vllm_and_dcgm_names_and_labels(
    small_fleet: Fleet,
) -> None:
    samples = _samples(metrics_text(small_fleet))

    for name in (
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:request_success_total",
        "vllm:prompt_tokens_total",
        "vllm:generation_tokens_total",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:time_to_first_token_seconds_count",
        "vllm:time_to_first_token_seconds_sum",
        "vllm:inter_token_latency_seconds_bucket",
        "vllm:e2e_request_latency_seconds_bucket",
    ):
        assert name in samples, name
        for labels, _ in samples[name]:
            assert VLLM_LABELS <= labels.keys(), (name, labels)
    for name in ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE"):
        assert name in samples, name
        for labels, _ in samples[name]:
            assert labels.keys() == DCGM_LABELS, (name, labels)
    assert {labels["finished_reason"] for labels, _ in samples["vllm:request_success_total"]} == {
        "stop",
        "length",
        "abort",
    }
    pods = {labels["pod"] for labels, _ in samples["vllm:num_requests_running"]}
    assert pods == {"chat-0", "chat-1", "batch-0"}


def test_metrics__histograms__use_vllm_bucket_boundaries(small_fleet: Fleet) -> None:
    samples = _samples(metrics_text(small_fleet))

    for name, bounds in (
        ("vllm:time_to_first_token_seconds_bucket", VLLM_TTFT_BUCKETS),
        ("vllm:inter_token_latency_seconds_bucket", VLLM_ITL_BUCKETS),
        ("vllm:e2e_request_latency_seconds_bucket", VLLM_E2E_BUCKETS),
    ):
        chat0 = [(labels["le"], v) for labels, v in samples[name] if labels["pod"] == "chat-0"]
        assert [float(le) for le, _ in chat0] == [*bounds, float("inf")]
        values = [v for _, v in chat0]
        assert values == sorted(values)


def test_metrics__values__consistent_with_snapshot_and_ranges(small_fleet: Fleet) -> None:
    samples = _samples(metrics_text(small_fleet))
    chat = small_fleet.get("prod", "chat").totals()

    success = sum(
        v
        for labels, v in samples["vllm:request_success_total"]
        if labels["deployment"] == "chat" and labels["finished_reason"] == "stop"
    )
    assert success == chat.completed > 0
    for _, value in samples["vllm:kv_cache_usage_perc"]:
        assert 0.0 <= value <= 1.0
    for _, value in samples["DCGM_FI_DEV_GPU_UTIL"]:
        assert 0.0 <= value <= 100.0
    used = {labels["pod"]: v for labels, v in samples["DCGM_FI_DEV_FB_USED"]}
    free = {labels["pod"]: v for labels, v in samples["DCGM_FI_DEV_FB_FREE"]}
    assert used["chat-0"] + free["chat-0"] == 81_920


def test_metrics__starting_pod__dcgm_series_only(small_fleet: Fleet) -> None:
    small_fleet.get("prod", "chat").scale(3)

    samples = _samples(metrics_text(small_fleet))

    assert "chat-2" in {labels["pod"] for labels, _ in samples["DCGM_FI_DEV_FB_USED"]}
    assert "chat-2" not in {labels["pod"] for labels, _ in samples["vllm:num_requests_running"]}
    unavailable = samples["kube_deployment_status_replicas_unavailable"]
    assert ({"namespace": "prod", "deployment": "chat"}, 1.0) in unavailable


def test_http_metrics__get__prometheus_text_parses(fleet_server: tuple[Fleet, str]) -> None:
    _, base = fleet_server

    status, content_type, body = _request("GET", f"{base}/metrics")

    assert status == 200
    assert content_type.startswith("text/plain")
    assert "vllm:num_requests_running" in _samples(body)


def test_http_scale__get_then_put__round_trip(fleet_server: tuple[Fleet, str]) -> None:
    fleet, base = fleet_server

    status, _, body = _request("GET", f"{base}/scale/prod/chat")
    assert status == 200
    assert json.loads(body) == {"spec_replicas": 2, "ready_replicas": 2, "starting_replicas": 0}

    status, _, body = _request("PUT", f"{base}/scale/prod/chat", {"replicas": 4})
    assert status == 200
    assert json.loads(body) == {"spec_replicas": 4, "ready_replicas": 2, "starting_replicas": 2}
    assert fleet.get("prod", "chat").spec_replicas == 4

    status, _, body = _request("GET", f"{base}/scale/prod/chat")
    assert json.loads(body)["spec_replicas"] == 4


@pytest.mark.parametrize(
    ("body", "raw"),
    [
        ({"replicas": -1}, None),
        ({"replicas": 1001}, None),
        ({"replicas": "3"}, None),
        ({"replicas": True}, None),
        ({"replicas": 2.5}, None),
        ({"replicas": 2, "extra": 1}, None),
        ({"replicas": 1, "drain_s": -1}, None),
        ({"replicas": 1, "drain_s": "30"}, None),
        ({"drain_s": 30}, None),
        ({"replicas": 1, "remove": "chat-0"}, None),
        ({"replicas": 1, "remove": [0]}, None),
        ({"replicas": 1, "remove": ["chat-9"]}, None),
        ({"replicas": 1, "remove": ["chat-0", "chat-1"]}, None),
        ([2], None),
        (None, b"{not json"),
        (None, b""),
    ],
    ids=[
        "negative",
        "too-many",
        "string",
        "bool",
        "float",
        "extra-key",
        "negative-drain",
        "string-drain",
        "drain-only",
        "remove-not-a-list",
        "remove-not-names",
        "remove-unknown-pod",
        "remove-too-many",
        "list",
        "bad-json",
        "empty",
    ],
)
def test_http_scale__bad_body__400_with_message(
    fleet_server: tuple[Fleet, str], body: Any, raw: bytes | None
) -> None:
    fleet, base = fleet_server

    status, content_type, text = _request("PUT", f"{base}/scale/prod/chat", body, raw=raw)

    assert status == 400
    assert content_type == "application/json"
    assert json.loads(text)["error"]
    assert fleet.get("prod", "chat").spec_replicas == 2


def test_http_scale__drain_s__removed_replica_keeps_its_requests(
    fleet_server: tuple[Fleet, str],
) -> None:
    fleet, base = fleet_server

    status, _, body = _request("PUT", f"{base}/scale/prod/chat", {"replicas": 1, "drain_s": 600})

    assert status == 200
    assert json.loads(body)["spec_replicas"] == 1
    chat = fleet.get("prod", "chat")
    assert chat.draining_replicas == 1
    assert chat.totals().requeued == 0


def test_http_scale__remove__named_replica_removed(fleet_server: tuple[Fleet, str]) -> None:
    fleet, base = fleet_server

    status, _, body = _request(
        "PUT", f"{base}/scale/prod/chat", {"replicas": 1, "remove": ["chat-1"]}
    )

    assert status == 200
    assert json.loads(body)["spec_replicas"] == 1
    assert [r.pod for r in fleet.get("prod", "chat").replicas] == ["chat-0"]


def test_http_slowdown__put__replica_steps_longer(fleet_server: tuple[Fleet, str]) -> None:
    fleet, base = fleet_server

    status, _, body = _request("PUT", f"{base}/slowdown/prod/chat/chat-1", {"factor": 4})

    assert status == 200
    assert json.loads(body) == {"pod": "chat-1", "factor": 4.0}
    chat = fleet.get("prod", "chat")
    assert chat.find_replica("chat-1").slowdown == 4.0  # type: ignore[union-attr]
    assert chat.find_replica("chat-0").slowdown == 1.0  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("prod/chat/chat-1", {"factor": 0}, 400),
        ("prod/chat/chat-1", {"factor": -2}, 400),
        ("prod/chat/chat-1", {"factor": 1001}, 400),
        ("prod/chat/chat-1", {"factor": "2"}, 400),
        ("prod/chat/chat-1", {"factor": 2, "pod": "x"}, 400),
        ("prod/chat/chat-9", {"factor": 2}, 404),
        ("prod/nope/chat-1", {"factor": 2}, 404),
    ],
)
def test_http_slowdown__bad_request__error_json(
    fleet_server: tuple[Fleet, str], path: str, body: Any, status: int
) -> None:
    fleet, base = fleet_server

    got, _, text = _request("PUT", f"{base}/slowdown/{path}", body)

    assert got == status
    assert json.loads(text)["error"]
    replica = fleet.get("prod", "chat").find_replica("chat-1")
    assert replica is not None
    assert replica.slowdown == 1.0


def test_http_endpoints__without_replica_http__404(fleet_server: tuple[Fleet, str]) -> None:
    _, base = fleet_server

    assert _request("GET", f"{base}/endpoints")[0] == 404


def test_http_scale__unknown_deployment__404(fleet_server: tuple[Fleet, str]) -> None:
    _, base = fleet_server

    assert _request("GET", f"{base}/scale/prod/nope")[0] == 404
    assert _request("PUT", f"{base}/scale/prod/nope", {"replicas": 1})[0] == 404
    assert _request("GET", f"{base}/scale/other/chat")[0] == 404


def test_http__unknown_path_or_method__404_or_405(fleet_server: tuple[Fleet, str]) -> None:
    _, base = fleet_server

    assert _request("GET", f"{base}/nothing")[0] == 404
    assert _request("POST", f"{base}/metrics", {})[0] == 405
    assert _request("DELETE", f"{base}/scale/prod/chat")[0] == 405


def test_http_inject__valid_body__applied_to_deployment(fleet_server: tuple[Fleet, str]) -> None:
    fleet, base = fleet_server

    status, _, body = _request(
        "POST",
        f"{base}/inject/prod/chat",
        {"rate_multiplier": 3, "extra_latency_s": 0.5, "error_ratio": 0.1},
    )

    assert status == 200
    assert json.loads(body) == {"rate_multiplier": 3.0, "extra_latency_s": 0.5, "error_ratio": 0.1}
    chat = fleet.get("prod", "chat")
    assert (chat.rate_multiplier, chat.extra_latency_s, chat.error_ratio) == (3.0, 0.5, 0.1)


def test_http_inject__invalid_value__400_and_nothing_applied(
    fleet_server: tuple[Fleet, str],
) -> None:
    fleet, base = fleet_server

    status, _, body = _request(
        "POST", f"{base}/inject/prod/chat", {"rate_multiplier": 2, "error_ratio": 2}
    )

    assert status == 400
    assert "error_ratio" in json.loads(body)["error"]
    assert fleet.get("prod", "chat").rate_multiplier == 1.0
    assert _request("POST", f"{base}/inject/prod/chat", {"bogus": 1})[0] == 400
    assert _request("POST", f"{base}/inject/prod/nope", {"error_ratio": 0.1})[0] == 404


def test_http_deployments__get__lists_every_deployment(fleet_server: tuple[Fleet, str]) -> None:
    _, base = fleet_server

    status, _, body = _request("GET", f"{base}/deployments")

    assert status == 200
    payload = json.loads(body)
    assert payload["time_s"] == 60.0
    by_name = {(d["namespace"], d["name"]): d for d in payload["deployments"]}
    assert by_name.keys() == {("prod", "chat"), ("jobs", "batch")}
    assert by_name[("prod", "chat")]["ready_replicas"] == 2
    assert by_name[("jobs", "batch")]["gpu_profile"] == "L4"
    assert _request("GET", f"{base}/healthz")[0] == 200
