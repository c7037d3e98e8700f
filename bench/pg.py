"""PostgreSQL administration shared by the benchmarks that prepare a database of their own."""

from __future__ import annotations


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
