"""PostgreSQL administration shared by the benchmarks that prepare a database of their own."""

from __future__ import annotations

import os


def admin_execute(admin_url: str, *statements: str) -> None:
    """Run statements outside a transaction (CREATE/DROP DATABASE need that)."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
        for statement in statements:
            conn.execute(statement)


def unreachable_reason(admin_url: str) -> str | None:
    """None when PostgreSQL answers, else why not (one line)."""
    try:
        admin_execute(admin_url, "SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means "skip"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f"{type(exc).__name__}: {first}"
    return None


def admin_url_for(explicit: str | None) -> str:
    """Where to create and drop databases: ``explicit``, else the server of a PostgreSQL
    ``DATABASE_URL``, else the local default."""
    from urllib.parse import urlsplit, urlunsplit

    if explicit:
        return explicit
    env = os.environ.get("DATABASE_URL", "")
    if env.startswith(("postgres://", "postgresql://", "pgsql://")):
        parts = urlsplit(env)
        return urlunsplit(("postgresql", parts.netloc, "/postgres", "", ""))
    return "postgresql://postgres@127.0.0.1:5432/postgres"


def database_url(admin_url: str, name: str) -> str:
    """The URL of database ``name`` on the server of ``admin_url``."""
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(("postgres", urlsplit(admin_url).netloc, f"/{name}", "", ""))


def database_recreate(admin_url: str, name: str) -> None:
    """An empty database ``name``, whatever was there before."""
    admin_execute(
        admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'
    )


def database_drop(admin_url: str, name: str) -> None:
    admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fresh_database_or_skip(explicit_admin_url: str | None, name: str) -> tuple[str, str] | None:
    """An empty database ``name`` on the server of ``explicit_admin_url`` (or as
    :func:`admin_url_for` chooses): (admin URL, database URL); or None after printing
    ``SKIP`` with the reason when PostgreSQL does not answer."""
    admin_url = admin_url_for(explicit_admin_url)
    why = unreachable_reason(admin_url)
    if why is not None:
        print(f"SKIP: PostgreSQL unreachable ({why})")
        return None
    database_recreate(admin_url, name)
    return admin_url, database_url(admin_url, name)
