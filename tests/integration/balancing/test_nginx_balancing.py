"""Rendered balancing configurations served by a real nginx in front of simulator replicas
over HTTP: how requests spread, stick, fail over, get shed and fall back."""

from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from apps.balancing.members import Member
from apps.balancing.render import Degradation, Site
from apps.balancing.spec import PolicySpec
from tests.integration.balancing.nginx import (
    MODEL,
    RunningNginx,
    complete,
    running_replicas,
    served_by,
)
from tests.servers import RecordingServer

pytestmark = pytest.mark.integration


def _spread(nginx: RunningNginx, count: int, *, workers: int = 1, **headers: str) -> Counter[str]:
    def one(_: int) -> str:
        response = complete(nginx.url, **headers)
        assert response.status_code == 200, response.text
        return served_by(response)

    with ThreadPoolExecutor(workers) as pool:
        return Counter(pool.map(one, range(count)))


def test_round_robin__sequential_requests__each_replica_exactly_its_share(
    nginx: RunningNginx,
) -> None:
    with running_replicas(3) as replicas:
        nginx.serve([Site("chat", PolicySpec(), replicas.members())])
        counts = _spread(nginx, 60)
    assert counts == {"chat-0": 20, "chat-1": 20, "chat-2": 20}


def test_weighted_round_robin__weights_3_to_1__shares_within_5_percent(
    nginx: RunningNginx,
) -> None:
    policy = PolicySpec(algorithm="weighted_round_robin", weights={"chat-0": 3, "chat-1": 1})
    with running_replicas(2) as replicas:
        nginx.serve([Site("chat", policy, replicas.members())])
        counts = _spread(nginx, 200, workers=4)
    assert abs(counts["chat-0"] / 200 - 0.75) <= 0.05
    assert abs(counts["chat-1"] / 200 - 0.25) <= 0.05


def test_least_conn__one_replica_slowed_down__it_gets_fewer_requests(
    nginx: RunningNginx,
) -> None:
    with running_replicas(2) as replicas:
        replicas.slow_down("chat-0", 20.0)
        nginx.serve([Site("chat", PolicySpec(algorithm="least_conn"), replicas.members())])

        def one(_: int) -> str:
            response = complete(nginx.url, max_tokens=16)
            assert response.status_code == 200
            return served_by(response)

        with ThreadPoolExecutor(8) as pool:
            counts = Counter(pool.map(one, range(120)))
    assert counts["chat-0"] < counts["chat-1"] / 2, counts


def test_ip_hash__one_client__every_request_on_one_replica(nginx: RunningNginx) -> None:
    with running_replicas(3) as replicas:
        nginx.serve([Site("chat", PolicySpec(algorithm="ip_hash"), replicas.members())])
        counts = _spread(nginx, 30)
    assert len(counts) == 1
    assert sum(counts.values()) == 30


def test_consistent_hash__member_added__keys_stay_and_about_a_quarter_move(
    nginx: RunningNginx,
) -> None:
    policy = PolicySpec(algorithm="consistent_hash", hash_key="X-Session-Id")
    keys = [f"session-{n}" for n in range(200)]

    def placement() -> dict[str, str]:
        out = {}
        for key in keys:
            first = served_by(complete(nginx.url, **{"X-Session-Id": key}))
            again = served_by(complete(nginx.url, **{"X-Session-Id": key}))
            assert first == again, f"{key} moved between two requests"
            out[key] = first
        return out

    with running_replicas(4) as replicas:
        nginx.serve([Site("chat", policy, replicas.members(pods=["chat-0", "chat-1", "chat-2"]))])
        before = placement()
        nginx.serve([Site("chat", policy, replicas.members())])
        after = placement()
    assert set(before.values()) == {"chat-0", "chat-1", "chat-2"}
    moved = [key for key in keys if before[key] != after[key]]
    # Ideally 1/4 of the keys move, all of them to the new member.
    assert 0 < len(moved) <= 0.35 * len(keys)
    assert {after[key] for key in moved} == {"chat-3"}


def test_killed_replica__new_requests__retried_on_another_none_fails(
    nginx: RunningNginx,
) -> None:
    with running_replicas(3) as replicas:
        nginx.serve([Site("chat", PolicySpec(), replicas.members())])
        replicas.kill("chat-1")
        responses = [complete(nginx.url) for _ in range(60)]
    assert [r.status_code for r in responses] == [200] * 60
    assert {served_by(r) for r in responses} == {"chat-0", "chat-2"}


def test_shedding__30_percent_of_low__low_refused_within_3_percent_and_high_never(
    nginx: RunningNginx,
) -> None:
    degradation = Degradation(shed_fraction={"low": 0.3, "high": 0.0})
    with running_replicas(2) as replicas:
        nginx.serve([Site("chat", PolicySpec(), replicas.members(), degradation)])

        def status(priority: str) -> tuple[int, str]:
            response = complete(nginx.url, **{"X-Priority": priority})
            return response.status_code, response.headers.get("Retry-After", "")

        with ThreadPoolExecutor(8) as pool:
            low = list(pool.map(status, ["low"] * 3000))
            high = list(pool.map(status, ["high"] * 300))
    refused = [s for s in low if s[0] != 200]
    assert {s for s in refused} == {(429, "5")}
    assert abs(len(refused) / len(low) - 0.3) <= 0.03
    assert all(code == 200 for code, _ in high)


def test_maintenance__message_set__503_with_the_message_and_no_replica_reached(
    nginx: RunningNginx,
) -> None:
    message = 'Upgrading to $NEW "v2"; it\'s C:\\ at 18:00 {é}\n\t.'
    with running_replicas(1) as replicas:
        site = Site(
            "chat",
            PolicySpec(retry_after_s=120),
            replicas.members(),
            Degradation(maintenance=message),
        )
        nginx.serve([site])
        for path in ("/v1/completions", "/chat/v1/completions"):
            response = complete(nginx.url, path=path)
            assert response.status_code == 503
            assert response.headers["Retry-After"] == "120"
            assert response.json() == {"error": "maintenance", "message": message}
            assert served_by(response) == ""


def test_fallback__primary_replicas_dead__fallback_deployment_answers(
    nginx: RunningNginx,
) -> None:
    with running_replicas(2, spare=1) as replicas:
        site = Site(
            "chat",
            PolicySpec(),
            replicas.members(),
            Degradation(fallback="spare"),
            fallback_members=replicas.members("spare"),
        )
        nginx.serve([site])
        assert served_by(complete(nginx.url)).startswith("chat-")
        replicas.kill("chat-0")
        replicas.kill("chat-1")
        responses = [
            complete(nginx.url, path=p) for p in ["/v1/completions", "/chat/v1/completions"] * 5
        ]
    assert [r.status_code for r in responses] == [200] * 10
    assert {served_by(r) for r in responses} == {"spare-0"}
    assert all(json.loads(r.text)["object"] == "text_completion" for r in responses)


def test_streamed_completion__through_nginx__every_token_event_then_done(
    nginx: RunningNginx,
) -> None:
    with running_replicas(1) as replicas:
        nginx.serve([Site("chat", PolicySpec(), replicas.members())])
        body = {"model": MODEL, "prompt": "Stream please.", "max_tokens": 12, "stream": True}
        with requests.post(
            nginx.url + "/chat/v1/completions", json=body, stream=True, timeout=30
        ) as response:
            assert response.status_code == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            data = [
                line[len(b"data: ") :].decode()
                for line in response.iter_lines()
                if line.startswith(b"data: ")
            ]
    assert data[-1] == "[DONE]"
    assert len(data) == 13


def test_retries__replica_answers_503__get_retried_on_another_post_never_sent_twice(
    nginx: RunningNginx,
) -> None:
    busy = RecordingServer(lambda request: (503, {}, b"busy"))
    fine = RecordingServer(lambda request: (200, {}, b"ok"))
    try:
        members = [
            Member(name="busy", address="127.0.0.1", port=busy.port),
            Member(name="fine", address="127.0.0.1", port=fine.port),
        ]
        # No passive health here: the busy replica keeps being picked.
        nginx.serve([Site("chat", PolicySpec(max_fails=0), members)])
        gets = [requests.get(nginx.url + "/v1/models", timeout=10) for _ in range(4)]
        posts = [
            requests.post(nginx.url + "/v1/completions", data=b"{}", timeout=10) for _ in range(4)
        ]
    finally:
        busy.stop()
        fine.stop()
    assert [r.status_code for r in gets] == [200] * 4
    assert sorted(r.status_code for r in posts) == [200, 200, 503, 503]
    received = [r.method for r in busy.requests + fine.requests if r.method == "POST"]
    assert len(received) == 4


def test_degradation_caps__through_nginx__headers_reach_the_backend_prefix_stripped(
    nginx: RunningNginx,
) -> None:
    backend = RecordingServer()
    try:
        degradation = Degradation(max_output_tokens=256, max_context_tokens=4096)
        site = Site(
            "chat",
            PolicySpec(),
            [Member(name="rec", address="127.0.0.1", port=backend.port)],
            degradation,
        )
        nginx.serve([site])
        assert requests.post(nginx.url + "/chat/v1/completions", data=b"{}", timeout=10).ok
    finally:
        backend.stop()
    (request,) = backend.requests
    assert request.path == "/v1/completions"
    assert request.headers["X-Degrade-Max-Output-Tokens"] == "256"
    assert request.headers["X-Degrade-Max-Context-Tokens"] == "4096"
    assert len(request.headers["X-Request-Id"]) == 32
