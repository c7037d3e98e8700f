"""The simulated replicas' own OpenAI-compatible HTTP endpoints, driven by real HTTP clients.

Two clocks: ``fast`` runs the fleet in real time at 50 simulated seconds per second (fast
mode), ``paused`` leaves simulated time still until the test steps it, so what a loaded
replica does is observed without depending on wall-clock timing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from apps.fleetsim.exposition import serve
from apps.fleetsim.fleet import Fleet, SimulatedDeployment
from apps.fleetsim.replica_http import ReplicaHTTPServer

pytestmark = pytest.mark.integration

MODEL = "llama-3.1-8b"
FAST_SPEED = 50.0
TIMEOUT_S = 30


@dataclass
class Replicas:
    fleet: Fleet
    server: ReplicaHTTPServer
    events: list[str] = field(default_factory=list)

    @property
    def deployment(self) -> SimulatedDeployment:
        return self.fleet.get("llm", "chat")

    def endpoint(self, pod: str) -> dict[str, Any]:
        return next(e for e in self.server.endpoints() if e["pod"] == pod)

    def url(self, pod: str, path: str) -> str:
        return f"http://127.0.0.1:{self.endpoint(pod)['port']}{path}"

    def step(self, seconds: float) -> None:
        """Move simulated time (paused clock only) and let the server see it."""
        self.fleet.step_to(self.fleet.now + seconds)
        self.server.refresh()

    def outstanding(self, pod: str) -> int:
        with self.fleet.lock:
            replica = self.deployment.find_replica(pod)
            return replica.outstanding if replica is not None else 0

    def wait_outstanding(self, pod: str, count: int, *, exactly: bool = False) -> None:
        """Until ``count`` requests (at least, or exactly) are in the model of ``pod``."""
        for _ in range(2000):
            held = self.outstanding(pod)
            if held == count or (held > count and not exactly):
                return
            threading.Event().wait(0.005)
        raise AssertionError(f"{pod} holds {self.outstanding(pod)} requests, not {count}")


def _eventually(condition: Callable[[], bool]) -> None:
    for _ in range(2000):
        if condition():
            return
        threading.Event().wait(0.005)
    raise AssertionError("condition never met")


def _start(speed: float | None, tmp_path: Path) -> Iterator[Replicas]:
    fleet = Fleet([SimulatedDeployment("chat", MODEL, "llm", "A100-80GB", 2, ())])
    server = ReplicaHTTPServer(fleet, tick_s=0.005, endpoints_file=tmp_path / "replicas.json")
    server.start()
    if speed is not None:
        fleet.run_realtime(speed=speed, tick_s=0.01)
    try:
        yield Replicas(fleet, server)
    finally:
        fleet.stop()
        server.stop()


@pytest.fixture
def fast(tmp_path: Path) -> Iterator[Replicas]:
    yield from _start(FAST_SPEED, tmp_path)


@pytest.fixture
def paused(tmp_path: Path) -> Iterator[Replicas]:
    yield from _start(None, tmp_path)


def _completion(**overrides: Any) -> dict[str, Any]:
    return {"model": MODEL, "prompt": "Say something about load balancing.", **overrides}


def _chat(**overrides: Any) -> dict[str, Any]:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Which replica answers?"},
    ]
    return {"model": MODEL, "messages": messages, **overrides}


def _events(response: requests.Response) -> list[Any]:
    """The data of every server-sent event, JSON decoded except ``[DONE]``."""
    out: list[Any] = []
    for line in response.iter_lines():
        if line.startswith(b"data: "):
            data = line[len(b"data: ") :].decode()
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def _samples(text: str) -> dict[str, float]:
    """Sample values by name (and finished_reason for the success counter)."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name
            if "finished_reason" in sample.labels:
                name += ":" + sample.labels["finished_reason"]
            if "reason" in sample.labels:
                name += ":" + sample.labels["reason"]
            if "le" in sample.labels:
                continue
            out[name] = sample.value
    return out


# ------------------------------------------------------------------ fast mode


def test_completion__not_streamed__openai_shape_with_usage_and_replica_header(
    fast: Replicas,
) -> None:
    response = requests.post(
        fast.url("chat-0", "/v1/completions"), json=_completion(max_tokens=7), timeout=TIMEOUT_S
    )

    assert response.status_code == 200
    assert response.headers["X-Replica"] == "chat-0"
    body = response.json()
    assert body["object"] == "text_completion"
    assert body["id"].startswith("cmpl-")
    assert body["model"] == MODEL
    (choice,) = body["choices"]
    assert choice["finish_reason"] == "length"
    assert len(choice["text"].split()) == 7
    # "Say something about load balancing." is 36 characters: ceil(36 / 4) tokens.
    assert body["usage"] == {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16}


def test_chat_completion__not_streamed__assistant_message_and_stop(fast: Replicas) -> None:
    response = requests.post(
        fast.url("chat-1", "/v1/chat/completions"), json=_chat(), timeout=TIMEOUT_S
    )

    assert response.status_code == 200
    assert response.headers["X-Replica"] == "chat-1"
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    (choice,) = body["choices"]
    assert choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["completion_tokens"] == len(choice["message"]["content"].split())
    # Two messages: 4 + ceil(14/4) and 4 + ceil(22/4), plus 3 for the reply.
    assert usage["prompt_tokens"] == (4 + 4) + (4 + 6) + 3
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_completion__streamed_with_usage__token_chunks_then_usage_then_done(
    fast: Replicas,
) -> None:
    body = _completion(max_tokens=12, stream=True, stream_options={"include_usage": True})

    with requests.post(
        fast.url("chat-0", "/v1/completions"), json=body, stream=True, timeout=TIMEOUT_S
    ) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert response.headers["X-Replica"] == "chat-0"
        events = _events(response)

    assert events[-1] == "[DONE]"
    *chunks, usage_chunk, _ = events
    assert len(chunks) == 12
    assert all(c["object"] == "text_completion" and c["usage"] is None for c in chunks)
    assert len({c["id"] for c in events[:-1]}) == 1
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * 11 + ["length"]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21}


def test_chat_completion__streamed_without_usage__deltas_and_no_usage(fast: Replicas) -> None:
    with requests.post(
        fast.url("chat-0", "/v1/chat/completions"),
        json=_chat(stream=True, max_tokens=5),
        stream=True,
        timeout=TIMEOUT_S,
    ) as response:
        events = _events(response)

    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert len(chunks) == 5
    assert all(c["object"] == "chat.completion.chunk" and "usage" not in c for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"]["content"] for c in chunks)
    assert len(text.split()) == 5
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_completion__other_model__openai_404(fast: Replicas) -> None:
    response = requests.post(
        fast.url("chat-0", "/v1/completions"), json=_completion(model="gpt-4o"), timeout=TIMEOUT_S
    )

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"
    assert "gpt-4o" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"[]",
        json.dumps({"model": MODEL}).encode(),
        json.dumps({"model": MODEL, "prompt": "x", "max_tokens": 0}).encode(),
        json.dumps({"model": MODEL, "prompt": "x", "stream": "yes"}).encode(),
    ],
)
def test_completion__bad_body__400_error_json(fast: Replicas, raw: bytes) -> None:
    response = requests.post(
        fast.url("chat-0", "/v1/completions"),
        data=raw,
        headers={"Content-Type": "application/json"},
        timeout=TIMEOUT_S,
    )

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_replica__unknown_path_wrong_method_or_huge_body__error_json(fast: Replicas) -> None:
    missing = requests.get(fast.url("chat-0", "/v1/nothing"), timeout=TIMEOUT_S)
    wrong = requests.get(fast.url("chat-0", "/v1/completions"), timeout=TIMEOUT_S)
    huge = requests.post(
        fast.url("chat-0", "/v1/completions"),
        json=_completion(prompt="x" * 2_000_000),
        timeout=TIMEOUT_S,
    )

    assert [missing.status_code, wrong.status_code, huge.status_code] == [404, 405, 413]
    assert all(r.json()["error"]["message"] for r in (missing, wrong, huge))
    assert missing.headers["X-Replica"] == "chat-0"


def test_completion__longer_than_context__400_like_vllm(fast: Replicas) -> None:
    limit = fast.deployment.profile.max_request_tokens
    response = requests.post(
        fast.url("chat-0", "/v1/completions"),
        json=_completion(prompt=list(range(limit)), max_tokens=10),
        timeout=TIMEOUT_S,
    )

    assert response.status_code == 400
    assert "maximum context length" in response.json()["error"]["message"]


def test_completion__injected_errors__500(fast: Replicas) -> None:
    with fast.fleet.lock:
        fast.deployment.inject_error_ratio(1.0)

    response = requests.post(
        fast.url("chat-0", "/v1/completions"), json=_completion(), timeout=TIMEOUT_S
    )

    assert response.status_code == 500


def test_models__get__lists_the_served_model(fast: Replicas) -> None:
    body = requests.get(fast.url("chat-1", "/v1/models"), timeout=TIMEOUT_S).json()

    assert [m["id"] for m in body["data"]] == [MODEL]


def test_metrics__after_requests__count_what_this_replica_served(fast: Replicas) -> None:
    usages, reasons = [], []
    for max_tokens in (3, 8, None):  # the last one ends at the reply's natural length
        response = requests.post(
            fast.url("chat-1", "/v1/completions"),
            json=_completion(max_tokens=max_tokens),
            timeout=TIMEOUT_S,
        )
        usages.append(response.json()["usage"])
        reasons.append(response.json()["choices"][0]["finish_reason"])

    served = _samples(requests.get(fast.url("chat-1", "/metrics"), timeout=TIMEOUT_S).text)
    idle = _samples(requests.get(fast.url("chat-0", "/metrics"), timeout=TIMEOUT_S).text)

    assert served["vllm:request_success_total:length"] == reasons.count("length") == 2
    assert served["vllm:request_success_total:stop"] == reasons.count("stop") == 1
    assert served["vllm:prompt_tokens_total"] == sum(u["prompt_tokens"] for u in usages)
    assert served["vllm:generation_tokens_total"] == sum(u["completion_tokens"] for u in usages)
    assert served["vllm:time_to_first_token_seconds_count"] == 3
    assert idle["vllm:request_success_total:stop"] == 0
    assert not any(name.startswith("DCGM_") for name in served)


def test_endpoints__listed_by_server_file_and_simulator_api(fast: Replicas, tmp_path: Path) -> None:
    api, port = serve(fast.fleet, endpoints=fast.server.endpoints)
    try:
        listed = requests.get(f"http://127.0.0.1:{port}/endpoints", timeout=TIMEOUT_S).json()
    finally:
        api.stop()

    saved = json.loads((tmp_path / "replicas.json").read_text())
    assert listed == saved == {"endpoints": fast.server.endpoints()}
    assert [(e["pod"], e["state"], e["model"]) for e in listed["endpoints"]] == [
        ("chat-0", "ready", MODEL),
        ("chat-1", "ready", MODEL),
    ]
    assert len({e["port"] for e in listed["endpoints"]}) == 2


# ---------------------------------------------------------------- paused clock


def test_replica__many_streams__served_concurrently_in_one_batch(paused: Replicas) -> None:
    count = 24
    body = _completion(stream=True, max_tokens=200)

    def stream(_: int) -> list[Any]:
        with requests.post(
            paused.url("chat-0", "/v1/completions"), json=body, stream=True, timeout=TIMEOUT_S
        ) as response:
            return _events(response)

    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(stream, i) for i in range(count)]
        paused.wait_outstanding("chat-0", count)
        paused.step(0.1)
        metrics = _samples(requests.get(paused.url("chat-0", "/metrics"), timeout=TIMEOUT_S).text)
        paused.step(60.0)
        results = [f.result() for f in futures]

    assert metrics["vllm:num_requests_running"] == count
    assert all(len(events) == 201 and events[-1] == "[DONE]" for events in results)


def test_replica__under_load__slower_first_token_and_token_pace_than_idle(
    paused: Replicas,
) -> None:
    long_prompt = "tokens " * 1200  # 8400 characters: 2100 tokens each
    body = _completion(prompt=long_prompt, max_tokens=32)
    loaded_count = 40

    def call(pod: str) -> int:
        response = requests.post(paused.url(pod, "/v1/completions"), json=body, timeout=TIMEOUT_S)
        return response.status_code

    with ThreadPoolExecutor(loaded_count + 1) as pool:
        idle = pool.submit(call, "chat-0")
        paused.wait_outstanding("chat-0", 1)
        paused.step(30.0)
        assert idle.result() == 200
        loaded = [pool.submit(call, "chat-1") for _ in range(loaded_count)]
        paused.wait_outstanding("chat-1", loaded_count)
        for _ in range(60):
            paused.step(1.0)
        assert [f.result() for f in loaded] == [200] * loaded_count

    def means(pod: str) -> tuple[float, float]:
        s = _samples(requests.get(paused.url(pod, "/metrics"), timeout=TIMEOUT_S).text)
        ttft = (
            s["vllm:time_to_first_token_seconds_sum"] / s["vllm:time_to_first_token_seconds_count"]
        )
        itl = (
            s["vllm:inter_token_latency_seconds_sum"] / s["vllm:inter_token_latency_seconds_count"]
        )
        return ttft, itl

    idle_ttft, idle_itl = means("chat-0")
    loaded_ttft, loaded_itl = means("chat-1")
    assert loaded_ttft > 2 * idle_ttft
    assert loaded_itl > idle_itl


def test_scale_up__new_replica__listens_at_once_503_until_loaded(paused: Replicas) -> None:
    with paused.fleet.lock:
        paused.deployment.scale(3)
    paused.server.refresh()

    assert paused.endpoint("chat-2")["state"] == "starting"
    health = requests.get(paused.url("chat-2", "/health"), timeout=TIMEOUT_S)
    refused = requests.post(
        paused.url("chat-2", "/v1/completions"), json=_completion(), timeout=TIMEOUT_S
    )
    assert health.status_code == 503
    assert refused.status_code == 503
    assert health.headers["X-Replica"] == "chat-2"

    paused.step(paused.deployment.profile.cold_start_s)

    assert paused.endpoint("chat-2")["state"] == "ready"
    assert requests.get(paused.url("chat-2", "/health"), timeout=TIMEOUT_S).status_code == 200


def _stream_in_background(
    replicas: Replicas, pod: str, max_tokens: int
) -> tuple[threading.Thread, list[Any]]:
    events: list[Any] = []
    url = replicas.url(pod, "/v1/completions")

    def consume() -> None:
        body = _completion(stream=True, max_tokens=max_tokens)
        try:
            with requests.post(url, json=body, stream=True, timeout=TIMEOUT_S) as response:
                for line in response.iter_lines():
                    if line.startswith(b"data: "):
                        data = line[len(b"data: ") :].decode()
                        events.append(data if data == "[DONE]" else json.loads(data))
        except requests.RequestException:
            events.append("connection cut")

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    replicas.wait_outstanding(pod, 1)
    return thread, events


def test_scale_down_with_drain__stream_in_flight_finishes_new_connections_refused(
    paused: Replicas,
) -> None:
    with paused.fleet.lock:
        paused.deployment.scale(1)  # one replica, chat-0, is left
    paused.server.refresh()
    url = paused.url("chat-0", "/v1/completions")
    thread, events = _stream_in_background(paused, "chat-0", max_tokens=200)
    paused.step(0.3)

    with paused.fleet.lock:
        paused.deployment.scale(0, drain_s=600.0)
    paused.server.refresh()

    assert paused.endpoint("chat-0")["state"] == "draining"
    with pytest.raises(requests.ConnectionError):
        requests.post(url, json=_completion(), timeout=TIMEOUT_S)
    paused.step(60.0)
    thread.join(TIMEOUT_S)
    assert events[-1] == "[DONE]"
    assert len(events) == 201
    _eventually(lambda: paused.server.endpoints() == [])


def test_scale_down_without_drain__stream_in_flight_ends_with_error(paused: Replicas) -> None:
    with paused.fleet.lock:
        paused.deployment.scale(1)
    paused.server.refresh()
    thread, events = _stream_in_background(paused, "chat-0", max_tokens=200)
    paused.step(0.3)

    with paused.fleet.lock:
        paused.deployment.scale(0)
    paused.step(0.1)
    thread.join(TIMEOUT_S)

    assert "[DONE]" not in events
    assert "error" in events[-1]
    assert paused.deployment.totals().failures_by_reason == {"aborted": 1}


def test_client_disconnects__mid_stream__request_aborted_in_the_replica(paused: Replicas) -> None:
    response = requests.post(
        paused.url("chat-0", "/v1/completions"),
        json=_completion(stream=True, max_tokens=500),
        stream=True,
        timeout=TIMEOUT_S,
    )
    paused.wait_outstanding("chat-0", 1)
    paused.step(0.2)
    assert next(line for line in response.iter_lines() if line).startswith(b"data: {")

    response.close()

    paused.wait_outstanding("chat-0", 0, exactly=True)
    metrics = _samples(requests.get(paused.url("chat-0", "/metrics"), timeout=TIMEOUT_S).text)
    assert metrics["llmcp_sim_request_failure_total:aborted"] == 1
    assert metrics["vllm:request_success_total:stop"] == 0


def test_kill__replica_server__streams_cut_port_refused_requests_aborted(paused: Replicas) -> None:
    url = paused.url("chat-0", "/v1/completions")
    thread, events = _stream_in_background(paused, "chat-0", max_tokens=500)
    paused.step(0.2)
    _eventually(lambda: len(events) > 0)

    paused.server.kill("llm", "chat", "chat-0")
    thread.join(TIMEOUT_S)

    assert "[DONE]" not in events
    assert events[-1] == "connection cut"
    with pytest.raises(requests.ConnectionError):
        requests.post(url, json=_completion(), timeout=TIMEOUT_S)
    paused.wait_outstanding("chat-0", 0, exactly=True)
    assert paused.deployment.totals().failures_by_reason == {"aborted": 1}
    paused.server.refresh()
    assert [e["pod"] for e in paused.server.endpoints()] == ["chat-1"]
    assert requests.get(paused.url("chat-1", "/health"), timeout=TIMEOUT_S).status_code == 200
