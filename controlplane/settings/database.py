from __future__ import annotations

from pathlib import Path

import dj_database_url

from controlplane.env import env_int, env_str, env_url

from .base import VAR_DIR

# SQLite is the embedded default so that a newcomer needs no server; production sets
# DATABASE_URL (postgres://...). WAL and a busy timeout let web, worker and beat share
# the SQLite file without "database is locked" errors under light load.
_database_url = env_url("DATABASE_URL", None, schemes=("postgres", "postgresql", "pgsql", "sqlite"))
if _database_url:
    DATABASES = {
        "default": dj_database_url.parse(
            _database_url,
            conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
            conn_health_checks=True,
        )
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_str("SQLITE_PATH") or str(VAR_DIR / "controlplane.sqlite3"),
        }
    }
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # A database host that does not answer fails the request (503) instead of hanging it.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env_int("DATABASE_CONNECT_TIMEOUT_S", 5, minimum=1)
    )
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        **DATABASES["default"].get("OPTIONS", {}),
    }
    # Tests get a file next to the database, not Django's default shared-cache in-memory
    # database: there the busy timeout does not apply to table locks ("database table is
    # locked" as soon as a live server, a worker thread or a worker process writes too),
    # and the live server shares one connection among its request threads.
    _name = str(DATABASES["default"]["NAME"])
    if _name and _name != ":memory:" and not _name.startswith("file:"):
        _path = Path(_name)
        DATABASES["default"].setdefault("TEST", {})
        DATABASES["default"]["TEST"].setdefault("NAME", str(_path.with_name(f"test_{_path.name}")))
