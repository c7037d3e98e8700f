"""Real servers for tests, on free loopback ports: a private redis-server, and polling until
something has happened.

``redis_cache`` puts Django's cache (where the locks live) on a redis-server of the test's
own, so that a test about locking runs against the backend production uses; without
redis-server installed it skips, which CI turns into a failure (tests/conftest.py).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REDIS_CACHE = "django.core.cache.backends.redis.RedisCache"


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
