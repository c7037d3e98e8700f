"""The gateway agent against a control plane of the test's own (an HTTP server answering
the config and report calls) and the real ``nginx -t``: what it installs, keeps, restores
and reports, and that failures on either side never leave a configuration nginx refuses."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from django.core.management import CommandError, call_command

from apps.balancing.agent import AgentSettings, GatewayAgent, Report, write_atomically
from apps.balancing.render import main_config
from tests.integration.balancing.nginx import RunningNginx, nginx  # noqa: F401 - fixture
from tests.servers import Answer, RecordingServer, Request, free_port

GOOD = "upstream cp_chat {\n    server 127.0.0.1:9;\n}\n"
BETTER = "upstream cp_chat {\n    server 127.0.0.1:10;\n}\n"
BROKEN = "upstream cp_chat {\n    server;\n}\n"  # nginx -t: invalid number of arguments
AT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class ControlPlane:
    """Serves ``text`` (or ``config_status``) for gateway "edge" with its ETag and 304;
    answers reports with the next of ``report_statuses`` (then 201)."""

    text: str = GOOD
    config_status: int = 200
    report_statuses: list[int] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)

    def respond(self, request: Request) -> Answer:
        if request.method == "GET" and request.path.endswith("/gateways/edge/config"):
            if self.config_status != 200:
                body = {"detail": "cannot render", "errors": ["members: unreachable"]}
                return self.config_status, {}, json.dumps(body).encode()
            etag = f'"{sha(self.text)}"'
            if request.headers.get("If-None-Match") == etag:
                return 304, {"ETag": etag}, b""
            return 200, {"ETag": etag, "Content-Type": "text/plain"}, self.text.encode()
        if request.method == "POST" and request.path.endswith("/gateways/edge/report"):
            status = self.report_statuses.pop(0) if self.report_statuses else 201
            if status == 201:
                self.reports.append(json.loads(request.body))
            return status, {}, b"{}"
        return 404, {}, b'{"detail": "Not found."}'


@dataclass
class Host:
    """A gateway host: its nginx main configuration including ``config``."""

    settings: AgentSettings
    server: RecordingServer
    plane: ControlPlane
    sleeps: list[float]

    @property
    def config(self) -> Path:
        return self.settings.config_path

    def agent(self, **changes: Any) -> GatewayAgent:
        settings = replace(self.settings, **changes)
        return GatewayAgent(settings, clock=lambda: AT, sleep=self.sleeps.append)


@pytest.fixture
def host(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Host]:
    running: RunningNginx = request.getfixturevalue("nginx")  # skips without nginx
    binary, prefix = running.binary, running.prefix
    config = prefix / "balancing.conf"
    (prefix / "nginx.conf").write_text(main_config(prefix=prefix, include=config))
    token = tmp_path / "token"
    token.write_text("lcpg_secret\n")
    plane = ControlPlane()
    server = RecordingServer(plane.respond)
    settings = AgentSettings(
        server=server.url,
        gateway="edge",
        token_file=token,
        config_path=config,
        nginx=binary,
        nginx_conf=prefix / "nginx.conf",
        prefix=prefix,
        error_log=prefix / "error.log",
        reload_command=("true",),
        interval_s=5,
        max_backoff_s=60,
    )
    try:
        yield Host(settings, server, plane, [])
    finally:
        server.stop()


def test_cycle__new_config__installed_previous_kept_reported_applied_then_304(host: Host) -> None:
    host.config.write_text(GOOD)
    host.plane.text = BETTER
    agent = host.agent()
    agent.recover()
    assert agent.cycle().outcome == "applied"
    assert host.config.read_text() == BETTER
    assert host.settings.last_good_path.read_text() == GOOD
    assert host.plane.reports == [
        {"version": sha(BETTER), "result": "applied", "applied_at": AT.isoformat(), "error": ""}
    ]
    assert agent.cycle().outcome == "unchanged"
    config_calls = [r for r in host.server.requests if r.method == "GET"]
    assert config_calls[0].headers["If-None-Match"] == f'"{sha(GOOD)}"'
    assert config_calls[-1].headers["If-None-Match"] == f'"{sha(BETTER)}"'
    assert config_calls[-1].headers["Authorization"] == "Bearer lcpg_secret"
    assert len(host.plane.reports) == 1


def test_recover__file_unchanged_on_server__no_fetch_of_the_text(host: Host) -> None:
    host.config.write_text(GOOD)
    agent = host.agent()
    agent.recover()
    result = agent.cycle()
    assert (result.outcome, result.version) == ("unchanged", sha(GOOD))
    assert host.plane.reports == []


def test_cycle__nginx_refuses_text__last_good_restored_reported_invalid_not_refetched(
    host: Host,
) -> None:
    host.config.write_text(GOOD)
    host.plane.text = BROKEN
    agent = host.agent(reload_command=("sh", "-c", "echo reloaded >> " + str(host.config) + ".r"))
    agent.recover()
    result = agent.cycle()
    assert result.outcome == "invalid"
    assert host.config.read_text() == GOOD
    (report,) = host.plane.reports
    assert (report["version"], report["result"]) == (sha(BROKEN), "invalid")
    assert "invalid number of arguments" in report["error"]
    assert not Path(str(host.config) + ".r").exists()  # never reloaded
    # Not applied again while the server serves the same text.
    assert agent.cycle().outcome == "unchanged"
    assert len(host.plane.reports) == 1
    ok, _ = agent.nginx_test()
    assert ok


def test_cycle__reload_fails__restored_reported_failed_and_tried_again(host: Host) -> None:
    host.config.write_text(GOOD)
    host.plane.text = BETTER
    agent = host.agent(reload_command=("sh", "-c", "echo no master process >&2; exit 1"))
    agent.recover()
    assert agent.cycle().outcome == "failed"
    assert host.config.read_text() == GOOD
    assert host.plane.reports[0]["result"] == "failed"
    assert "no master process" in host.plane.reports[0]["error"]
    assert agent.cycle().outcome == "failed"  # the same version, fetched again
    assert len(host.plane.reports) == 2


def test_cycle__first_config_refused__no_file_left(host: Host) -> None:
    host.plane.text = BROKEN
    agent = host.agent()
    agent.recover()
    assert agent.cycle().outcome == "invalid"
    assert not host.config.exists()


def test_cycle__server_unreachable__nothing_touched_no_exception_backoff_grows(
    host: Host,
) -> None:
    host.config.write_text(GOOD)
    agent = host.agent(server=f"http://127.0.0.1:{free_port()}", attempts=2)
    agent.recover()
    delays = []
    for _ in range(4):
        assert agent.cycle().outcome == "unreachable"
        delays.append(agent.delay_s())
    assert host.config.read_text() == GOOD
    assert delays == [10, 20, 40, 60]
    assert len(host.sleeps) == 4  # one retry within each poll
    host.plane.text = GOOD
    agent.settings = host.settings
    assert agent.cycle().outcome == "unchanged"
    assert agent.delay_s() == 5


def test_cycle__server_503__config_kept_logged_as_unavailable(host: Host) -> None:
    host.config.write_text(GOOD)
    host.plane.config_status = 503
    agent = host.agent()
    agent.recover()
    result = agent.cycle()
    assert result.outcome == "unavailable"
    assert "members: unreachable" in result.detail
    assert host.config.read_text() == GOOD
    assert not host.settings.last_good_path.exists()


def test_reports__refused_until_the_server_is_back__kept_and_sent_once_accepted(
    host: Host,
) -> None:
    host.config.write_text(GOOD)
    host.plane.text = BETTER
    # Every attempt of the first poll fails (3 of them), the next poll one 503, then 201.
    host.plane.report_statuses = [502] * 3 + [503]
    agent = host.agent()
    agent.recover()
    assert agent.cycle().outcome == "applied"
    assert host.plane.reports == []
    assert len(agent.pending) == 1
    assert agent.delay_s() > host.settings.interval_s
    assert agent.cycle().outcome == "unchanged"
    assert host.plane.reports == []
    assert len(agent.pending) == 1
    agent.cycle()
    assert [r["version"] for r in host.plane.reports] == [sha(BETTER)]
    assert not agent.pending


def test_reports__malformed_for_the_server__dropped_not_retried_forever(host: Host) -> None:
    host.config.write_text(GOOD)
    host.plane.text = BETTER
    host.plane.report_statuses = [400]
    agent = host.agent()
    agent.recover()
    agent.cycle()
    assert not agent.pending


def test_recover__broken_file_with_last_good__last_good_put_back(host: Host) -> None:
    host.config.write_text(BROKEN)
    host.settings.last_good_path.write_text(GOOD)
    agent = host.agent()
    agent.recover()
    assert host.config.read_text() == GOOD
    assert agent.etag == sha(GOOD)


def test_run__once__one_poll_no_sleep(host: Host) -> None:
    result = host.agent().run(once=True)
    assert result.outcome == "applied"
    assert host.sleeps == []


def test_write_atomically__existing_file__replaced_mode_kept_no_temp_left(tmp_path: Path) -> None:
    path = tmp_path / "a.conf"
    path.write_text("old")
    path.chmod(0o640)
    write_atomically(path, b"new")
    assert path.read_text() == "new"
    assert path.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["a.conf"]


def test_command__missing_options__error_naming_them_and_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("SERVER", "GATEWAY", "TOKEN_FILE", "CONFIG"):
        monkeypatch.delenv(f"GATEWAY_AGENT_{name}", raising=False)
    with pytest.raises(CommandError, match=r"missing --server, --gateway, --token-file, --config"):
        call_command("gatewayagent", "--once")
    with pytest.raises(CommandError, match="http:// or https://"):
        call_command("gatewayagent", "--once", "--server", "ftp://x", "--gateway", "edge",
                     "--token-file", str(tmp_path), "--config", str(tmp_path / "c"))  # fmt: skip


def test_command__once_against_the_control_plane__applies_then_exit_1_when_refused(
    host: Host,
) -> None:
    s = host.settings
    args = ["--server", s.server, "--gateway", "edge", "--token-file", str(s.token_file),
            "--config", str(s.config_path), "--nginx", s.nginx, "--nginx-conf",
            str(s.nginx_conf), "--prefix", str(s.prefix), "--error-log", str(s.error_log),
            "--reload-command", "true", "--pid-file", str(s.prefix / "none.pid")]  # fmt: skip
    call_command("gatewayagent", *args, "--once")
    assert host.config.read_text() == GOOD
    assert [r["result"] for r in host.plane.reports] == ["applied"]
    host.plane.config_status = 503
    with pytest.raises(CommandError, match="unavailable: cannot render"):
        call_command("gatewayagent", *args, "--once")


def test_cycle__config_cannot_be_written__failed_reported_loop_goes_on(host: Host) -> None:
    agent = host.agent(config_path=host.config.parent / "missing-dir" / "balancing.conf")
    result = agent.cycle()
    assert result.outcome == "failed"
    assert "cannot write" in result.detail
    assert host.plane.reports[0]["result"] == "failed"
    assert agent.cycle().outcome == "failed"  # tried again, no exception


def test_run__poll_meets_an_unexpected_error__logged_backs_off_keeps_polling(host: Host) -> None:
    class Broken(requests.Session):
        def request(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            raise RuntimeError("boom")

    stop = threading.Event()
    agent = host.agent()
    agent.session = Broken()
    agent.pending.append(Report(sha(GOOD), "applied", AT.isoformat()))
    polls: list[float] = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        if len(polls) == 3:
            stop.set()

    agent.sleep = sleep
    result = agent.run(stop=stop)
    assert (result.outcome, result.detail) == ("error", "RuntimeError: boom")
    assert polls == [10, 20, 40]
    assert len(agent.pending) == 1  # kept for when sending works again
