"""Drain before scale-down end to end: a real nginx runs the gateway's configuration in
front of simulator replicas served over HTTP, and a scale action scales the deployment
down through the simulator's API (the real simulated actuator). The gateway's agent is
played between the drain's polls: it fetches the gateway's configuration, reloads nginx
with it (``nginx -s reload``, graceful) and reports it applied.

While it happens, SSE streams run on every replica, the one removed included, and wrk
drives short completions through nginx: every stream must end complete and no request
may fail."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
import requests
from django.core.cache import cache
from django.utils import timezone

from apps.autoscaling.actions import scale_action_execute
from apps.autoscaling.actuators.base import ScaleStatus, ScaleTarget
from apps.autoscaling.actuators.factory import actuator_for
from apps.autoscaling.models import ActionStatus, ScaleAction
from apps.balancing import selectors
from apps.balancing.models import DrainingMember, Gateway, GatewayDeployment
from apps.balancing.render import main_config
from apps.balancing.services import gateway_report_record
from apps.fleetsim.exposition import serve
from apps.fleetsim.fleet import Fleet, SimulatedDeployment
from apps.fleetsim.replica_http import ReplicaHTTPServer
from tests.factories.inventory import SimulatedDeploymentFactory
from tests.integration.balancing.nginx import MODEL, RunningNginx
from tests.servers import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# wrk prints its totals as one JSON line at the end. One connection per request: on a
# reload nginx closes its old workers' idle keep-alive connections, and a client that
# sent a request on one at that instant sees it reset (HTTP lets clients retry then; wrk
# does not). That is reloading, not draining; this test is about the drain.
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Connection"] = "close"
wrk.body = '{"model": "%s", "prompt": "Which replica?", "max_tokens": 2}'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests": %%d, "non_2xx": %%d, "connect": %%d, "read": %%d, "write": %%d, '
    .. '"timeout": %%d}\\n',
    summary.requests, e.status, e.connect, e.read, e.write, e.timeout))
end
"""


@dataclass
class Gatewayhost:
    """nginx as a gateway host runs it: one main configuration including the fragment
    the agent writes, reloaded in place."""

    binary: str
    prefix: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    applied: dict[str, str] = field(default_factory=dict)
    last: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def conf(self) -> Path:
        return self.prefix / "nginx.conf"

    def _command(self, *extra: str) -> list[str]:
        return [self.binary, "-p", str(self.prefix), "-c", str(self.conf), *extra]

    def _workers(self) -> set[int]:
        assert self.proc is not None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return {int(pid) for pid in children.read_text().split()}

    def apply(self, text: str, version: str) -> None:
        """Write the fetched configuration and load it, as the agent does (the gateway
        listens on loopback only: its listen_address is 127.0.0.1)."""
        assert f"listen 127.0.0.1:{self.port};" in text, "the gateway should listen on loopback"
        (self.prefix / "balancing.conf").write_text(text)
        if self.proc is None:
            self.conf.write_text(
                main_config(prefix=self.prefix, include=self.prefix / "balancing.conf", workers=2)
            )
            log = str(self.prefix / "error.log")
            self.proc = subprocess.Popen([*self._command("-e", log), "-g", "daemon off;"])
            wait_for(self._accepting, timeout_s=10, what="nginx listening")
        else:
            before = self._workers()
            subprocess.run(self._command("-s", "reload"), check=True, timeout=10)
            # Loaded once the master has started workers with it (the old ones finish
            # the requests they hold, then exit).
            wait_for(lambda: self._workers() - before, timeout_s=10, what="new nginx workers")
        self.applied[version] = text
        self.last = version

    def _accepting(self) -> bool:
        try:
            requests.get(self.url + "/", timeout=1)
        except requests.ConnectionError:
            return False
        return True

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def host(nginx: RunningNginx) -> Iterator[Gatewayhost]:
    """The shared nginx fixture's binary, prefix and port, run the way a gateway host does."""
    running = Gatewayhost(binary=nginx.binary, prefix=nginx.prefix, port=nginx.port)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def fleet(settings: Any) -> Iterator[tuple[Fleet, ReplicaHTTPServer]]:
    """Three replicas of llm/chat over HTTP, and the simulator API the actuator calls."""
    fleet = Fleet([SimulatedDeployment("chat", MODEL, "llm", "A100-80GB", 3, ())])
    replicas = ReplicaHTTPServer(fleet, tick_s=0.005)
    replicas.start()
    api, port = serve(fleet, endpoints=replicas.endpoints)
    # Slow enough that a stream lasts a few seconds.
    fleet.run_realtime(speed=0.25, tick_s=0.01)
    settings.FLEETSIM_URL = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: sum(e["state"] == "ready" for e in replicas.endpoints()) == 3,
            timeout_s=30,
            what="replicas ready",
        )
        yield fleet, replicas
    finally:
        fleet.stop()
        api.stop()
        replicas.stop()


class Witness:
    """The real actuator, noting how many requests each replica it is told to remove
    holds at that moment (read from the simulated fleet itself)."""

    def __init__(self, inner: Any, fleet: Fleet) -> None:
        self.inner = inner
        self.fleet = fleet
        self.held: dict[str, int] = {}

    def get_scale(self, target: ScaleTarget) -> ScaleStatus:
        return cast(ScaleStatus, self.inner.get_scale(target))

    def set_replicas(
        self,
        target: ScaleTarget,
        replicas: int,
        *,
        idempotency_key: str,
        remove: Sequence[str] = (),
        drain_s: float = 0.0,
    ) -> ScaleStatus:
        with self.fleet.lock:
            self.fleet.sync()
            snapshot = self.fleet.get("llm", "chat").snapshot()
        for replica in snapshot.replicas:
            if replica.pod in remove:
                self.held[replica.pod] = replica.num_running + replica.num_waiting
        return cast(
            ScaleStatus,
            self.inner.set_replicas(
                target, replicas, idempotency_key=idempotency_key, remove=remove, drain_s=drain_s
            ),
        )


def _stream(url: str, out: list[dict[str, Any]]) -> None:
    body = {"model": MODEL, "prompt": "Tell me a story.", "max_tokens": 1000, "stream": True}
    result: dict[str, Any] = {"replica": "", "events": [], "status": 0, "error": ""}
    result["started"] = time.monotonic()
    try:
        with requests.post(url + "/v1/completions", json=body, stream=True, timeout=60) as r:
            result["status"] = r.status_code
            result["replica"] = r.headers.get("X-Replica", "")
            for line in r.iter_lines():
                if line.startswith(b"data: "):
                    result["events"].append(line[len(b"data: ") :].decode())
    except requests.RequestException as exc:
        result["error"] = str(exc)
    result["ended"] = time.monotonic()
    out.append(result)


def _complete(result: dict[str, Any]) -> bool:
    events = result["events"]
    if result["status"] != 200 or result["error"] or not events or events[-1] != "[DONE]":
        return False
    chunks = [json.loads(e) for e in events[:-1]]
    return not any("error" in c for c in chunks) and any(
        choice.get("finish_reason") for c in chunks for choice in c.get("choices", [])
    )


def test_scale_down_behind_nginx__drained_under_load__streams_complete_and_nothing_fails(
    host: Gatewayhost, fleet: tuple[Fleet, ReplicaHTTPServer], settings: Any, tmp_path: Path
) -> None:
    wrk = shutil.which("wrk")
    if wrk is None:
        pytest.skip("wrk binary not installed (Debian package 'wrk')")
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    cache.clear()
    settings.BALANCING_DRAIN_TIMEOUT_S = 60.0
    settings.BALANCING_DRAIN_POLL_S = 0.2
    _, replicas = fleet
    deployment = SimulatedDeploymentFactory(name="chat")
    gateway = Gateway.objects.create(
        team=deployment.team,
        name="edge",
        listen_address="127.0.0.1",
        listen_port=host.port,
        last_seen_at=timezone.now(),
    )
    GatewayDeployment.objects.create(gateway=gateway, deployment=deployment)

    def agent_poll() -> None:
        Gateway.objects.filter(pk=gateway.pk).update(last_seen_at=timezone.now())
        rendered = selectors.gateway_config(gateway=gateway)
        assert rendered.ok, rendered.errors
        if host.last == rendered.sha256:
            return
        host.apply(rendered.text, rendered.sha256)
        gateway_report_record(
            gateway=gateway, version=rendered.sha256, result="applied", applied_at=timezone.now()
        )

    agent_poll()
    assert requests.post(
        host.url + "/v1/completions", json={"model": MODEL, "prompt": "hi"}, timeout=10
    ).ok

    # Two streams per replica (round robin, started one after the other).
    streams: list[dict[str, Any]] = []
    threads = [threading.Thread(target=_stream, args=(host.url, streams)) for _ in range(6)]
    for thread in threads:
        thread.start()
        time.sleep(0.05)
    script = tmp_path / "load.lua"
    script.write_text(WRK_SCRIPT % MODEL)
    load = subprocess.Popen(
        [
            wrk,
            "-t2",
            "-c8",
            "-d12s",
            "--timeout",
            "30s",
            "-s",
            str(script),
            host.url + "/v1/completions",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "LC_ALL": "C"},
    )
    time.sleep(1.0)

    def sleep(seconds: float) -> None:
        time.sleep(seconds)
        agent_poll()

    action = ScaleAction.objects.create(
        deployment=deployment, from_replicas=3, to_replicas=2, idempotency_key="drain-3-to-2"
    )
    witness = Witness(actuator_for(deployment), fleet[0])
    done = scale_action_execute(
        action_id=action.pk, actuator_factory=lambda d: witness, sleep=sleep
    )
    # The agent's next poll after the action: the removed replica stays out.
    agent_poll()
    out, _ = load.communicate(timeout=60)
    for thread in threads:
        thread.join(timeout=60)

    assert done is not None
    assert done.status == ActionStatus.SUCCEEDED, done.error
    record = done.drain
    (drained,) = [m["name"] for m in record["members"]]
    assert record["timed_out"] is False
    assert record["outcome"] == "removed"
    (waited,) = record["gateways"]
    assert waited["applied"] is True
    # The configuration it waited for is one nginx loaded, without the drained member.
    assert record["members"][0]["endpoint"] not in host.applied[waited["version"]]
    assert len(host.applied) == 2
    assert record["in_flight_done_after_s"] >= record["applied_after_s"]
    assert not DrainingMember.objects.exists()
    # The simulator removed exactly the drained replica.
    wait_for(
        lambda: drained not in {e["pod"] for e in replicas.endpoints()},
        timeout_s=30,
        what="drained replica gone",
    )
    assert sorted(e["pod"] for e in replicas.endpoints()) == sorted(
        {"chat-0", "chat-1", "chat-2"} - {drained}
    )
    # It held no request any more when it was removed...
    assert witness.held == {drained: 0}
    # ...though streams on it were in flight when the drain began; every stream is whole.
    assert drained in {s["replica"] for s in streams}
    assert len(streams) == 6
    assert [s for s in streams if not _complete(s)] == []
    # And wrk's requests through nginx, before, during and after: none failed.
    (line,) = [ln for ln in out.splitlines() if ln.startswith("WRK ")]
    totals = json.loads(line[len("WRK ") :])
    print("wrk during the drain:", totals, "drain:", record)
    print("streams:", [(s["replica"], round(s["ended"] - s["started"], 2)) for s in streams])
    assert totals["requests"] > 0
    failures = {k: v for k, v in totals.items() if k != "requests" and v}
    assert failures == {}
