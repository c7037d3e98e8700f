"""SQLite test runs use a file with the run command's settings, not Django's shared-cache
in-memory database (where the busy timeout does not apply to table locks and the live
server shares one connection among its request threads)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.servers import clean_env, run_manage

_PRINT = (
    "import json; from django.conf import settings; "
    "print(json.dumps(settings.DATABASES['default'], default=str))"
)


def _database(tmp_path: Path, **env: str) -> dict:
    done = run_manage("shell", "-c", _PRINT, env=clean_env(tmp_path / "var", **env))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("url", [None, "sqlite:///{tmp}/cp.sqlite3"])
def test_sqlite__test_database__a_file_with_wal_and_busy_timeout(tmp_path, url):
    env = {"DATABASE_URL": url.format(tmp=tmp_path)} if url else {}
    db = _database(tmp_path, **env)
    name = Path(db["NAME"])
    assert db["TEST"]["NAME"] == str(name.with_name(f"test_{name.name}"))
    assert db["OPTIONS"]["timeout"] == 30
    assert db["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in db["OPTIONS"]["init_command"]


def test_postgres__connect_timeout__from_the_environment(tmp_path):
    db = _database(
        tmp_path,
        DATABASE_URL="postgres://u@127.0.0.1:5432/cp",
        DATABASE_CONNECT_TIMEOUT_S="3",
    )
    assert db["OPTIONS"]["connect_timeout"] == 3
    assert db["CONN_HEALTH_CHECKS"] is True
