"""The fast path: reading replicas' own /metrics over real HTTP on loopback."""

from __future__ import annotations

import pytest

from apps.balancing.members import Member
from apps.metrics.fastpath import FastReader, member_refusal
from tests.servers import RecordingServer

PAGE = """# HELP vllm:num_requests_waiting Waiting.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{{model_name="m"}} {waiting}
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{{model_name="m"}} {running}
# TYPE vllm:request_success counter
vllm:request_success_total{{finished_reason="stop",model_name="m"}} {stop}
vllm:request_success_total{{finished_reason="length",model_name="m"}} 1
"""


class Replica:
    def __init__(self, waiting=0, running=0, stop=0, status=200):
        self.state = {"waiting": waiting, "running": running, "stop": stop}
        self.status = status
        self.server = RecordingServer(self.answer)

    def answer(self, request):
        if request.path != "/metrics":
            return 404, {}, b""
        if self.status == 302:
            return 302, {"Location": "http://169.254.169.254/metrics"}, b""
        return self.status, {"Content-Type": "text/plain"}, PAGE.format(**self.state).encode()

    def member(self, name):
        host, port = self.server.server.server_address[:2]
        return Member(name, host, port)


@pytest.fixture
def loopback_allowed(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_read__two_replicas__totals_and_finished_rate_since_last_read(loopback_allowed):
    a, b = Replica(waiting=3, running=5, stop=100), Replica(waiting=1, running=2, stop=40)
    try:
        clock = Clock()
        reader = FastReader("vllm", clock=clock)
        members = [a.member("a"), b.member("b")]
        first = reader.read(members)
        assert first.values == {"queue_length": 4.0, "running_requests": 7.0}
        assert "request_rate" not in first.values  # no earlier read to take a rate from
        a.state.update(stop=110, waiting=9)
        b.state.update(stop=46)
        clock.t += 2.0
        second = reader.read(members)
        assert second.values == {
            "queue_length": 10.0,
            "running_requests": 7.0,
            "request_rate": 8.0,  # (10 + 6) / 2 s
        }
        assert second.read == ("a", "b")
        assert second.failed == ()
        assert [r.path for r in a.server.requests] == ["/metrics", "/metrics"]
        # A counter that went back (a restarted engine) leaves the rate unknown once.
        a.state.update(stop=3)
        clock.t += 2.0
        assert "request_rate" not in reader.read(members).values
    finally:
        a.server.stop()
        b.server.stop()


@pytest.mark.parametrize("status", [500, 302])
def test_read__one_replica_fails_or_redirects__nothing_reads_as_zero(loopback_allowed, status):
    good, bad = Replica(waiting=2, stop=5), Replica(status=status)
    try:
        reading = FastReader("vllm", clock=Clock()).read([good.member("a"), bad.member("b")])
        assert reading.values == {}
        assert reading.read == ("a",)
        assert reading.failed[0][0] == "b"
        assert f"HTTP {status}" in reading.failed[0][1]
        assert [r.path for r in bad.server.requests] == ["/metrics"]  # no redirect followed
    finally:
        good.server.stop()
        bad.server.stop()


def test_read__addresses_checked_before_any_connection(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    replica = Replica(waiting=1)
    try:
        reading = FastReader("vllm", clock=Clock()).read(
            [replica.member("a"), Member("meta", "169.254.169.254", 80), Member("x", "pod-1", 80)]
        )
        assert reading.values == {}
        assert [name for name, _ in reading.failed] == ["a", "meta", "x"]
        assert "loopback" in reading.failed[0][1]
        assert replica.server.requests == []
    finally:
        replica.server.stop()
    assert member_refusal("10.12.0.7") is None  # pod networks are private ranges
    assert member_refusal("100.64.3.1") is None
    assert "link-local" in member_refusal("fe80::1")
    assert member_refusal("0.0.0.0") is not None  # noqa: S104 (an address refused, not bound)
