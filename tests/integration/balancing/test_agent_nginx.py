"""The gateway agent between the real control plane (Django's live server), a real nginx
and the fleet simulator's HTTP replicas: it applies what the control plane renders and
traffic follows, keeps the last good configuration when nginx refuses one, is refused
another team's gateway, and under wrk load ten reloads in a row cost no request."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from apps.balancing import selectors
from apps.balancing.agent import AgentSettings, GatewayAgent
from apps.balancing.members import Member
from apps.balancing.models import Gateway, GatewayReport
from apps.balancing.render import main_config, text_version
from apps.balancing.services import (
    gateway_create,
    gateway_update,
    policy_create,
    policy_update,
)
from apps.fleetsim.exposition import serve
from apps.toggles.services import gateway_token_create
from tests.factories.inventory import SimulatedDeploymentFactory
from tests.integration.balancing.nginx import (
    MODEL,
    RunningNginx,
    complete,
    running_replicas,
    served_by,
)
from tests.servers import binary_or_skip, clean_env, free_port, run_manage, wait_for

pytestmark = pytest.mark.integration

RELOADS = 10


@dataclass
class Edge:
    """Gateway "edge" of the roster's team fronting simulated "chat" (2 replicas), the
    nginx it configures and an agent for it."""

    gateway: Gateway
    nginx: RunningNginx
    settings: AgentSettings
    replicas: Any

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway.listen_port}"

    def agent(self) -> GatewayAgent:
        return GatewayAgent(self.settings)

    def reports(self) -> list[GatewayReport]:
        return list(GatewayReport.objects.filter(gateway=self.gateway).order_by("pk"))

    def spread(self, count: int) -> Counter[str]:
        counts: Counter[str] = Counter()
        for _ in range(count):
            response = complete(self.url)
            assert response.status_code == 200, response.text
            counts[served_by(response)] += 1
        return counts


def start_nginx(nginx: RunningNginx, config: Path) -> None:
    """nginx running on its main configuration, which includes ``config`` (empty: no
    server yet), as a package's nginx is before the agent's first poll."""
    config.write_text("")
    conf = nginx.prefix / "nginx.conf"
    conf.write_text(main_config(prefix=nginx.prefix, include=config))
    log = nginx.prefix / "error.log"
    command = [nginx.binary, "-p", str(nginx.prefix), "-c", str(conf), "-e", str(log)]
    nginx.proc = subprocess.Popen([*command, "-g", "daemon off;"])
    wait_for(lambda: (nginx.prefix / "nginx.pid").exists(), timeout_s=10, what="nginx started")


@pytest.fixture
def edge(
    nginx: RunningNginx, live_server: Any, roster: Any, settings: Any, tmp_path: Path
) -> Iterator[Edge]:
    with running_replicas(2) as replicas:
        api, api_port = serve(replicas.fleet, endpoints=replicas.server.endpoints)
        settings.FLEETSIM_URL = f"http://127.0.0.1:{api_port}"
        try:
            chat = SimulatedDeploymentFactory(team=roster.team, name="chat")
            gateway = gateway_create(
                team=roster.team,
                name="edge",
                deployments=[chat],
                listen_port=free_port(),
                listen_address="127.0.0.1",
                actor=None,
            )
            _, secret = gateway_token_create(team=roster.team, name="edge-host", actor=None)
            token = tmp_path / "token"
            token.write_text(secret)
            config = nginx.prefix / "balancing.conf"
            start_nginx(nginx, config)
            agent_settings = AgentSettings(
                server=live_server.url,
                gateway="edge",
                token_file=token,
                config_path=config,
                nginx=nginx.binary,
                nginx_conf=nginx.prefix / "nginx.conf",
                prefix=nginx.prefix,
                error_log=nginx.prefix / "error.log",
                pid_file=nginx.prefix / "nginx.pid",
                interval_s=0.1,
            )
            yield Edge(gateway, nginx, agent_settings, replicas)
        finally:
            api.stop()


def _only(edge: Edge, pod: str) -> None:
    """The policy sends everything to ``pod``, the other replica being a backup."""
    other = {"chat-0": "chat-1", "chat-1": "chat-0"}[pod]
    deployment = edge.gateway.deployments.get()
    policy = deployment.balancing_policy if hasattr(deployment, "balancing_policy") else None
    if policy is None:
        policy_create(deployment=deployment, actor=None, backups=[other])
    else:
        policy_update(policy=policy, actor=None, backups=[other])


def _applied(edge: Edge, agent: GatewayAgent) -> str:
    """One poll that must apply the control plane's current configuration; its version."""
    result = agent.cycle()
    assert result.outcome == "applied", result
    return result.version


def test_agent__policy_changes__applied_reported_traffic_follows_then_304(edge: Edge) -> None:
    agent = edge.agent()
    agent.recover()
    _only(edge, "chat-0")
    version = _applied(edge, agent)
    assert version == selectors.gateway_config(gateway=edge.gateway).sha256
    assert text_version(edge.settings.config_path.read_text()) == version
    assert edge.spread(12) == {"chat-0": 12}
    (report,) = edge.reports()
    assert (report.version, report.result) == (version, "applied")
    edge.gateway.refresh_from_db()
    seen = edge.gateway.last_seen_at
    assert seen is not None

    assert agent.cycle().outcome == "unchanged"  # 304: nothing written, nothing reloaded
    assert len(edge.reports()) == 1
    edge.gateway.refresh_from_db()
    assert edge.gateway.last_seen_at is not None
    assert edge.gateway.last_seen_at >= seen

    _only(edge, "chat-1")
    second = _applied(edge, agent)
    assert second != version
    assert edge.settings.last_good_path.read_text() != edge.settings.config_path.read_text()
    assert edge.spread(12) == {"chat-1": 12}
    assert [(r.version, r.result) for r in edge.reports()] == [
        (version, "applied"),
        (second, "applied"),
    ]


def test_agent__config_nginx_refuses_on_the_gateway__last_good_kept_invalid_reported_serving(
    edge: Edge, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = edge.agent()
    agent.recover()
    good = _applied(edge, agent)
    good_text = edge.settings.config_path.read_text()
    # A member address the gateway cannot resolve, which the control plane's own check
    # would have caught: here it does not check, so the gateway's nginx -t must.
    listed = selectors.deployment_members
    monkeypatch.setattr(selectors, "nginx_test", lambda text, binary: [])
    monkeypatch.setattr(
        selectors,
        "deployment_members",
        lambda d: [*listed(d), Member(name="chat-9", address="no-such-host.invalid", port=80)],
    )
    result = agent.cycle()
    assert result.outcome == "invalid"
    assert edge.settings.config_path.read_text() == good_text
    last = edge.reports()[-1]
    assert (last.result, last.version) == ("invalid", result.version)
    assert result.version != good
    assert "no-such-host.invalid" in last.error
    assert sum(edge.spread(6).values()) == 6  # nginx still serves the last good one
    assert agent.cycle().outcome == "unchanged"  # not retried while the server serves it
    assert len(edge.reports()) == 2


def test_agent__gateway_token_of_another_team__404_nothing_touched(
    edge: Edge, roster: Any, tmp_path: Path
) -> None:
    _, secret = gateway_token_create(team=roster.other_team, name="theirs", actor=None)
    (tmp_path / "theirs").write_text(secret)
    agent = GatewayAgent(replace(edge.settings, token_file=tmp_path / "theirs"))
    result = agent.cycle()
    assert result.outcome == "refused"
    assert result.detail.startswith("404")
    assert edge.settings.config_path.read_text() == ""
    assert edge.reports() == []


WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model": "%s", "prompt": "Which replica?", "max_tokens": 1}'
"""


def _wrk_counts(output: str) -> dict[str, int]:
    requests_done = re.search(r"(\d+) requests in", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return {
        "requests": int(requests_done.group(1)) if requests_done else 0,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(map(int, sockets.groups())) if sockets else 0,
    }


def test_agent__ten_reloads_under_wrk__no_failed_request(edge: Edge, tmp_path: Path) -> None:
    wrk = binary_or_skip("/usr/bin/wrk" if Path("/usr/bin/wrk").exists() else None, "wrk", "wrk")
    agent = edge.agent()
    agent.recover()
    _only(edge, "chat-0")
    first = _applied(edge, agent)
    script = tmp_path / "post.lua"
    script.write_text(WRK_SCRIPT % MODEL)
    # A new connection per request: a keep-alive connection idle at the instant an old
    # worker quits is closed under a request the client just sent (docs/balancing.md,
    # "Running the gateway agent"), which no configuration of the reload avoids.
    command = [wrk, "-t1", "-c8", "-d120s", "--timeout", "20s", "-H", "Connection: close",
               "-s", str(script), f"{edge.url}/v1/completions"]  # fmt: skip
    load = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # The agent's own loop, polling every 0.1 s, applies each change as it comes.
    stop = threading.Event()
    agent.sleep = stop.wait
    loop = threading.Thread(target=agent.run, kwargs={"stop": stop}, daemon=True)
    loop.start()
    try:
        versions = [first]
        for n in range(RELOADS):
            _only(edge, "chat-1" if n % 2 == 0 else "chat-0")
            versions.append(selectors.gateway_config(gateway=edge.gateway).sha256)
            wait_for(lambda: len(edge.reports()) == len(versions), what=f"reload {n + 1} reported")
        assert load.poll() is None, "wrk ended before the reloads did: raise its -d"
    finally:
        stop.set()
        loop.join(timeout=30)
        load.send_signal(signal.SIGINT)  # wrk stops and prints what it counted
        output, _ = load.communicate(timeout=60)
    counts = _wrk_counts(output)
    print(f"wrk during {RELOADS} reloads: {counts}\n{output}")
    assert counts["requests"] > 0, output
    assert counts["non_2xx"] == 0, output
    assert counts["socket_errors"] == 0, output
    applied = [(r.version, r.result) for r in edge.reports()]
    assert applied == [(v, "applied") for v in versions]
    assert len(set(versions)) == 2  # the two policies alternated


def test_agent__master_cannot_apply_reload__failed_reported_last_good_restored_serving(
    edge: Edge,
) -> None:
    agent = GatewayAgent(replace(edge.settings, reload_wait_s=3))
    agent.recover()
    _applied(edge, agent)
    good_text = edge.settings.config_path.read_text()
    serving_port = edge.gateway.listen_port
    with socket.socket() as taken:  # nginx -t passes; the master cannot bind the port
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        gateway_update(gateway=edge.gateway, actor=None, listen_port=taken.getsockname()[1])
        result = agent.cycle()
    assert result.outcome == "failed"
    assert "did not start workers with the new configuration" in result.detail
    assert edge.settings.config_path.read_text() == good_text
    last = edge.reports()[-1]
    assert (last.result, last.version) == ("failed", result.version)
    edge.gateway.listen_port = serving_port
    assert sum(edge.spread(4).values()) == 4  # still serving on the old port


def test_gatewayagent_command__once_from_environment__applies_reports_exit_0(
    edge: Edge, live_server: Any, tmp_path: Path
) -> None:
    s = edge.settings
    env = clean_env(
        tmp_path / "var",
        GATEWAY_AGENT_SERVER=live_server.url,
        GATEWAY_AGENT_GATEWAY="edge",
        GATEWAY_AGENT_TOKEN_FILE=str(s.token_file),
        GATEWAY_AGENT_CONFIG=str(s.config_path),
    )
    args = ["--nginx", s.nginx, "--nginx-conf", str(s.nginx_conf), "--prefix", str(s.prefix),
            "--error-log", str(s.error_log), "--pid-file", str(s.pid_file)]  # fmt: skip
    done = run_manage("gatewayagent", *args, "--once", env=env)
    assert done.returncode == 0, done.stderr
    version = selectors.gateway_config(gateway=edge.gateway).sha256
    assert text_version(s.config_path.read_text()) == version
    assert [(r.version, r.result) for r in edge.reports()] == [(version, "applied")]
    assert sum(edge.spread(4).values()) == 4

    # Another team's gateway: refused, exit 1 saying so, nothing touched.
    done = run_manage("gatewayagent", *args, "--once", "--gateway", "nope", env=env)
    assert done.returncode == 1
    assert "refused: 404" in done.stderr
    assert text_version(s.config_path.read_text()) == version
