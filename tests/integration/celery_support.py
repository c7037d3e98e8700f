"""A real Celery worker's surroundings for integration tests: the broker and Django's cache
on Redis databases of their own, emptied before and after, and connection pools reset so
that one test's closed pool does not leak into the next; and ``celery worker`` processes
on the test database (PostgreSQL, or the SQLite test file)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import kombu.pools
import pytest
from django.db import connection

from controlplane.celery import app
from tests.servers import REDIS_CACHE, PrivateRedis, free_port, spawn_python

ROOT = Path(__file__).resolve().parents[2]

# Without redis-server installed, the shared Redis is used, on databases of their own (a
# developer's worker on db 0 cannot take these messages or hold these locks); two test
# runs at once on one machine would then share them.
BROKER_URL = "redis://127.0.0.1:6379/13"
CACHE_URL = "redis://127.0.0.1:6379/12"


def reset_pools() -> None:
    if app._pool is not None:
        app._pool.force_close_all()
    app._pool = None
    app.amqp._producer_pool = None
    # kombu keeps one pool per broker URL for the process: drop the closed ones too.
    kombu.pools.reset()
    # Remote control (ping) keeps the producer pool it first used: forget it too.
    del app.control.mailbox.producer_pool


@dataclass
class CeleryRedis:
    """Where the broker and the cache of a Celery test live."""

    broker_url: str
    cache_url: str
    broker: Any  # a redis client on the broker's database
    server: PrivateRedis | None  # None: the shared Redis on 6379


@pytest.fixture
def celery_redis(settings: Any, tmp_path: Path) -> Iterator[CeleryRedis]:
    """Celery's broker and Django's cache on Redis, empty: a private redis-server on a free
    port (db 0 and 1) when it is installed, so that no other test run on the machine takes
    these messages or holds these locks; otherwise the shared one (db 13 and 12)."""
    redis = pytest.importorskip("redis")
    binary = shutil.which("redis-server")
    server = None
    if binary is not None:
        workdir = tmp_path / "redis"
        workdir.mkdir()
        server = PrivateRedis(binary, free_port(), workdir)
        server.start()
        broker_url, cache_url = server.url(0), server.url(1)
    else:
        broker_url, cache_url = BROKER_URL, CACHE_URL
    broker = redis.Redis.from_url(broker_url, socket_connect_timeout=2)
    locks = redis.Redis.from_url(cache_url, socket_connect_timeout=2)
    try:
        broker.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.skip(f"Redis is not reachable at {broker_url} ({exc}); start redis-server")
    broker.flushdb()
    locks.flushdb()
    settings.CACHES = {"default": {"BACKEND": REDIS_CACHE, "LOCATION": cache_url}}
    saved = {key: app.conf[key] for key in ("broker_url", "broker_transport_options")}
    # An embedded worker sets up Celery logging, which lowers the root logger's level.
    root_level = logging.getLogger().level
    reset_pools()
    app.conf.update(broker_url=broker_url, broker_transport_options={})
    try:
        yield CeleryRedis(broker_url, cache_url, broker, server)
    finally:
        reset_pools()
        app.conf.update(saved)
        logging.getLogger().setLevel(root_level)
        if server is None:
            broker.flushdb()
            locks.flushdb()
        broker.close()
        locks.close()
        if server is not None:
            server.kill()


@pytest.fixture
def private_redis(celery_redis: CeleryRedis) -> PrivateRedis:
    """The private redis-server behind ``celery_redis``, for tests that kill and restart
    it (the shared Redis on 6379 is never restarted)."""
    if celery_redis.server is None:
        pytest.skip("redis-server not installed (Debian package 'redis-server')")
    return celery_redis.server


@dataclass
class WorkerProcess:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def events(self) -> list[dict[str, Any]]:
        """The worker's structured log lines (JSON), oldest first."""
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    def received(self, task_name: str) -> int:
        return sum(
            1
            for e in self.events()
            if str(e.get("event", "")).startswith(f"Task {task_name}[")
            and str(e.get("event", "")).endswith(" received")
        )

    def count(self, event: str) -> int:
        return sum(1 for e in self.events() if e.get("event") == event)


def shared_database_url() -> str:
    """The test database (``test_<name>``, or the SQLite test file), for processes
    outside this one."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        if connection.is_in_memory_db():
            pytest.skip("worker processes need a shared database, not an in-memory one")
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    auth = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = db["HOST"] or "127.0.0.1"
    return f"postgres://{auth}@{host}:{db['PORT'] or 5432}/{quote(db['NAME'], safe='')}"


@pytest.fixture
def worker_processes(
    celery_redis: CeleryRedis, tmp_path: Path
) -> Iterator[Callable[..., list[WorkerProcess]]]:
    """Starts ``celery worker`` processes (solo pool, control queue) on the test database
    and the broker and cache of ``celery_redis``; waits until each answers a ping."""
    started: list[WorkerProcess] = []
    run = uuid.uuid4().hex[:6]

    def start(
        count: int,
        fleetsim_url: str,
        extra_env: Mapping[str, str] | None = None,
        *,
        queues: str = "control",
    ) -> list[WorkerProcess]:
        env = {
            **os.environ,
            "DATABASE_URL": shared_database_url(),
            "DATABASE_CONN_MAX_AGE": "0",
            # The cache; Celery's own variable wins for the broker.
            "REDIS_URL": celery_redis.cache_url,
            "CELERY_BROKER_URL": celery_redis.broker_url,
            "FLEETSIM_URL": fleetsim_url,
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            "CONTROLPLANE_ENV": "development",  # Celery's "received" lines are logged at INFO
            **(extra_env or {}),
        }
        env.pop("PROMETHEUS_URL", None)
        workers = []
        for i in range(len(started) + 1, len(started) + count + 1):
            name = f"w{i}-{run}@{socket.gethostname()}"
            log = tmp_path / f"worker-{i}.log"
            proc = spawn_python(
                "-m",
                "celery",
                "-A",
                "controlplane",
                "worker",
                "-Q",
                queues,
                "-P",
                "solo",
                "-n",
                name,
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-l",
                "INFO",
                env=env,
                log=log,
            )
            worker = WorkerProcess(name, proc, log)
            started.append(worker)
            workers.append(worker)
        pending = {w.name for w in workers}
        deadline = time.monotonic() + 60
        while pending:
            for w in workers:
                if w.proc.poll() is not None:
                    raise AssertionError(f"{w.name} exited:\n{w.log.read_text()[-3000:]}")
            assert time.monotonic() < deadline, f"no ping answer from {sorted(pending)}"
            for reply in app.control.ping(destination=sorted(pending), timeout=1.0):
                pending -= set(reply)
        return workers

    try:
        yield start
    finally:
        for w in started:
            if w.proc.poll() is None:
                w.proc.send_signal(signal.SIGTERM)  # warm shutdown: finish the current task
        for w in started:
            try:
                w.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait(timeout=10)
