"""The fast path: reading replicas' own /metrics over real HTTP on loopback."""

from __future__ import annotations

import pytest

from apps.balancing.members import Member
from apps.metrics.fastpath import FastReader, member_refusal
from tests.servers import RecordingServer
from tests.unit.autoscaling.test_engine_v2 import demand_deployment, store

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


def test_read__two_replicas__waiting_and_running_totals_as_they_are_now(loopback_allowed):
    a, b = Replica(waiting=3, running=5, stop=100), Replica(waiting=1, running=2, stop=40)
    try:
        clock = Clock()
        reader = FastReader("vllm", clock=clock)
        members = [a.member("a"), b.member("b")]
        first = reader.read(members)
        assert first.values == {"queue_length": 4.0, "running_requests": 7.0}
        assert first.at == 100.0
        a.state.update(stop=110, waiting=9)
        b.state.update(stop=46)
        clock.t += 2.0
        second = reader.read(members)
        # The finished counters are not read: their rate stays the collector's.
        assert second.values == {"queue_length": 10.0, "running_requests": 7.0}
        assert second.read == ("a", "b")
        assert second.failed == ()
        assert [r.path for r in a.server.requests] == ["/metrics", "/metrics"]
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


class FixedActuator:
    def __init__(self, spec):
        self.spec = spec

    def get_scale(self, target):
        from apps.autoscaling.actuators.base import ScaleStatus

        return ScaleStatus(self.spec, self.spec)


@pytest.mark.django_db
def test_fast_path_evaluate__burst_between_scrapes__decided_at_once__quiet__left_to_loop(
    loopback_allowed, settings
):
    """The collected (scraped) readings still show a quiet deployment; the replicas' own
    metrics show a backlog: the fast path evaluates at once with them. When they ask for
    no more than is set, it records nothing."""
    import time

    from apps.autoscaling.evaluation import fast_path_evaluate
    from apps.autoscaling.models import DecisionRecord

    dep = demand_deployment(settings)
    now = time.time()
    store(dep, now - 20, request_rate=2.0, queue_length=0.0)
    a, b = Replica(waiting=0, stop=100), Replica(waiting=0, stop=100)
    try:
        clock = Clock()
        reader = FastReader("vllm", clock=clock)
        members = [a.member("a"), b.member("b")]

        def tick(at):
            return fast_path_evaluate(
                deployment=dep,
                reader=reader,
                members=members,
                actuator_factory=lambda d: FixedActuator(2),
                now=at,
            )

        assert tick(now) is None  # 2 req/s scraped, nothing waiting: 2 / 1.6 = 2, as set
        clock.t += 2.0
        a.state.update(stop=103, waiting=1)
        b.state.update(stop=103)
        assert tick(now + 2) is None  # (2 + 1 / 60) / 1.6: still 2
        assert not DecisionRecord.objects.exists()

        clock.t += 2.0
        a.state.update(stop=107, waiting=60)
        b.state.update(stop=107, waiting=60)
        record = tick(now + 4)
        assert record is not None
        # (2 req/s scraped + 120 waiting / 60 s) / (2 * 0.8) = 2.5: the scrape alone says 2.
        assert record.rule == "target:request_rate"
        assert record.desired_replicas == 3
        assert "backlog 120 over 60 s" in record.reason
        assert record.inputs["observations"]["request_rate"]["value"] == 2.0
        assert record.inputs["observations"]["queue_length"]["value"] == 120.0
        # Its readings are kept (as of when they were read) for the next growth, but two
        # seconds of counters are no demand sample, and nothing is learned from them.
        from apps.autoscaling.evaluation import history_load
        from apps.autoscaling.models import DeploymentControl

        history = history_load(DeploymentControl.objects.get(deployment=dep).history)
        assert history.signal_samples["queue_length"][-1] == (now + 4, 120.0)
        assert history.demand_samples == ()
        assert history.capacity is None
    finally:
        a.server.stop()
        b.server.stop()


@pytest.mark.django_db
def test_command__burst_on_replicas__evaluated_between_scrapes(loopback_allowed, settings):
    """The command discovers the members from the simulator's API, reads their metrics and
    records a decision only once they ask for more than the two replicas set."""
    import json
    import time

    from django.core.management import call_command

    from apps.autoscaling.models import DecisionRecord

    dep = demand_deployment(settings)
    a, b = Replica(waiting=300, stop=10), Replica(waiting=300, stop=10)

    def simulator(request):
        if request.path == "/endpoints":
            entries = [
                {
                    "namespace": dep.scale_target_namespace,
                    "deployment": dep.scale_target_name,
                    "pod": name,
                    "host": r.member(name).address,
                    "port": r.member(name).port,
                    "state": "ready",
                }
                for name, r in (("a", a), ("b", b))
            ]
            return 200, {}, json.dumps({"endpoints": entries}).encode()
        return 200, {}, json.dumps({"spec_replicas": 2, "ready_replicas": 2}).encode()

    api = RecordingServer(simulator)
    try:
        host, port = api.server.server_address[:2]
        settings.FLEETSIM_URL = f"http://{host}:{port}"
        # No demand collected yet: the replicas' backlog alone cannot size.
        call_command("autoscaling_fastpath", iterations=1, interval=0.5)
        assert not DecisionRecord.objects.exists()
        # With the collector's rate: (1 req/s + 600 waiting over 60 s) / (2 * 0.8) = 6.9
        # replicas against 2 set.
        store(dep, time.time() - 20, request_rate=1.0, queue_length=0.0)
        call_command("autoscaling_fastpath", iterations=1, interval=0.5)
        record = DecisionRecord.objects.get()
        assert (record.current_replicas, record.desired_replicas) == (2, 7)
        assert "backlog 600 over 60 s" in record.reason
    finally:
        api.stop()
        a.server.stop()
        b.server.stop()


@pytest.mark.django_db
def test_command__members_undiscoverable__asked_again_at_the_refresh_not_every_round(
    loopback_allowed, settings
):
    """``make run``'s demo simulator without replica servers answers 404 on /endpoints: the
    command asks again only every --members-every, evaluates nothing meanwhile."""
    import json

    from django.core.management import call_command

    from apps.autoscaling.models import DecisionRecord

    demand_deployment(settings)
    api = RecordingServer(
        lambda request: (404, {}, json.dumps({"error": "the replicas do not serve HTTP"}).encode())
    )
    try:
        host, port = api.server.server_address[:2]
        settings.FLEETSIM_URL = f"http://{host}:{port}"
        call_command("autoscaling_fastpath", iterations=3, interval=0.5, members_every=60)

        assert api.hits.count("/endpoints") == 1
        assert not DecisionRecord.objects.exists()
    finally:
        api.stop()
