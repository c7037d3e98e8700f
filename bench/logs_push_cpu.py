"""CPU per log push, in process: the real push view (``POST /loki/api/v1/push`` through
Django's test client, middleware included) on the bodies ``bench/logs`` sends (1,000 lines
of about 200 bytes, protobuf + snappy), and the CPU the database spends on them.

CPU time is less sensitive than wall time to the other work of a shared machine, so this is
what to compare when changing the push path (run it on the code before and after, taking
turns). Per round of ``--pushes`` pushes it prints this process's CPU per push and the
PostgreSQL backend's (or, with ``--backend clickhouse``, the private clickhouse-server's,
background merges included), both from ``/proc``, and the wall time. The first round also
makes the team's streams (100 deployments, 6 streams each); the later ones push into known
streams.

On PostgreSQL each round is followed by the raw write of ``bench/logs --mode ingest`` on the
same batches (the rows pre-encoded in COPY's text format, ``COPY`` into ``logs_entry`` for
another team whose streams exist, one transaction per batch, over a connection of its own),
with its own CPU and its backend's: the baseline the push is compared with, per batch.

    .venv/bin/python bench/logs_push_cpu.py [--backend clickhouse] [--rounds 3] [--pushes 100]

Needs PostgreSQL (``DATABASE_URL``'s server or ``--admin-url``): it creates its own
database (``--db-name``) and drops it at the end. ``REDIS_URL``, when set, holds the rate
limits as in production. The team's rate limits are raised, as in ``bench/logs``.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

from bench import logs_ingest, pg, serving

BATCH_LINES = logs_ingest.BATCH_LINES
WARM_PUSHES = 3
_PROFILED: list[cProfile.Profile] = []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--backend", choices=("sql", "clickhouse"), default="sql")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pushes", type=int, default=100, help="pushes per round")
    parser.add_argument("--admin-url", help="PostgreSQL URL to create/drop the database from")
    parser.add_argument("--db-name", default="cp_bench_logs_push_cpu")
    parser.add_argument(
        "--profile",
        metavar="PATH",
        help="also profile the last round with cProfile: write the stats to PATH and print "
        "the 25 functions with the most own CPU time",
    )
    args = parser.parse_args(argv)

    prepared = pg.fresh_database_or_skip(args.admin_url, args.db_name)
    if prepared is None:
        return 0
    admin_url, database_url = prepared
    workdir = tempfile.mkdtemp(prefix="bench-logs-cpu-")
    serving.django_setup(
        {
            "CONTROLPLANE_VAR_DIR": workdir,
            "DEBUG": "false",
            "DATABASE_URL": database_url,
            "LOGS_INGEST_LINES_PER_S": str(logs_ingest.RATE_LIMIT_LINES_PER_S),
            "LOGS_INGEST_BYTES_PER_S": str(logs_ingest.RATE_LIMIT_BYTES_PER_S),
        }
    )
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0, interactive=False)
    clickhouse: Any = None
    try:
        if args.backend == "clickhouse":
            from tests.integration.logs.clickhouse import PrivateClickHouse, clickhouse_binary

            binary = clickhouse_binary()
            if binary is None:
                print("SKIP: clickhouse-server not installed (Debian package clickhouse-server)")
                return 0
            clickhouse = PrivateClickHouse(binary=binary, root=Path(workdir) / "clickhouse")
            clickhouse.start()
            settings.LOGS_BACKEND = "clickhouse"
            settings.LOGS_CLICKHOUSE_URL = clickhouse.url(clickhouse.fresh_database())
        measure(
            args.rounds,
            args.pushes,
            clickhouse.proc.pid if clickhouse else None,
            profile=args.profile,
        )
    finally:
        connection.close()
        if clickhouse is not None:
            clickhouse.stop()
        pg.database_drop(admin_url, args.db_name)
    return 0


def measure(
    rounds: int, pushes: int, server_pid: int | None, *, profile: str | None = None
) -> None:
    from django.db import connection
    from django.test import Client

    from apps.accounts.models import Team
    from apps.logs.services import ingest_token_create
    from apps.logs.storage import log_store

    team = Team.objects.create(slug="bench-push-cpu", name="Bench push CPU")
    _, secret = ingest_token_create(team=team, name="bench", actor=None)
    now_ns = time.time_ns()
    log_store().prepare(now_ns=now_ns - 86_400 * 10**9, days_ahead=2)
    batches = logs_ingest.make_batches((WARM_PUSHES + rounds * pushes) * BATCH_LINES, now_ns=now_ns)
    bodies = [logs_ingest.encode_push(batch) for batch in batches]
    raw = None if server_pid is not None else _RawCopy(batches, now_ns)
    client = Client()

    def push(body: bytes) -> None:
        response = client.post(
            logs_ingest.PUSH_PATH,
            data=body,
            content_type="application/x-protobuf",
            HTTP_AUTHORIZATION=f"Bearer {secret}",
        )
        if response.status_code != 204:
            raise SystemExit(f"push answered {response.status_code}: {response.content[:300]!r}")

    for body in bodies[:WARM_PUSHES]:
        push(body)
    if server_pid is None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            server_pid = int(cursor.fetchone()[0])
        server = "PostgreSQL backend"
    else:
        server = "clickhouse-server"
    hertz = os.sysconf("SC_CLK_TCK")
    own: list[float] = []
    theirs: list[float] = []
    raw_totals: list[float] = []
    print(f"{rounds} rounds of {pushes} pushes of {BATCH_LINES:,} lines; ms per push:")
    for index in range(rounds):
        part = slice(WARM_PUSHES + index * pushes, WARM_PUSHES + (index + 1) * pushes)
        profiler = cProfile.Profile(time.process_time) if profile and index == rounds - 1 else None
        cpu, ticks, wall = time.process_time(), logs_ingest._ticks(server_pid), time.perf_counter()
        if profiler is not None:
            profiler.enable()
        for body in bodies[part]:
            push(body)
        if profiler is not None:
            profiler.disable()
            _PROFILED.append(profiler)
        own.append((time.process_time() - cpu) / pushes * 1000)
        theirs.append((logs_ingest._ticks(server_pid) - ticks) / hertz / pushes * 1000)
        wall_ms = (time.perf_counter() - wall) / pushes * 1000
        text = (
            f"  round {index + 1}: this process {own[-1]:.2f} CPU, {server} {theirs[-1]:.2f} "
            f"CPU, wall {wall_ms:.2f}"
        )
        if raw is not None:
            raw_client, raw_backend = raw.run(part)
            raw_totals.append(raw_client + raw_backend)
            text += f"; raw COPY: client {raw_client:.2f} CPU, backend {raw_backend:.2f} CPU"
        print(text, flush=True)
    load = Path("/proc/loadavg").read_text().split()[0]
    print(
        f"median: this process {statistics.median(own):.2f} ms CPU per push, {server} "
        f"{statistics.median(theirs):.2f} ms; load average {load}"
    )
    if raw is not None:
        ratios = [r / (a + b) for r, a, b in zip(raw_totals, own, theirs, strict=True)]
        print(
            f"raw COPY: {statistics.median(raw_totals):.2f} ms CPU per batch (client + backend); "
            f"raw / push CPU per batch, median of rounds: {statistics.median(ratios):.2f}x"
        )
    if raw is not None:
        raw.close()
    if profile:
        profiler_stats(profile)


def profiler_stats(path: str) -> None:
    """Print the last round's 25 functions with the most own time (the profiler's overhead
    makes that round's CPU figures larger: read them as shares, not as times)."""
    stats = pstats.Stats(_PROFILED[0])
    stats.dump_stats(path)
    print(f"profile of the last round written to {path}; own time, top 25:")
    stats.sort_stats("tottime").print_stats(25)


class _RawCopy:
    """The raw write of ``bench/logs``' ingest mode, for another team, batch by batch."""

    def __init__(self, batches: list[logs_ingest.Batch], now_ns: int) -> None:
        import psycopg
        from django.db import connection

        from apps.accounts.models import Team
        from apps.logs.wire.types import stream_fingerprint

        team = Team.objects.create(slug="bench-push-cpu-raw", name="Bench push CPU (raw)")
        labels_of = {stream_fingerprint(k): k for b in batches for k in b.streams}
        ids = logs_ingest.pg_raw_streams(team, labels_of, now_ns)
        self.items = logs_ingest.pg_raw_batches(batches, team.pk, ids)
        params = connection.get_connection_params()
        self.connection = psycopg.connect(**{k: v for k, v in params.items() if k != "context"})
        self.write = logs_ingest.pg_raw_writer("")
        self.state: dict[str, Any] = {"connection": self.connection}
        self.write(self.items[0], self.state)
        self.pid = int(self.connection.info.backend_pid)

    def run(self, part: slice) -> tuple[float, float]:
        """(client, backend) ms of CPU per batch for the batches of ``part``."""
        items = self.items[part]
        hertz = os.sysconf("SC_CLK_TCK")
        cpu, ticks = time.process_time(), logs_ingest._ticks(self.pid)
        for item in items:
            self.write(item, self.state)
        client = (time.process_time() - cpu) / len(items) * 1000
        return client, (logs_ingest._ticks(self.pid) - ticks) / hertz / len(items) * 1000

    def close(self) -> None:
        self.connection.close()


if __name__ == "__main__":
    raise SystemExit(main())
