"""A Celery worker killed with SIGKILL while it applies a scale action.

A real ``celery worker`` process claims the action and sends its write to a scale endpoint
that holds the request until the test lets it answer. The worker is killed in the middle of
that call; the write then either lands (the platform had received it: the worker died
after the actuator call but before it could mark the action done) or is lost with the
worker. A second worker is started and the periodic ``autoscaling.evaluate_all`` is sent
as beat would send it. Once the killed worker's lease (its deployment lock) has run out,
the action goes back to pending under the same idempotency key and is applied again; the
re-run re-reads the platform first. Either way the endpoint sees exactly one applied write
for the key, and the action ends succeeded.

The broker is Redis db 13 and the cache (where the lease lives) Redis db 12; the worker
processes use the test database (PostgreSQL, or the SQLite test file).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus

import pytest

from apps.autoscaling.models import ActionStatus, ScaleAction
from apps.autoscaling.tasks import evaluate_all, execute_action
from tests.factories.inventory import SimulatedDeploymentFactory
from tests.integration.scale_endpoint import ScaleApiHandler
from tests.servers import base_url, http_server, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# Short, so that the test does not wait two minutes for the killed worker's lease; still
# far longer than one apply against the local endpoint.
LEASE_S = 4


@dataclass
class _Platform:
    """A scale endpoint whose writes wait for ``release``. ``land`` says whether a write
    whose caller is gone by then is applied (the platform had the request) or dropped."""

    spec: dict[str, int] = field(default_factory=dict)
    land: bool = True
    hold_writes: bool = True
    arrived: list[str] = field(default_factory=list)  # the key of every write received
    applied: list[str] = field(default_factory=list)  # the key of every write applied
    write_arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    write_done: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(ScaleApiHandler):
    def spec(self) -> dict[str, int]:
        return self.server.platform.spec

    def do_GET(self) -> None:
        target = self.target()
        if target is not None:
            with self.server.platform.lock:
                status = self.status(target)
            self.send_json(HTTPStatus.OK, status)

    def do_PUT(self) -> None:
        platform = self.server.platform
        write = self.write()
        if write is None:
            return
        target, replicas, key = write
        with platform.lock:
            platform.arrived.append(key)
            hold = platform.hold_writes
            platform.hold_writes = False  # only the first write is held
        if hold:
            platform.write_arrived.set()
            platform.release.wait(60)
        with platform.lock:
            if platform.land or not hold:
                platform.spec[target] = replicas
                platform.applied.append(key)
            status = self.status(target)
        if hold:
            platform.write_done.set()
        self.send_json(HTTPStatus.OK, status)


@pytest.fixture
def platform() -> Iterator[tuple[_Platform, str]]:
    state = _Platform()
    with http_server(_Handler, platform=state) as server:
        try:
            yield state, base_url(server)
        finally:
            state.release.set()  # a held write ends before the server stops


@pytest.mark.parametrize("landed", [True, False], ids=["write-landed", "write-lost"])
def test_worker_killed_mid_write__action_recovered__applied_exactly_once(
    landed, platform, worker_processes
):
    state, url = platform
    state.land = landed
    deployment = SimulatedDeploymentFactory(name="victim", min_replicas=1, max_replicas=10)
    state.spec["llm/victim"] = 1
    key = f"dep{deployment.pk}-manual-1to3"
    action = ScaleAction.objects.create(
        deployment=deployment, from_replicas=1, to_replicas=3, idempotency_key=key
    )
    env = {"AUTOSCALING_ACTION_LEASE_S": str(LEASE_S)}

    (first,) = worker_processes(1, url, env)
    execute_action.delay(action.pk)
    assert state.write_arrived.wait(30), "the worker never sent its write"
    action.refresh_from_db()
    assert action.status == ActionStatus.RUNNING

    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(timeout=10)
    state.release.set()
    assert state.write_done.wait(10)
    assert state.applied == ([key] if landed else [])

    # Another worker, and the periodic fan-out as beat sends it every cycle.
    (second,) = worker_processes(1, url, env)
    sent_at = 0.0

    def recovered() -> bool:
        nonlocal sent_at
        action.refresh_from_db()
        if action.status in (ActionStatus.RUNNING, ActionStatus.PENDING):
            if time.monotonic() - sent_at > 1.0:
                evaluate_all.delay()
                sent_at = time.monotonic()
            return False
        return True

    wait_for(recovered, LEASE_S + 60, "the action recovered")
    assert action.status == ActionStatus.SUCCEEDED, action.error
    assert action.idempotency_key == key

    # One applied write for the key: the re-run found it landed, or made it once.
    assert state.applied == [key]
    assert state.arrived == ([key] if landed else [key, key])
    assert state.spec["llm/victim"] == 3
    # The row is committed before the worker writes its log line: wait for the line.
    wait_for(lambda: second.count("scale-action-applied") >= 1, 30, "the applied log line")
    assert second.count("scale-action-recovered") == 1
    assert second.count("scale-action-applied") == 1
    assert first.count("scale-action-applied") == 0
