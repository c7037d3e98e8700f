"""The log entry table, with the statements of the database the migration runs on.

PostgreSQL: ``logs_entry`` is partitioned by range of ``ts`` (nanoseconds); the store
creates one partition per UTC day ahead of time (``SqlLogStore.prepare``), and the DEFAULT
partition takes any row of a day that has none yet, so a write never fails for want of a
partition. The unique index on (team, stream, ts, md5(line)) makes a retried batch store
nothing twice and serves stream + time lookups (its first three columns). Substring search
is served by a trigram GIN index on the line of each partition: the default partition's is
created here, a day's partition gets its own once the day is over (``prepare`` builds it),
since keeping a trigram index up to date row by row divides the ingest rate by about six.
``pg_trgm`` is a trusted extension (PostgreSQL 13+): the database owner may create it; on an
older server a superuser must create it first.

SQLite: a plain table with a unique index on (team, stream, ts, line).
"""

from django.db import migrations

POSTGRESQL = (
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    """
    CREATE TABLE logs_entry (
        team_id bigint NOT NULL,
        stream_id bigint NOT NULL,
        ts bigint NOT NULL,
        line text COLLATE "C" NOT NULL,
        metadata text NOT NULL DEFAULT '',
        severity text NOT NULL DEFAULT '',
        trace_id text NOT NULL DEFAULT '',
        span_id text NOT NULL DEFAULT ''
    ) PARTITION BY RANGE (ts)
    """,
    "CREATE TABLE logs_entry_default PARTITION OF logs_entry DEFAULT",
    """
    CREATE UNIQUE INDEX logs_entry_unique
        ON logs_entry (team_id, stream_id, ts, (md5(line)::uuid))
    """,
    """
    CREATE INDEX logs_entry_default_line_trgm
        ON logs_entry_default USING gin (line gin_trgm_ops)
    """,
)

SQLITE = (
    """
    CREATE TABLE logs_entry (
        team_id integer NOT NULL,
        stream_id integer NOT NULL,
        ts integer NOT NULL,
        line text NOT NULL,
        metadata text NOT NULL DEFAULT '',
        severity text NOT NULL DEFAULT '',
        trace_id text NOT NULL DEFAULT '',
        span_id text NOT NULL DEFAULT ''
    )
    """,
    "CREATE UNIQUE INDEX logs_entry_unique ON logs_entry (team_id, stream_id, ts, line)",
)


def create_entries(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor not in ("postgresql", "sqlite"):
        raise RuntimeError(f"the log entry table has no layout for {vendor}")
    for statement in POSTGRESQL if vendor == "postgresql" else SQLITE:
        schema_editor.execute(statement)


def drop_entries(apps, schema_editor):
    # On PostgreSQL this drops every partition with the parent.
    schema_editor.execute("DROP TABLE IF EXISTS logs_entry")


class Migration(migrations.Migration):
    dependencies = [("logs", "0001_initial")]

    operations = [migrations.RunPython(create_entries, drop_entries)]
