"""Real servers for tests, on free loopback ports: a private redis-server, HTTP servers
answering from a handler class of the test's own, ``manage.py`` in a child process, and
polling until something has happened.

``redis_cache`` puts Django's cache (where the locks live) on a redis-server of the test's
own, so that a test about locking runs against the backend production uses; without
redis-server installed it skips, which CI turns into a failure (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REDIS_CACHE = "apps.core.cache.RedisCache"  # the product's backend
ROOT = Path(__file__).resolve().parents[1]
# What a child process may inherit without configuring the application.
_NEUTRAL_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "SYSTEMROOT", "TMPDIR")


def clean_env(var_dir: Path, **env: str) -> dict[str, str]:
    """An environment with nothing inherited that configures the app, plus ``env``."""
    base = {key: value for key, value in os.environ.items() if key in _NEUTRAL_ENV}
    base.update(CONTROLPLANE_VAR_DIR=str(var_dir), **env)
    return base


def spawn_python(*args: str, env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``python *args`` from the repository root, its output (and errors) written to ``log``."""
    with open(log, "wb") as handle:
        command = [sys.executable, *args]
        return subprocess.Popen(
            command, cwd=ROOT, env=dict(env), stdout=handle, stderr=subprocess.STDOUT
        )


def run_manage(
    *args: str, env: Mapping[str, str], timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    """``manage.py *args`` from the repository root with exactly ``env``, output as text."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def binary_or_skip(binary: str | None, name: str, package: str) -> str:
    """``binary`` (a found path), or skip the test naming the Debian package to install."""
    if binary is None:
        pytest.skip(f"{name} binary not installed (Debian package '{package}')")
    return binary


def wait_for(
    predicate: Callable[[], Any],
    timeout_s: float = 30.0,
    what: str = "",
    *,
    interval_s: float = 0.05,
) -> Any:
    """The first truthy result of ``predicate``, polled every ``interval_s``. The timeout
    only ends a run that would otherwise hang; it is not a claim about how fast things are."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout_s:g}s waiting for: {what or predicate}")
        time.sleep(interval_s)


@dataclass
class PrivateRedis:
    """A redis-server of the test's own on a free loopback port, without persistence (like
    the shared one), which the test may kill and start again."""

    binary: str
    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        import redis

        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir), "--logfile", "redis.log"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)
        try:
            wait_for(lambda: self._pings(client), 20, f"redis-server on port {self.port}")
        finally:
            client.close()

    def _pings(self, client: Any) -> bool:
        import redis

        assert self.proc is not None
        assert self.proc.poll() is None, "redis-server exited"
        try:
            return bool(client.ping())
        except redis.exceptions.ConnectionError:
            return False

    def kill(self) -> None:
        """Like a crash: SIGKILL, everything in memory is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def restart(self) -> None:
        self.kill()
        self.start()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def redis_cache(settings: Any, tmp_path: Path) -> Iterator[PrivateRedis]:
    """Django's cache on db 0 of a private redis-server, empty, for one test."""
    pytest.importorskip("redis")
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not installed (Debian package 'redis-server')")
    workdir = tmp_path / "redis"
    workdir.mkdir()
    server = PrivateRedis(binary, free_port(), workdir)
    server.start()
    settings.CACHES = {"default": {"BACKEND": REDIS_CACHE, "LOCATION": server.url(0)}}
    try:
        yield server
    finally:
        server.kill()


@contextmanager
def http_server(
    handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1", **state: Any
) -> Iterator[ThreadingHTTPServer]:
    """A threading HTTP server on a free port of ``host``, serving from a daemon thread until
    the block ends. ``state`` is set on the server: handlers read it as ``self.server.<name>``.
    Its base URL is ``base_url(server)``."""
    server = ThreadingHTTPServer((host, 0), handler)
    server.daemon_threads = True
    for name, value in state.items():
        setattr(server, name, value)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler of a test's own: logs nothing, answers JSON; ``server`` carries the
    state :func:`http_server` set on it."""

    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_json(self, status: int, payload: Any) -> None:
        """Answer ``payload``; a caller that is gone by then (killed, timed out) is no error."""
        body = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass


def base_url(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"


Answer = tuple[int, dict[str, str], bytes]  # status, headers, body


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # with the query string
    headers: dict[str, str]
    body: bytes


class RecordingServer:
    """An HTTP server on a free port of ``host`` that records every request (``requests``;
    ``hits``: their paths) and answers with ``respond(request)``, by default an empty 200.
    Started on construction; ``stop()`` ends it."""

    def __init__(
        self, respond: Callable[[Request], Answer] | None = None, *, host: str = "127.0.0.1"
    ) -> None:
        self.requests: list[Request] = []
        self.respond = respond or (lambda request: (200, {}, b""))
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(
                    self.command, self.path, dict(self.headers.items()), self.rfile.read(length)
                )
                outer.requests.append(request)
                status, headers, body = outer.respond(request)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = _QuietServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = base_url(self.server)
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    @property
    def hits(self) -> list[str]:
        return [request.path for request in self.requests]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out on purpose has hung up by the time a slow answer is
        # written: expected, not worth a traceback.
        pass


def run_coroutine(coro: Any) -> Any:
    """``asyncio.run(coro)`` in a thread of its own: the main thread may already have a
    running event loop (Playwright's sync API keeps one while a browser test's fixtures
    live), and asyncio.run refuses to start inside one."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-asyncio") as pool:
        return pool.submit(asyncio.run, coro).result()
