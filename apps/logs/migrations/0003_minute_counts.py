"""Per-minute line and byte counts of each stream (PostgreSQL only), kept by the same
statement that stores the lines, so a count over a day reads one row per stream and minute
instead of every line.

A row counts the lines of one stream with ``minute * 60 s <= ts < (minute + 1) * 60 s``
(minutes and day partitions share their boundaries), and apart the lines at exactly
``minute * 60 s`` (``edge_lines``): LogQL's windows are ``(t - range, t]``, and with the
edges a window of whole minutes is exact. Existing lines are counted here once.
"""

from django.db import migrations

MINUTE_NS = 60 * 10**9

POSTGRESQL = (
    """
    CREATE TABLE logs_entry_minute (
        team_id bigint NOT NULL,
        stream_id bigint NOT NULL,
        minute bigint NOT NULL,
        lines bigint NOT NULL,
        bytes bigint NOT NULL,
        edge_lines bigint NOT NULL,
        edge_bytes bigint NOT NULL,
        PRIMARY KEY (team_id, stream_id, minute)
    )
    """,
    f"""
    INSERT INTO logs_entry_minute
    SELECT team_id, stream_id,
           (ts - mod(mod(ts, {MINUTE_NS}) + {MINUTE_NS}, {MINUTE_NS})) / {MINUTE_NS},
           count(*), sum(octet_length(line)),
           count(*) FILTER (WHERE mod(ts, {MINUTE_NS}) = 0),
           coalesce(sum(octet_length(line)) FILTER (WHERE mod(ts, {MINUTE_NS}) = 0), 0)
    FROM logs_entry GROUP BY 1, 2, 3
    """,
)


def create_counts(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in POSTGRESQL:
            schema_editor.execute(statement)


def drop_counts(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP TABLE IF EXISTS logs_entry_minute")


class Migration(migrations.Migration):
    dependencies = [("logs", "0002_entries")]

    operations = [migrations.RunPython(create_counts, drop_counts)]
