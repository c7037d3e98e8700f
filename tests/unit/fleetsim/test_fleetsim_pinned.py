"""Pinned requests: requests that reached one replica's own endpoint (the HTTP face)."""

from __future__ import annotations

import pytest

from apps.fleetsim.fleet import SimulatedDeployment
from apps.fleetsim.profiles import get_profile
from apps.fleetsim.replica import Job, Replica


def _deployment(replicas: int = 2) -> SimulatedDeployment:
    return SimulatedDeployment("chat", "m", "llm", "A100-80GB", replicas, ())


def test_tokens_generated__pinned_request__grows_with_steps_then_none() -> None:
    replica = Replica(get_profile("A100-80GB"))
    replica.submit(Job(1, 0.0, 100, 50, pinned=True), 0.0)

    assert replica.tokens_generated(1) == 0
    seen = []
    for i in range(1, 400):
        replica.advance(i * 0.005)
        seen.append(replica.tokens_generated(1))
    done = replica.completed()

    counts = [n for n in seen if n is not None]
    assert counts == sorted(counts)
    assert counts[0] >= 1
    assert max(counts) <= 50
    assert seen[-1] is None
    assert [(r.request_id, r.output_tokens, r.completed) for r in done] == [(1, 50, True)]


def test_tokens_generated__request_not_pinned__not_tracked() -> None:
    replica = Replica(get_profile("A100-80GB"))
    replica.submit(Job(1, 0.0, 100, 50), 0.0)
    replica.advance(0.1)

    assert replica.tokens_generated(1) is None


def test_pinned_progress__finished__record_handed_out_once() -> None:
    deployment = _deployment()
    rid = deployment.submit_pinned("chat-1", prompt_tokens=20, output_tokens=5)

    assert deployment.pinned_progress("chat-1", rid) == (0, None)
    deployment.advance(5.0)
    tokens, record = deployment.pinned_progress("chat-1", rid)

    assert tokens == 5
    assert record is not None
    assert record.completed
    assert record.pod == "chat-1"
    assert deployment.pinned_progress("chat-1", rid) == (0, None)
    assert deployment.find_replica("chat-0").stats.success == 0  # type: ignore[union-attr]


def test_submit_pinned__replica_not_ready__key_error() -> None:
    deployment = _deployment(1)
    deployment.scale(2)

    with pytest.raises(KeyError):
        deployment.submit_pinned("chat-1", prompt_tokens=1, output_tokens=1)
    with pytest.raises(KeyError):
        deployment.submit_pinned("nope", prompt_tokens=1, output_tokens=1)


def test_submit_pinned__error_injected__failed_at_once() -> None:
    deployment = _deployment(1)
    deployment.inject_error_ratio(1.0)

    rid = deployment.submit_pinned("chat-0", prompt_tokens=1, output_tokens=1)
    _, record = deployment.pinned_progress("chat-0", rid)

    assert record is not None
    assert record.failure_reason == "injected"


def test_scale_down__pinned_request_without_drain__aborted_not_requeued() -> None:
    deployment = _deployment(2)
    pinned = deployment.submit_pinned("chat-0", prompt_tokens=50, output_tokens=500)
    deployment.submit_pinned("chat-1", prompt_tokens=50, output_tokens=500)
    deployment.submit_pinned("chat-1", prompt_tokens=50, output_tokens=500)
    deployment.advance(0.5)

    deployment.scale(1)  # chat-0 holds the least, so it goes

    _, record = deployment.pinned_progress("chat-0", pinned)
    assert record is not None
    assert record.failure_reason == "aborted"
    assert deployment.totals().requeued == 0
    assert deployment.find_replica("chat-1").outstanding == 2  # type: ignore[union-attr]


def test_scale_down__pinned_request_with_drain__finishes_on_draining_replica() -> None:
    deployment = _deployment(1)
    rid = deployment.submit_pinned("chat-0", prompt_tokens=50, output_tokens=300)
    deployment.advance(0.5)

    deployment.scale(0, drain_s=600.0)

    assert deployment.replica_states() == {"chat-0": "draining"}
    deployment.advance(60.0)
    _, record = deployment.pinned_progress("chat-0", rid)
    assert record is not None
    assert record.completed
    assert record.output_tokens == 300
    assert deployment.replica_states() == {}


@pytest.mark.parametrize(
    ("prompt", "advance_s"),
    [(100, 0.0), (10_000, 0.01), (100, 0.5)],
    ids=["waiting", "prefilling", "decoding"],
)
def test_abort__pinned_request_in_any_phase__frees_slot_and_cache(
    prompt: int, advance_s: float
) -> None:
    replica = Replica(get_profile("A100-80GB"))
    replica.submit(Job(1, 0.0, prompt, 400, pinned=True), 0.0)
    replica.submit(Job(2, 0.0, 100, 50, pinned=True), 0.0)
    replica.advance(advance_s)

    assert replica.abort(1, advance_s)

    assert replica.tokens_generated(1) is None
    assert replica.stats.failures == {"aborted": 1}
    replica.run_until_idle()
    assert replica.kv_tokens_used == 0
    assert [(r.request_id, r.completed) for r in replica.completed()] == [(1, False), (2, True)]
    assert replica._reserved == 0  # no KV-cache reservation outlives its request
    assert replica.num_running == replica.num_waiting == 0
    assert not replica.abort(1, replica.clock)


def test_abort_pinned__client_gone__request_leaves_the_replica() -> None:
    deployment = _deployment(1)
    rid = deployment.submit_pinned("chat-0", prompt_tokens=50, output_tokens=500)
    deployment.advance(0.2)

    deployment.abort_pinned("chat-0", rid)

    assert deployment.find_replica("chat-0").outstanding == 0  # type: ignore[union-attr]
    assert deployment.pinned_progress("chat-0", rid) == (0, None)
    assert deployment.totals().failures_by_reason == {"aborted": 1}


def test_replica_states__scaling__starting_ready_and_draining() -> None:
    deployment = _deployment(2)
    deployment.submit_pinned("chat-0", prompt_tokens=50, output_tokens=500)
    deployment.submit_pinned("chat-1", prompt_tokens=50, output_tokens=500)
    deployment.advance(0.1)

    deployment.scale(1, drain_s=60.0)
    deployment.scale(2)

    assert deployment.replica_states() == {
        "chat-0": "ready",
        "chat-1": "draining",
        "chat-2": "starting",
    }


def test_set_slowdown__factor_three__same_request_three_times_slower() -> None:
    normal = Replica(get_profile("A100-80GB"))
    slow = Replica(get_profile("A100-80GB"))
    slow.set_slowdown(3.0, 0.0)
    for replica in (normal, slow):
        replica.submit(Job(1, 0.0, 500, 100), 0.0)
        replica.run_until_idle()

    (fast_record,) = normal.completed()
    (slow_record,) = slow.completed()
    assert slow_record.ttft_s == pytest.approx(3 * fast_record.ttft_s)  # type: ignore[operator]
    assert slow_record.e2e_s == pytest.approx(3 * fast_record.e2e_s)  # type: ignore[operator]


def test_set_slowdown__invalid_factor__value_error() -> None:
    replica = Replica(get_profile("A100-80GB"))

    for factor in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="slowdown"):
            replica.set_slowdown(factor, 0.0)
