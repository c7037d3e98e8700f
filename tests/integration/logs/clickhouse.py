"""A private clickhouse-server for the log store tests: Debian's package, started once per
test session on free loopback ports with a generated configuration and all of its state
(data, tmp, logs) under a temporary directory, and killed at the end.

Tests use the ``clickhouse_url`` fixture: a ``clickhouse://`` URL of an empty database of
their own (``clickhouse_server`` is the server). tests/integration/conftest.py imports both.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.servers import binary_or_skip, free_port, wait_for

USER = "logs"
PASSWORD = "logs-test-password"

_CONFIG = """<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>{root}/log/server.log</log>
        <errorlog>{root}/log/server.err.log</errorlog>
        <size>10M</size>
        <count>1</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>{tcp_port}</tcp_port>
    <http_port>{http_port}</http_port>
    <interserver_http_port>{interserver_port}</interserver_http_port>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <path>{root}/data/</path>
    <tmp_path>{root}/tmp/</tmp_path>
    <user_files_path>{root}/user_files/</user_files_path>
    <format_schema_path>{root}/format_schemas/</format_schema_path>
    <users_config>{root}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <max_connections>64</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>32</max_concurrent_queries>
    <mark_cache_size>67108864</mark_cache_size>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
    <mlock_executable>false</mlock_executable>
</yandex>
"""

_USERS = """<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>2000000000</max_memory_usage>
            <max_threads>2</max_threads>
        </default>
    </profiles>
    <users>
        <{user}>
            <password>{password}</password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </{user}>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
"""


class ServerExited(AssertionError):
    pass


@dataclass
class PrivateClickHouse:
    """A clickhouse-server of the session's own (see the module docstring)."""

    binary: str
    root: Path
    tcp_port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    def url(self, database: str = "default") -> str:
        return f"clickhouse://{USER}:{PASSWORD}@127.0.0.1:{self.tcp_port}/{database}"

    def start(self, attempts: int = 3) -> None:
        """Start it and wait until it answers. A free port can be taken by someone else
        before the server binds it; then it exits, and it is started again on others."""
        for sub in ("data", "tmp", "log", "user_files", "format_schemas"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        for attempt in range(attempts):
            self._spawn()
            try:
                wait_for(self._answers, 120, f"clickhouse-server on port {self.tcp_port}")
                return
            except ServerExited:
                if attempt == attempts - 1:
                    raise

    def _spawn(self) -> None:
        ports: set[int] = set()
        while len(ports) < 3:
            ports.add(free_port())
        self.tcp_port, http_port, interserver_port = sorted(ports)
        config = self.root / "config.xml"
        config.write_text(
            _CONFIG.format(
                root=self.root,
                tcp_port=self.tcp_port,
                http_port=http_port,
                interserver_port=interserver_port,
            )
        )
        (self.root / "users.xml").write_text(_USERS.format(user=USER, password=PASSWORD))
        with open(self.root / "log" / "stdout.log", "wb") as out:
            self.proc = subprocess.Popen(
                [self.binary, f"--config-file={config}"],
                cwd=self.root,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def _answers(self) -> bool:
        from clickhouse_driver import Client
        from clickhouse_driver.errors import Error, NetworkError

        assert self.proc is not None
        if self.proc.poll() is not None:
            logs = [self.root / "log" / name for name in ("stdout.log", "server.err.log")]
            tail = "".join(path.read_text(errors="replace") for path in logs if path.exists())
            raise ServerExited(
                f"clickhouse-server exited ({self.proc.returncode}) in {self.root}: {tail[-2000:]}"
            )
        try:  # listening yet? (the driver logs a warning for every refused connection)
            socket.create_connection(("127.0.0.1", self.tcp_port), timeout=1).close()
        except OSError:
            return False
        client = Client(
            host="127.0.0.1", port=self.tcp_port, user=USER, password=PASSWORD, connect_timeout=1
        )
        try:
            return client.execute("SELECT 1") == [(1,)]
        except (NetworkError, EOFError, OSError, Error):
            return False
        finally:
            client.disconnect()

    def execute(
        self, sql: str, params: dict[str, object] | None = None, *, database: str = "default"
    ) -> list[Any]:
        from clickhouse_driver import Client

        client = Client(
            host="127.0.0.1", port=self.tcp_port, user=USER, password=PASSWORD, database=database
        )
        try:
            result = client.execute(sql, params)
            return result if isinstance(result, list) else []
        finally:
            client.disconnect()

    def fresh_database(self) -> str:
        """A new empty database's name."""
        name = f"logs_{uuid.uuid4().hex[:12]}"
        self.execute(f"CREATE DATABASE {name}")
        return name

    def stop(self) -> None:
        """SIGKILL: its data is thrown away, and a graceful shutdown takes seconds."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


def clickhouse_binary() -> str | None:
    """Debian installs it in /usr/sbin, which is not on every user's PATH."""
    return shutil.which("clickhouse-server") or shutil.which(
        "clickhouse-server", path="/usr/sbin:/usr/bin"
    )


@pytest.fixture(scope="session")
def clickhouse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateClickHouse]:
    """One private clickhouse-server for the whole session."""
    pytest.importorskip("clickhouse_driver")
    binary = binary_or_skip(clickhouse_binary(), "clickhouse-server", "clickhouse-server")
    server = PrivateClickHouse(binary, tmp_path_factory.mktemp("clickhouse"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def clickhouse_url(clickhouse_server: PrivateClickHouse) -> str:
    """A ``clickhouse://`` URL of an empty database of this test's own."""
    return clickhouse_server.url(clickhouse_server.fresh_database())
