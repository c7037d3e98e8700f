"""PostgreSQL restarted under a running web process (gunicorn).

A private PostgreSQL cluster (``initdb`` + ``pg_ctl`` in a temporary directory on a free
loopback port, run as the ``postgres`` user when the tests run as root) backs a gunicorn
server with the production database settings: persistent connections
(``DATABASE_CONN_MAX_AGE``) with health checks. The test:

1. restarts PostgreSQL between two requests: the web process's kept connection is dead,
   and the next request still answers 200 (the health check replaces it);
2. stops PostgreSQL: an API request answers 503 with a JSON body and ``Retry-After`` at
   once (no hang, no 500, no database error text), ``/readyz`` answers 503 JSON naming the
   database;
3. starts PostgreSQL again: the same web process answers 200, no restart needed.

The shared PostgreSQL on 5432 is never touched.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.servers import free_port, run_manage, spawn_python

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# Generous: a hang is what must not happen, and it would show as a timeout here.
REQUEST_TIMEOUT_S = 20


def _postgres_bin() -> Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdecimal() else 0,
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass
class PrivatePostgres:
    bin_dir: Path
    base: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            log = self.base / "postgres.log"
            raise AssertionError(
                f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n"
                + (log.read_text()[-3000:] if log.exists() else "")
            )

    def init(self) -> None:
        self._run("initdb", "-D", str(self.base / "data"), "-U", "postgres", "-A", "trust",
                  "-E", "UTF8", "--no-sync")  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off"
        )
        self._run("pg_ctl", "-D", str(self.base / "data"), "-l", str(self.base / "postgres.log"),
                  "-o", options, "-w", "-t", "60", "start")  # fmt: skip

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.base / "data"), "-m", "fast", "-w", "-t", "60", "stop")


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    bin_dir = _postgres_bin()
    if bin_dir is None or not (bin_dir / "pg_ctl").exists():
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not installed (Debian 'postgresql')"
        )
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running as root needs runuser to start PostgreSQL as another user")
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root needs a 'postgres' user to start PostgreSQL as")
    base = Path(tempfile.mkdtemp(prefix="cp-faults-pg-"))
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    pg = PrivatePostgres(bin_dir, base, free_port())
    pg.init()
    pg.start()
    try:
        yield pg
    finally:
        try:
            pg.stop()
        except AssertionError:
            pass  # already stopped
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class WebProcess:
    proc: subprocess.Popen[bytes]
    url: str
    token: str
    log: Path

    def get(self, path: str, *, auth: bool = True) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if auth else {}
        return requests.get(self.url + path, headers=headers, timeout=REQUEST_TIMEOUT_S)


@pytest.fixture
def web_on_private_postgres(private_postgres: PrivatePostgres) -> Iterator[WebProcess]:
    var_dir = Path(tempfile.mkdtemp(prefix="cp-faults-web-"))
    env = {
        **os.environ,
        "DATABASE_URL": private_postgres.url,
        "DATABASE_CONN_MAX_AGE": "600",  # keep the connection: the restart must not break it
        "CONTROLPLANE_VAR_DIR": str(var_dir),
        "CONTROLPLANE_ENV": "development",
        "LOG_FORMAT": "json",
    }
    env.pop("REDIS_URL", None)

    def manage(*args: str) -> str:
        done = run_manage(*args, env=env, timeout_s=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    manage("migrate", "--verbosity", "0")
    manage(
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model; "
        "get_user_model().objects.create_user('ops')",
    )
    token = manage("create_api_token", "--user", "ops", "--name", "faults").strip()
    port = free_port()
    log = var_dir / "gunicorn.log"
    proc = spawn_python(
        "-m",
        "gunicorn",
        "controlplane.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",  # one worker: every request goes through the same kept connection
        "--timeout",
        "60",
        env=env,
        log=log,
    )
    web = WebProcess(proc, f"http://127.0.0.1:{port}", token, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                # The first request loads the application: give it time.
                if requests.get(web.url + "/healthz", timeout=10).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "gunicorn did not answer /healthz"
            time.sleep(0.2)
        yield web
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        shutil.rmtree(var_dir, ignore_errors=True)


def test_postgres_restarted__api_answers_503_json_then_recovers_without_a_web_restart(
    private_postgres, web_on_private_postgres
):
    pg, web = private_postgres, web_on_private_postgres
    me = web.get("/api/v1/me/")
    assert me.status_code == 200, me.text

    # A restart between two requests kills the connection the web process kept.
    pg.stop()
    pg.start()
    after_restart = web.get("/api/v1/me/")
    assert after_restart.status_code == 200, after_restart.text

    # Down: every request fails at once with a 503 JSON answer.
    pg.stop()
    for path in ("/api/v1/me/", "/api/v1/deployments/"):
        down = web.get(path)
        assert down.status_code == 503, (path, down.status_code, down.text[:500])
        assert down.headers["Content-Type"].startswith("application/json")
        assert down.json() == {"detail": "The database is unavailable; try again shortly."}
        assert down.headers["Retry-After"] == "5"
    ready = web.get("/readyz", auth=False)
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "not ready"
    assert body["checks"]["database"]["ok"] is False
    assert web.proc.poll() is None

    # Back: the same web process answers, no restart.
    pg.start()
    back = web.get("/api/v1/me/")
    assert back.status_code == 200, back.text
    assert back.json() == me.json()
    ready = web.get("/readyz", auth=False)
    assert ready.json()["checks"]["database"]["ok"] is True
    assert web.proc.poll() is None
    assert "api-database-unavailable" in web.log.read_text(errors="replace")
