"""Log ingest rate and query latency over a large store, per backend.

``--mode ingest`` (and the default, ``all``, first): log lines pushed over HTTP to gunicorn
in batches of 1,000, against a raw bulk insert of the same rows; see
:mod:`bench.logs_ingest`.

``--mode query`` (and ``all``, second): loads N lines (default 5,000,000, ~200 bytes each)
from 100 deployments over 24 hours into the backend, through its own ``write`` in batches of
10,000, then times two queries through :mod:`apps.logs.query` (the code the query APIs run),
``--repeat`` times each:

(a) the newest 100 lines of one deployment in the last hour with a substring filter;
(b) ``sum by (level) (count_over_time({...}[5m]))`` over the 24 hours at a 5-minute step.

It prints the load rate through ``write`` and the p50/p95 of each query. Figures are
printed, never asserted. ``--backend sql`` uses PostgreSQL in a database of its own
(created and dropped; ``--sqlite`` for SQLite instead); ``--backend clickhouse`` starts a
private clickhouse-server (Debian's ``clickhouse-server``) unless ``--clickhouse-url`` names
one. ``--lines`` makes a smaller run.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import logs_ingest, pg, serving  # noqa: E402 - after the path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

S = 1_000_000_000
HOURS = 24
BATCH = 10_000
DEFAULT_DB = "cp_bench_logs"
LEVELS = ("info",) * 16 + ("warn",) * 3 + ("error",)
TEMPLATES = (
    'INFO 10.0.{a}.{b} - "POST /v1/chat/completions HTTP/1.1" 200 prompt_tokens={p} '
    "generation_tokens={g} ttft_ms={t} request_id=req-{r:012x} model=llama-3.1-8b",
    "Avg prompt throughput: {p}.{a} tokens/s, Avg generation throughput: {g}.{b} tokens/s, "
    "Running: {a} reqs, Waiting: {b} reqs, GPU KV cache usage: {t}.{a}%",
    "WARNING scheduler: sequence group req-{r:012x} preempted by RECOMPUTE mode because "
    "not enough KV cache space; total_num_cumulative_preemption={g}",
    "ERROR engine: CUDA out of memory. Tried to allocate {a}.{b} GiB (GPU 0; {p} MiB "
    "free; request req-{r:012x} aborted)",
)


def _stream_lines(rng: random.Random, count: int, start_ns: int, span_ns: int):  # type: ignore[no-untyped-def]
    times = sorted(start_ns + rng.randrange(span_ns) for _ in range(count))
    for ts in times:
        template = TEMPLATES[rng.randrange(len(TEMPLATES))]
        line = template.format(
            a=rng.randrange(256), b=rng.randrange(256), p=rng.randrange(4000),
            g=rng.randrange(2000), t=rng.randrange(3000), r=rng.getrandbits(48),
        )  # fmt: skip
        yield ts, line


def populate(store, team_id: int, lines: int, deployments: int, now_ns: int) -> float:  # type: ignore[no-untyped-def]
    """Write the lines (one stream per deployment and level); returns lines/s of write."""
    from apps.logs.wire.types import PushedEntry, PushedStream

    rng = random.Random(42)
    start_ns = now_ns - HOURS * 3600 * S
    span = HOURS * 3600 * S
    per_deployment = lines // deployments
    began = time.perf_counter()
    written = 0
    for d in range(deployments):
        by_level: dict[str, list[PushedEntry]] = {level: [] for level in set(LEVELS)}
        for ts, line in _stream_lines(rng, per_deployment, start_ns, span):
            level = LEVELS[rng.randrange(len(LEVELS))]
            by_level[level].append(PushedEntry(ts, line))
        streams = []
        for level, entries in sorted(by_level.items()):
            labels = (("deployment", f"d-{d:03d}"), ("level", level), ("namespace", "bench"))
            for i in range(0, len(entries), BATCH):
                streams.append(PushedStream(labels, tuple(entries[i : i + BATCH])))
        for stream in streams:
            store.write(team_id=team_id, streams=[stream], resolve=lambda labels: None)
            written += len(stream.entries)
        if d % 10 == 9:
            rate = written / (time.perf_counter() - began)
            print(f"  loaded {written:,} lines ({rate:,.0f} lines/s)", flush=True)
    return written / (time.perf_counter() - began)


def _percentiles(times: list[float]) -> str:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered) * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms"


def measure(store, team_id: int, deployments: int, now_ns: int, repeat: int) -> None:  # type: ignore[no-untyped-def]
    from apps.logs.query import Scope, parse_query, query_lines, query_range

    rng = random.Random(7)
    scope = Scope(team_id)
    step = 300 * S
    # Grafana aligns a range query's start and end to its step; so does this one.
    day_end = now_ns // step * step
    day_start = day_end - HOURS * 3600 * S + step
    lines_q, metric_q = [], []
    result_sizes = []
    for _ in range(repeat):
        d = rng.randrange(deployments)
        query = parse_query(f'{{deployment="d-{d:03d}"}} |= "preempted"')
        began = time.perf_counter()
        got = query_lines(store, query, scope, start_ns=now_ns - 3600 * S, end_ns=now_ns,
                          limit=100, direction="backward")  # fmt: skip
        lines_q.append(time.perf_counter() - began)
        result_sizes.append(len(got))
        query = parse_query('sum by (level) (count_over_time({namespace="bench"}[5m]))')
        began = time.perf_counter()
        series = query_range(store, query, scope, start_ns=day_start, end_ns=day_end, step_ns=step)
        metric_q.append(time.perf_counter() - began)
    print(f"(a) newest 100 of one deployment, last hour, |= filter:  {_percentiles(lines_q)}"
          f"   ({statistics.median(result_sizes):.0f} lines returned)")  # fmt: skip
    total = sum(v for s in series for _, v in s.points)
    print(f"(b) 24 h sum by (level) (count_over_time(...[5m])), 5 m step: {_percentiles(metric_q)}"
          f"   ({len(series)} series, {total:,.0f} counted)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--backend", choices=("sql", "clickhouse"), default="sql")
    parser.add_argument("--lines", type=int, default=5_000_000)
    parser.add_argument("--deployments", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    parser.add_argument("--admin-url", help="PostgreSQL URL to create/drop the database from")
    parser.add_argument("--db-name", default=DEFAULT_DB)
    parser.add_argument("--clickhouse-url", help="an existing server (else a private one)")
    parser.add_argument("--mode", choices=("all", "ingest", "query"), default="all")
    parser.add_argument("--ingest-lines", type=int, default=300_000)
    parser.add_argument("--ingest-clients", type=int, default=6, help="client threads")
    parser.add_argument("--workers", type=int, default=logs_ingest.WORKERS)
    parser.add_argument("--rounds", type=int, default=3, help="raw and HTTP take turns")
    args = parser.parse_args(argv)
    if args.mode != "query" and args.backend == "sql" and args.sqlite:
        print("ingest: not measured on SQLite (the server would share one file); --mode query")
        args.mode = "query" if args.mode == "all" else "none"

    workdir = tempfile.mkdtemp(prefix="bench-logs-")
    env = {"CONTROLPLANE_VAR_DIR": workdir, "DEBUG": "false", "LOG_LEVEL": "WARNING"}
    admin_url = ""
    # ClickHouse holds the lines; the project's own tables (teams, tokens, streams on
    # PostgreSQL) are in PostgreSQL either way, as in production.
    if not args.sqlite:
        admin_url = pg.admin_url_for(args.admin_url)
        why = pg.unreachable_reason(admin_url)
        if why is not None:
            print(f"SKIP: PostgreSQL unreachable ({why})")
            return 0
        pg.database_recreate(admin_url, args.db_name)
        env["DATABASE_URL"] = pg.database_url(admin_url, args.db_name)
    else:
        os.environ.pop("DATABASE_URL", None)
    serving.django_setup(env)
    from django.core.management import call_command
    from django.db import connection

    from apps.accounts.models import Team

    call_command("migrate", verbosity=0, interactive=False)
    now_ns = time.time_ns()
    clickhouse = None
    ok = True
    try:
        if args.backend == "clickhouse":
            from apps.logs.storage.clickhouse import ClickHouseLogStore

            url = args.clickhouse_url
            if not url:
                from tests.integration.logs.clickhouse import PrivateClickHouse, clickhouse_binary

                binary = clickhouse_binary()
                if binary is None:
                    print(
                        "SKIP: clickhouse-server not installed (Debian package clickhouse-server)"
                    )
                    return 0
                clickhouse = PrivateClickHouse(binary=binary, root=Path(workdir) / "clickhouse")
                clickhouse.start()
                url = clickhouse.url(clickhouse.fresh_database())
            store = ClickHouseLogStore(url)
        else:
            from apps.logs.storage.sql import SqlLogStore

            store = SqlLogStore.from_settings()
        store.prepare(now_ns=now_ns - HOURS * 3600 * S, days_ahead=3)
        vendor = store.vendor
        if args.mode == "ingest" or args.mode == "all":
            server_env = {
                **os.environ,
                "DEBUG": "false",
                "LOG_LEVEL": "INFO",
                "PYTHONUNBUFFERED": "1",
                "LOGS_BACKEND": args.backend,
            }
            if args.backend == "clickhouse":
                server_env["LOGS_CLICKHOUSE_URL"] = url
            ok = logs_ingest.run_ingest(
                backend=args.backend,
                vendor=vendor,
                store=store,
                lines=args.ingest_lines,
                clients=args.ingest_clients,
                workers=args.workers,
                server_env=server_env,
                database_url=env.get("DATABASE_URL", ""),
                clickhouse_url=url if args.backend == "clickhouse" else "",
                clickhouse_pid=clickhouse.proc.pid if clickhouse and clickhouse.proc else None,
                workdir=Path(workdir),
                rounds=max(1, args.rounds),
            )
        if args.mode != "query" and args.mode != "all":
            return 0 if ok else 1
        team = Team.objects.create(slug="bench-logs", name="Bench logs")
        where = connection.vendor if args.backend == "sql" else "native protocol"
        print(f"backend: {args.backend} ({where}), {args.lines:,} lines, "
              f"{args.deployments} deployments, {HOURS} h")  # fmt: skip
        rate = populate(store, team.pk, args.lines, args.deployments, now_ns)
        print(f"load through write(): {rate:,.0f} lines/s (batches of {BATCH:,})")
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        measure(store, team.pk, args.deployments, now_ns, args.repeat)
    finally:
        connection.close()
        if clickhouse is not None:
            clickhouse.stop()
        if admin_url:
            pg.admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{args.db_name}" WITH (FORCE)')
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
