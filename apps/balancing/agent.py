"""The gateway agent: keeps one nginx host's balancing configuration in step with the
control plane, on the gateway host itself (``manage.py gatewayagent``).

Every ``interval_s`` it asks ``GET /api/v1/balancing/gateways/<name>/config`` with
``If-None-Match`` of the version it holds. A 304 changes nothing. A 200 is applied:

1. the text is written to a temporary file next to the configuration and fsynced; the
   current file is kept as ``<config>.last-good``; the new one is renamed into place (a
   rename within one directory is atomic: nginx never reads half a file);
2. ``nginx -t`` checks the main configuration that includes it. If nginx refuses it, the
   last good file is renamed back and the agent reports ``invalid`` with nginx's message;
3. nginx is reloaded (``nginx -s reload`` with the same ``-p``/``-c``, or the command
   given): its workers finish the requests they hold and new ones take the new
   configuration. With the master's pid file the agent then waits until that happened (a
   new worker runs, every old one is shutting down), so ``applied`` means new connections
   get the new configuration; a master that could not apply it (a port it cannot bind)
   keeps its old workers and the wait fails. If the reload fails, the last good file is
   put back and the agent reports ``failed``; the same version is tried again at the next
   poll.

A refused or failed version is not fetched again while the server still serves it (the
ETag stays that version's), so a bad configuration costs one ``nginx -t``, not one per
poll. A 503 (the control plane cannot render or check a configuration) and network errors
change nothing on the host: the agent logs them and polls again, backing off. Every
report is kept until the control plane accepted it (201), so a report made while the
control plane was unreachable still arrives. Nothing here uses Django's database: the
agent only speaks HTTP (``requests``) and runs nginx.

At start, a configuration file that fails ``nginx -t`` while a ``.last-good`` one exists
(the agent stopped between writing and checking) is replaced by the last good one.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
import structlog
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

__all__ = ["AgentSettings", "CycleResult", "GatewayAgent", "Report"]

logger = structlog.get_logger("controlplane.balancing.agent")

APPLIED, INVALID, FAILED = "applied", "invalid", "failed"
NGINX_TIMEOUT_S = 30.0
RELOAD_POLL_S = 0.05
MAX_PENDING_REPORTS = 100


@dataclass(frozen=True)
class AgentSettings:
    """Where the control plane is, which gateway this host is, and how to run its nginx."""

    server: str  # http(s)://host[:port] of the control plane
    gateway: str
    token_file: Path  # the team's gateway token (lcpg_...) or a member's API token
    config_path: Path  # the file the main nginx configuration includes
    nginx: str = "nginx"
    nginx_conf: Path | None = None  # -c: the main configuration, for nginx -t and reloads
    prefix: Path | None = None  # -p
    error_log: Path | None = None  # -e: where nginx logs before it reads its configuration
    reload_command: tuple[str, ...] = ()  # instead of nginx -s reload
    # The master's pid file: with it a reload counts once new workers took over.
    pid_file: Path | None = None
    reload_wait_s: float = 10.0
    interval_s: float = 5.0
    max_backoff_s: float = 60.0
    timeout_s: float = 10.0  # of each HTTP call
    attempts: int = 3  # HTTP attempts within one poll before backing off

    @property
    def gateway_url(self) -> str:
        return f"{self.server.rstrip('/')}/api/v1/balancing/gateways/{self.gateway}"

    @property
    def last_good_path(self) -> Path:
        return self.config_path.with_name(self.config_path.name + ".last-good")

    def nginx_args(self) -> list[str]:
        args = []
        if self.prefix is not None:
            args += ["-p", str(self.prefix)]
        if self.nginx_conf is not None:
            args += ["-c", str(self.nginx_conf)]
        if self.error_log is not None:
            args += ["-e", str(self.error_log)]
        return args


@dataclass(frozen=True)
class Report:
    version: str
    result: str
    applied_at: str
    error: str = ""

    def body(self) -> dict[str, str]:
        return {
            "version": self.version,
            "result": self.result,
            "applied_at": self.applied_at,
            "error": self.error,
        }


@dataclass(frozen=True)
class CycleResult:
    """What one poll did: ``unchanged``, ``applied``, ``invalid``, ``failed`` (a version
    fetched), or ``unavailable`` (503), ``refused`` (401/403/404 and other 4xx),
    ``unreachable`` (network errors, other 5xx), ``error`` (anything else)."""

    outcome: str
    version: str = ""
    detail: str = ""

    @property
    def healthy(self) -> bool:
        return self.outcome in ("unchanged", APPLIED)


class _Retryable(Exception):
    """A 5xx other than the control plane's own 503: a proxy or a restart in between."""


def _version(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes) -> None:
    """``path`` holds ``data`` or what it held before, never a mix: a temporary file in
    the same directory, fsynced, renamed over it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _utcnow() -> datetime:
    return datetime.now(UTC)


Runner = Callable[..., "subprocess.CompletedProcess[str]"]


@dataclass
class GatewayAgent:
    """The loop of one gateway host (see the module doc). ``clock``, ``sleep``,
    ``run_command`` (subprocess.run) and ``session`` are injectable for tests."""

    settings: AgentSettings
    session: requests.Session = field(default_factory=requests.Session)
    clock: Callable[[], datetime] = _utcnow
    sleep: Callable[[float], Any] = time.sleep
    run_command: Runner = subprocess.run
    etag: str | None = None  # the version last fetched (applied or refused)
    pending: deque[Report] = field(default_factory=lambda: deque(maxlen=MAX_PENDING_REPORTS))
    failures: int = 0  # consecutive unhealthy polls, for the backoff

    def __post_init__(self) -> None:
        self.log = logger.bind(gateway=self.settings.gateway)
        self._token = ""

    # ---------------------------------------------------------------- the loop

    def run(self, *, once: bool = False, stop: threading.Event | None = None) -> CycleResult:
        """Poll until ``stop`` is set (or once); never raises for the control plane's or
        nginx's failures. Returns the last poll's result."""
        self.recover()
        while True:
            result = self.cycle()
            if once or (stop is not None and stop.is_set()):
                return result
            self.sleep(self.delay_s())
            if stop is not None and stop.is_set():
                return result

    def delay_s(self) -> float:
        """The interval, doubled for each consecutive unhealthy poll up to the maximum."""
        base = self.settings.interval_s
        if self.failures == 0 and not self.pending:
            return base
        return min(self.settings.max_backoff_s, base * 2 ** max(self.failures, 1))

    def cycle(self) -> CycleResult:
        """One poll: send what is pending, fetch, apply what changed, report it."""
        try:
            self.flush_reports()
            result = self._poll()
            if result.outcome in (APPLIED, INVALID, FAILED):
                self.flush_reports()
        except Exception as exc:  # the loop must outlive anything one poll meets
            self.log.exception("gateway-agent-poll-failed")
            result = CycleResult("error", detail=f"{type(exc).__name__}: {exc}")
        self.failures = 0 if result.healthy else self.failures + 1
        return result

    # ---------------------------------------------------------------- HTTP

    def _headers(self) -> dict[str, str]:
        try:
            self._token = self.settings.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            # A token being rotated: keep the one read before.
            self.log.warning("gateway-agent-token-unreadable", error=str(exc))
        return {"Authorization": f"Bearer {self._token}"}

    def _request(
        self, method: str, url: str, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> requests.Response:
        def once() -> requests.Response:
            response = self.session.request(
                method,
                url,
                headers={**self._headers(), **(headers or {})},
                timeout=self.settings.timeout_s,
                **kwargs,
            )
            if response.status_code >= 500 and response.status_code != 503:
                raise _Retryable(f"{response.status_code}: {response.text[:200]}")
            return response

        retrying = Retrying(
            stop=stop_after_attempt(self.settings.attempts),
            wait=wait_exponential(multiplier=0.5, max=self.settings.max_backoff_s),
            retry=retry_if_exception_type((requests.RequestException, _Retryable)),
            sleep=self.sleep,
            reraise=True,
        )
        return retrying(once)  # reraise: the last attempt's own exception

    def _poll(self) -> CycleResult:
        headers = {"If-None-Match": f'"{self.etag}"'} if self.etag else {}
        try:
            response = self._request("GET", f"{self.settings.gateway_url}/config", headers=headers)
        except (requests.RequestException, _Retryable) as exc:
            self.log.warning("gateway-agent-server-unreachable", error=str(exc))
            return CycleResult("unreachable", detail=str(exc))
        if response.status_code == 304:
            self.log.debug("gateway-config-unchanged", version=self.etag)
            return CycleResult("unchanged", self.etag or "")
        if response.status_code == 503:
            detail = _error_detail(response)
            self.log.warning("gateway-config-unavailable", error=detail)
            return CycleResult("unavailable", detail=detail)
        if response.status_code != 200:
            detail = f"{response.status_code}: {_error_detail(response)}"
            self.log.error("gateway-agent-refused", status=response.status_code, error=detail)
            return CycleResult("refused", detail=detail)
        data = response.content
        version = _version(data)
        etag = response.headers.get("ETag", "").strip('"')
        if etag and etag != version:
            # Cut short on the way: applying it would be worse than waiting.
            self.log.warning("gateway-config-truncated", etag=etag, version=version)
            return CycleResult("unreachable", detail="the text does not match its ETag")
        report = self.apply(data, version)
        self.pending.append(report)
        if report.result != FAILED:
            # A refused version is not fetched again until the server serves another one;
            # a failed reload is tried again at the next poll.
            self.etag = version
        return CycleResult(report.result, version, report.error)

    def flush_reports(self) -> None:
        """Send the pending reports, oldest first; stop at the first that cannot be sent
        now (kept for the next poll). One the server refuses as malformed is dropped."""
        while self.pending:
            report = self.pending[0]
            try:
                response = self._request(
                    "POST", f"{self.settings.gateway_url}/report", json=report.body()
                )
            except (requests.RequestException, _Retryable) as exc:
                self.log.warning("gateway-report-unsent", version=report.version, error=str(exc))
                return
            if response.status_code in (200, 201):
                self.pending.popleft()
                self.log.info("gateway-report-sent", version=report.version, result=report.result)
            elif response.status_code == 400:
                self.pending.popleft()
                self.log.error(
                    "gateway-report-rejected",
                    version=report.version,
                    error=_error_detail(response),
                )
            else:
                self.log.warning(
                    "gateway-report-unsent",
                    version=report.version,
                    status=response.status_code,
                    error=_error_detail(response),
                )
                return

    # ---------------------------------------------------------------- nginx

    def _nginx(self, args: Sequence[str]) -> tuple[bool, str]:
        try:
            done = self.run_command(
                list(args), capture_output=True, text=True, timeout=NGINX_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, f"{' '.join(args)} could not run: {exc}"
        output = (done.stderr + done.stdout).strip()
        if done.returncode != 0:
            return False, output or f"{' '.join(args)} exited {done.returncode}"
        return True, output

    def nginx_test(self) -> tuple[bool, str]:
        return self._nginx([self.settings.nginx, "-t", "-q", *self.settings.nginx_args()])

    def nginx_reload(self) -> tuple[bool, str]:
        command = self.settings.reload_command or (
            self.settings.nginx,
            "-s",
            "reload",
            *self.settings.nginx_args(),
        )
        return self._nginx(command)

    def _master_pid(self) -> int | None:
        if self.settings.pid_file is None:
            return None
        try:
            return int(self.settings.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def reload_taken(self, master: int, before: set[int]) -> bool:
        """nginx took the new configuration: a worker started after the reload runs, and
        every worker from before is shutting down (it accepts no new connection; the
        requests it holds finish) or gone."""
        workers = nginx_workers(master)
        fresh = [pid for pid, title in workers.items() if pid not in before]
        still_accepting = [
            pid for pid, title in workers.items() if pid in before and SHUTTING_DOWN not in title
        ]
        return bool(fresh) and not still_accepting

    def reload(self) -> tuple[bool, str]:
        """Reload nginx; with a pid file, wait until its master replaced the workers.
        A master that cannot apply the configuration (a port it cannot bind) keeps its
        old workers, so the wait ends in a failure naming its error log."""
        master = self._master_pid()
        before = set(nginx_workers(master)) if master is not None else set()
        ok, message = self.nginx_reload()
        if not ok or master is None:
            return ok, message
        for _ in range(max(1, int(self.settings.reload_wait_s / RELOAD_POLL_S))):
            if self.reload_taken(master, before):
                return True, message
            self.sleep(RELOAD_POLL_S)
        where = f" (see {self.settings.error_log})" if self.settings.error_log else ""
        return False, (
            f"nginx (master {master}) did not start workers with the new configuration "
            f"within {self.settings.reload_wait_s:g}s{where}"
        )

    def _restore(self, previous: bytes | None) -> None:
        path = self.settings.config_path
        if previous is None:
            path.unlink(missing_ok=True)
        else:
            write_atomically(path, previous)

    def apply(self, data: bytes, version: str) -> Report:
        """Install ``data`` as the configuration if nginx takes it (see the module doc)."""
        path = self.settings.config_path
        applied_at = self.clock().isoformat()
        try:
            previous = path.read_bytes() if path.exists() else None
            if previous is not None:
                write_atomically(self.settings.last_good_path, previous)
            write_atomically(path, data)
        except OSError as exc:
            # Nothing was renamed into place: nginx's file is the one it had.
            message = f"cannot write {path}: {exc}"
            self.log.error("gateway-config-write-failed", version=version, error=message)
            return Report(version, FAILED, applied_at, message)
        ok, message = self.nginx_test()
        if not ok:
            self._restore(previous)
            self.log.error("gateway-config-invalid", version=version, error=message)
            return Report(version, INVALID, applied_at, message)
        ok, message = self.reload()
        if not ok:
            self._restore(previous)
            self.log.error("gateway-config-reload-failed", version=version, error=message)
            return Report(version, FAILED, applied_at, message)
        self.log.info("gateway-config-applied", version=version)
        return Report(version, APPLIED, applied_at)

    def recover(self) -> None:
        """At start: put the last good file back if the current one fails ``nginx -t``;
        the version held is then the file's."""
        path, last_good = self.settings.config_path, self.settings.last_good_path
        try:
            if path.exists() and last_good.exists():
                ok, message = self.nginx_test()
                if not ok:
                    self.log.warning("gateway-config-recovered", error=message)
                    write_atomically(path, last_good.read_bytes())
            if self.etag is None and path.exists():
                self.etag = _version(path.read_bytes())
        except OSError as exc:
            self.log.error("gateway-config-unreadable", error=str(exc))


SHUTTING_DOWN = "shutting down"


def nginx_workers(master: int) -> dict[int, str]:
    """The worker processes of nginx master ``master`` with their titles ("nginx: worker
    process", "... is shutting down" once told to quit), from Linux's /proc."""
    workers = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            # pid (comm) state ppid ...: comm may hold spaces and parentheses.
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid != master:
                continue
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        if "worker process" in title:
            workers[int(entry.name)] = title.strip()
    return workers


def _error_detail(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(body, dict):
        detail = str(body.get("detail") or "")
        errors = body.get("errors")
        if isinstance(errors, list):
            detail = "; ".join([detail, *map(str, errors)]) if detail else "; ".join(errors)
        elif isinstance(errors, dict):
            detail = f"{detail} {errors}".strip()
        return detail[:2000]
    return str(body)[:500]
