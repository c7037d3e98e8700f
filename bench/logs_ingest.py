"""The ingest half of ``bench/logs``: log lines pushed end to end over HTTP, against a raw
bulk insert of the same rows in the same run.

1. The lines: ``--ingest-lines`` vLLM-like lines of about 200 bytes in batches of 1,000, as
   one Promtail client would send them: each batch one deployment's (of 100) lines, over
   its pods and levels (up to 6 streams, 5 labels each), 20 µs apart (a fleet logging
   50,000 lines/s), ending a minute ago. Every batch is encoded before timing as Promtail
   sends it (``logproto.PushRequest``, protobuf, snappy block format, ``Content-Type:
   application/x-protobuf``), so the client only writes bytes.
2. **Raw**: the same rows written to the same table by the database's bulk path alone, no
   HTTP, no decoding, no validation, no duplicate check, no stream lookup (the stream rows
   are made beforehand), for another team, in the same batches, over as many connections as
   the server has workers:

   - PostgreSQL: ``COPY logs_entry (team_id, stream_id, ts, line, metadata, severity,
     trace_id, span_id) FROM STDIN`` with the batch pre-encoded in COPY's text format, one
     transaction per batch: the partitioned table and its unique index, as the store
     writes a new batch (the store also adds the per-minute counts, and looks the streams
     up; raw does neither);
   - ClickHouse: ``INSERT INTO logs_entries (...) VALUES`` through clickhouse-driver, the
     batch's columns built beforehand (``columnar=True``), one INSERT per batch (the
     materialized view of minute counts runs on it, as on the store's inserts; the store
     also reads back which of the batch's entries are stored already; raw does not).
3. **HTTP**: gunicorn as ``deploy/Dockerfile`` runs it (``--config deploy/gunicorn.conf.py``,
   3 workers, gthread as that file sets) serving the project with ``LOGS_BACKEND`` set to
   the backend, and
   ``--ingest-clients`` client threads posting the bodies to ``POST /loki/api/v1/push`` with
   an ingest token of their own team. Its streams are opened before timing (one line each,
   pushed over HTTP once per client thread so that every worker has seen them, not timed;
   the repeats store nothing), as raw's stream rows are made beforehand: both sides time
   entries written into streams that exist. A line counts when the 204 of its batch arrives
   (a 2xx means the batch is durably stored). The team's rate limits are raised for the run (the
   limits are on, so their Redis round trip is paid).
4. Raw and HTTP take turns over ``--rounds`` rounds, a part of the batches each per round,
   so that a change of the machine's load weighs on both alike; the figures add the rounds.
5. **Check**: the lines stored for the HTTP team (and for raw) are counted, and distinct
   entries too: both must equal the lines sent (the opening lines included for HTTP).

CPU is measured too, since the client, the server and the database share the machine: the
bench process's own CPU time while the clients run, the gunicorn workers' (from ``/proc``),
and the machine's whole busy time over the run.
"""

from __future__ import annotations

import http.client
import os
import random
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import serving

S = 1_000_000_000
BATCH_LINES = 1_000
DEPLOYMENTS = 100
PODS = 2
WORKERS = 3  # deploy/Dockerfile's gunicorn --workers
PUSH_PATH = "/loki/api/v1/push"
LINE_SPACING_NS = 20_000  # 50,000 lines/s of the fleet's time
# High enough that no batch of the run waits: the run measures the store, not the limit.
RATE_LIMIT_LINES_PER_S = 10_000_000
RATE_LIMIT_BYTES_PER_S = 4 * 1024**3
TARGETS = {"postgresql": (30_000, 0.5), "clickhouse": (60_000, None)}
LEVEL_WEIGHTS = (("info", 16), ("warn", 3), ("error", 1))
TEMPLATES = (
    'INFO 10.0.{a}.{b} - "POST /v1/chat/completions HTTP/1.1" 200 OK prompt_tokens={p} '
    "generation_tokens={g} ttft_ms={t} e2e_ms={t}{b} request_id=req-{r:012x} "
    "model=meta-llama/Llama-3.1-8B-Instruct",
    "Avg prompt throughput: {p}.{a} tokens/s, Avg generation throughput: {g}.{b} tokens/s, "
    "Running: {a} reqs, Swapped: 0 reqs, Pending: {b} reqs, GPU KV cache usage: {t}.{a}%, "
    "CPU KV cache usage: 0.0%",
    "WARNING scheduler.py:1560 sequence group req-{r:012x} is preempted by "
    "PreemptionMode.RECOMPUTE mode because there is not enough KV cache space; "
    "total_num_cumulative_preemption={g}",
    "ERROR async_llm_engine.py:{t} CUDA out of memory. Tried to allocate {a}.{b} GiB "
    "(GPU 0; 79.15 GiB total capacity; {p} MiB free); request req-{r:012x} aborted",
)


# --------------------------------------------------------------------------- the lines


@dataclass(frozen=True)
class Batch:
    """One push: its streams' labels and entries (time ns, line, level)."""

    deployment: str
    streams: dict[tuple[tuple[str, str], ...], list[tuple[int, str]]]

    @property
    def lines(self) -> int:
        return sum(len(entries) for entries in self.streams.values())


def make_batches(total: int, *, now_ns: int, seed: int = 11) -> list[Batch]:
    """``total`` lines (rounded up to whole batches) ending a minute before ``now_ns``,
    ``LINE_SPACING_NS`` apart (in time order in every stream): the times a fleet logging at
    about the rate measured would give its lines, as a shipper tailing them sends them."""
    rng = random.Random(seed)
    count = -(-total // BATCH_LINES)
    levels = [level for level, weight in LEVEL_WEIGHTS for _ in range(weight)]
    start_ns = now_ns - 60 * S - count * BATCH_LINES * LINE_SPACING_NS
    batches = []
    for index in range(count):
        deployment = f"d-{index % DEPLOYMENTS:03d}"
        streams: dict[tuple[tuple[str, str], ...], list[tuple[int, str]]] = {}
        pid = 10_000 + index % DEPLOYMENTS * 37
        for j in range(BATCH_LINES):
            level = levels[rng.randrange(len(levels))]
            pod = f"{deployment}-7d9f{rng.randrange(PODS)}"
            labels = (
                ("container", "vllm"),
                ("deployment", deployment),
                ("level", level),
                ("namespace", "bench"),
                ("pod", pod),
            )
            template = TEMPLATES[rng.randrange(len(TEMPLATES))]
            line = f"(engine pid={pid}) " + template.format(
                a=rng.randrange(256), b=rng.randrange(256), p=rng.randrange(4000),
                g=rng.randrange(2000), t=rng.randrange(3000), r=rng.getrandbits(48),
            )  # fmt: skip
            ts = start_ns + (index * BATCH_LINES + j) * LINE_SPACING_NS
            streams.setdefault(labels, []).append((ts, line))
        batches.append(Batch(deployment, streams))
    return batches


def encode_push(batch: Batch) -> bytes:
    """The batch as Promtail sends it: a ``logproto.PushRequest``, snappy block format."""
    import cramjam

    from apps.logs.wire.labels import format_labels
    from apps.logs.wire.loki import PushRequest

    request = PushRequest()
    for labels, entries in batch.streams.items():
        stream = request.streams.add()
        stream.labels = format_labels(labels).encode()
        for ts, line in entries:
            entry = stream.entries.add()
            entry.timestamp.seconds, entry.timestamp.nanos = divmod(ts, S)
            entry.line = line.encode()
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


# --------------------------------------------------------------------------- CPU accounting


def _ticks(pid: int) -> int:
    """utime + stime of a process (all its threads), in clock ticks; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


class CpuMeter:
    """CPU seconds used between ``start`` and ``stop`` by this process, by some other
    processes, and by the whole machine."""

    def __init__(self, pids: dict[str, list[int]]) -> None:
        self.pids = pids
        self.hz = os.sysconf("SC_CLK_TCK")

    def start(self) -> None:
        self._self = time.process_time()
        self._others = {name: sum(_ticks(p) for p in pids) for name, pids in self.pids.items()}
        self._machine = _machine_ticks()
        self._wall = time.perf_counter()

    def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self._wall
        busy, total = _machine_ticks()
        out = {"client": time.process_time() - self._self}
        for name, pids in self.pids.items():
            out[name] = (sum(_ticks(p) for p in pids) - self._others[name]) / self.hz
        cpus = os.cpu_count() or 1
        out["machine"] = (busy - self._machine[0]) / self.hz
        out["machine_share"] = (busy - self._machine[0]) / max(1, total - self._machine[1])
        out["wall"] = wall
        out["capacity"] = wall * cpus
        return out


# --------------------------------------------------------------------------- running


@dataclass
class Timing:
    lines: int
    seconds: float
    latencies: list[float]
    errors: list[str]
    cpu: dict[str, float]

    @property
    def lines_per_s(self) -> float:
        return self.lines / self.seconds if self.seconds else 0.0


def run_parallel(
    items: list[Any],
    work: Callable[[Any, dict[str, Any]], int],
    *,
    threads: int,
    meter: CpuMeter,
) -> Timing:
    """``work(item, per_thread_state)`` for every item from ``threads`` threads, each
    taking the next item as it finishes one; returns the lines done (work's returns)."""
    lock = threading.Lock()
    position = iter(range(len(items)))
    done: list[int] = []
    latencies: list[float] = []
    errors: list[str] = []
    start = threading.Barrier(threads + 1)

    def worker() -> None:
        state: dict[str, Any] = {}
        start.wait()
        while True:
            with lock:
                index = next(position, None)
            if index is None:
                break
            began = time.perf_counter()
            try:
                lines = work(items[index], state)
            except Exception as error:  # noqa: BLE001 - recorded and reported
                with lock:
                    errors.append(f"{type(error).__name__}: {str(error)[:300]}")
                continue
            with lock:
                latencies.append(time.perf_counter() - began)
                done.append(lines)
        closing = state.get("close")
        if closing is not None:
            closing()

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    meter.start()
    began = time.perf_counter()
    start.wait()
    for thread in pool:
        thread.join()
    seconds = time.perf_counter() - began
    return Timing(sum(done), seconds, latencies, errors, meter.stop())


def http_pusher(port: int, token: str) -> Callable[[tuple[bytes, int], dict[str, Any]], int]:
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/x-protobuf",
    }

    def push(item: tuple[bytes, int], state: dict[str, Any]) -> int:
        body, lines = item
        for attempt in range(2):
            connection = state.get("connection")
            if connection is None:
                connection = state["connection"] = http.client.HTTPConnection(
                    "127.0.0.1", port, timeout=120
                )
                state["close"] = connection.close
            try:
                connection.request("POST", PUSH_PATH, body=body, headers=headers)
                response = connection.getresponse()
                text = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A worker may close a connection after its answer (at a restart, or when
                # keep-alive ends): the next request reconnects (it never reached the server).
                connection.close()
                state["connection"] = None
                if attempt:
                    raise
                continue
            if response.getheader("Connection", "").lower() == "close":
                connection.close()
                state["connection"] = None
            if response.status // 100 != 2:
                raise RuntimeError(f"HTTP {response.status}: {text[:300]!r}")
            return lines
        raise AssertionError("unreachable")

    return push


# --------------------------------------------------------------------------- raw writers


def _copy_text(value: str) -> str:
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def pg_raw_batches(
    batches: list[Batch], team_id: int, stream_ids: dict[str, int]
) -> list[tuple[bytes, int]]:
    """Each batch as the rows of ``logs_entry`` in COPY's text format."""
    from apps.logs.wire.types import stream_fingerprint

    out = []
    for batch in batches:
        rows = []
        for labels, entries in batch.streams.items():
            stream_id = stream_ids[stream_fingerprint(labels)]
            level = dict(labels)["level"]
            rows.extend(
                f"{team_id}\t{stream_id}\t{ts}\t{_copy_text(line)}\t\t{level}\t\t\n"
                for ts, line in entries
            )
        out.append(("".join(rows).encode(), batch.lines))
    return out


def pg_raw_streams(team: Any, labels_of: dict[str, Any], now_ns: int) -> dict[str, int]:
    """The raw team's stream rows, made beforehand (so that only entries are timed): their
    ids by fingerprint."""
    from apps.logs.models import LogStream

    LogStream.objects.bulk_create(
        LogStream(
            team=team,
            fingerprint=fingerprint,
            labels=dict(labels),
            first_seen_ns=0,
            last_seen_ns=now_ns + 3600 * S,
        )
        for fingerprint, labels in labels_of.items()
    )
    return dict(LogStream.objects.filter(team=team).values_list("fingerprint", "id"))


def pg_raw_writer(database_url: str) -> Callable[[tuple[bytes, int], dict[str, Any]], int]:
    import psycopg

    def write(item: tuple[bytes, int], state: dict[str, Any]) -> int:
        data, lines = item
        connection = state.get("connection")
        if connection is None:
            connection = state["connection"] = psycopg.connect(database_url)
            state["close"] = connection.close
        with connection.cursor() as cursor:
            with cursor.copy(
                "COPY logs_entry (team_id, stream_id, ts, line, metadata, severity, "
                "trace_id, span_id) FROM STDIN"
            ) as copy:
                copy.write(data)
        connection.commit()
        return lines

    return write


def ch_raw_batches(batches: list[Batch], team_id: int) -> list[tuple[list[list[Any]], int]]:
    """Each batch as the columns of ``logs_entries`` (no deployment: 0, as the store writes
    for a stream no deployment matches)."""
    from apps.logs.wire.types import stream_fingerprint

    out = []
    for batch in batches:
        columns: list[list[Any]] = [[] for _ in range(10)]
        for labels, entries in batch.streams.items():
            sid = stream_fingerprint(labels)
            level = dict(labels)["level"]
            for ts, line in entries:
                for column, value in zip(
                    columns, (team_id, 0, sid, ts, line, [], [], level, "", ""), strict=True
                ):
                    column.append(value)
        out.append((columns, batch.lines))
    return out


def ch_raw_writer(url: str) -> Callable[[tuple[list[list[Any]], int], dict[str, Any]], int]:
    from apps.logs.storage.clickhouse import _ENTRY_COLUMNS, ClickHouseTarget

    target = ClickHouseTarget.from_url(url)

    def write(item: tuple[list[list[Any]], int], state: dict[str, Any]) -> int:
        from clickhouse_driver import Client

        columns, lines = item
        client = state.get("client")
        if client is None:
            client = state["client"] = Client(
                host=target.host,
                port=target.port,
                user=target.user,
                password=target.password,
                database=target.database,
            )
            state["close"] = client.disconnect
        client.execute(
            f"INSERT INTO logs_entries ({_ENTRY_COLUMNS}) VALUES", columns, columnar=True
        )
        return lines

    return write


# --------------------------------------------------------------------------- the whole run


def merged(timings: list[Timing]) -> Timing:
    """Several runs as one: lines, seconds and CPU added up."""
    cpu: dict[str, float] = {}
    for timing in timings:
        for name, value in timing.cpu.items():
            cpu[name] = cpu.get(name, 0.0) + value
    cpu["machine_share"] = cpu["machine"] / cpu["capacity"] if cpu.get("capacity") else 0.0
    return Timing(
        lines=sum(t.lines for t in timings),
        seconds=sum(t.seconds for t in timings),
        latencies=[x for t in timings for x in t.latencies],
        errors=[e for t in timings for e in t.errors],
        cpu=cpu,
    )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def _cpu_text(cpu: dict[str, float]) -> str:
    parts = [
        f"{name} {cpu[name]:.1f} s"
        for name in cpu
        if name not in ("machine", "machine_share", "wall", "capacity")
    ]
    return (
        f"CPU: {', '.join(parts)}; whole machine {cpu['machine']:.1f} s busy of "
        f"{cpu['capacity']:.1f} s ({cpu['machine_share']:.0%})"
    )


def stored_counts(backend: str, team_id: int, store: Any) -> tuple[int, int]:
    """(rows, distinct (stream, time, line)) of the team's entries."""
    if backend == "clickhouse":
        rows = store._execute(
            "SELECT count(), uniqExact(stream_id, timestamp_ns, line) FROM logs_entries "
            "WHERE team_id = %(team)s",
            {"team": team_id},
        )
        return int(rows[0][0]), int(rows[0][1])
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(DISTINCT (stream_id, ts, md5(line))) FROM logs_entry "
            "WHERE team_id = %s",
            [team_id],
        )
        count, distinct = cursor.fetchone()
    return int(count), int(distinct)


def run_ingest(
    *,
    backend: str,
    vendor: str,
    store: Any,
    lines: int,
    clients: int,
    workers: int,
    server_env: dict[str, str],
    database_url: str,
    clickhouse_url: str,
    clickhouse_pid: int | None,
    workdir: Path,
    rounds: int = 3,
) -> bool:
    """The whole ingest measurement; prints it and returns whether every check held."""
    from apps.accounts.models import Team
    from apps.devstack.prometheus import free_port
    from apps.logs.services import ingest_token_create
    from apps.logs.wire.types import stream_fingerprint

    http_team = Team.objects.create(slug="bench-ingest-http", name="Bench ingest (HTTP)")
    raw_team = Team.objects.create(slug="bench-ingest-raw", name="Bench ingest (raw)")
    _, secret = ingest_token_create(team=http_team, name="bench", actor=None)

    now_ns = time.time_ns()
    began = time.perf_counter()
    batches = make_batches(lines, now_ns=now_ns)
    bodies = [(encode_push(batch), batch.lines) for batch in batches]
    total = sum(n for _, n in bodies)
    line_bytes = [len(line.encode()) for b in batches for e in b.streams.values() for _, line in e]
    streams_per_batch = statistics.mean(len(b.streams) for b in batches)
    body_sizes = [len(body) for body, _ in bodies]
    print(
        f"ingest: {total:,} lines in {len(bodies)} batches of {BATCH_LINES:,} "
        f"({streams_per_batch:.1f} streams each, {DEPLOYMENTS} deployments), lines "
        f"{statistics.mean(line_bytes):.0f} bytes on average ({min(line_bytes)}-"
        f"{max(line_bytes)}); bodies protobuf + snappy (application/x-protobuf, Promtail's "
        f"encoding), {statistics.mean(body_sizes) / 1024:.0f} KiB each "
        f"({sum(line_bytes) / sum(body_sizes):.1f}x compressed); encoded in "
        f"{time.perf_counter() - began:.1f} s before timing",
        flush=True,
    )

    # Raw: the streams made beforehand, so that only the entries are timed.
    labels_of = {stream_fingerprint(k): k for b in batches for k in b.streams}
    if backend == "clickhouse":
        raw_items: list[Any] = ch_raw_batches(batches, raw_team.pk)
        raw_write: Callable[[Any, dict[str, Any]], int] = ch_raw_writer(clickhouse_url)
        raw_what = "clickhouse-driver INSERT INTO logs_entries, columnar, one per batch"
    else:
        ids = pg_raw_streams(raw_team, labels_of, now_ns)
        raw_items = pg_raw_batches(batches, raw_team.pk, ids)
        raw_write = pg_raw_writer(database_url)
        raw_what = "COPY FROM STDIN into logs_entry, pre-encoded text, one transaction per batch"
    base_pids: dict[str, list[int]] = {}
    if clickhouse_pid is not None:
        base_pids["clickhouse-server"] = [clickhouse_pid]
    port = free_port()
    env = {
        **server_env,
        "LOGS_INGEST_LINES_PER_S": str(RATE_LIMIT_LINES_PER_S),
        "LOGS_INGEST_BYTES_PER_S": str(RATE_LIMIT_BYTES_PER_S),
    }
    config = serving.ROOT / "deploy" / "gunicorn.conf.py"
    server = serving.server_start(
        serving.gunicorn_command(port, workers, config),
        port=port,
        env=env,
        log=workdir / "gunicorn.log",
        description=f"gunicorn --config deploy/gunicorn.conf.py, {workers} gthread workers",
    )
    raws: list[Timing] = []
    https: list[Timing] = []
    try:
        # A few batches per worker first (imports, connections, the store's set-up), not
        # timed and for a team of its own, so the HTTP team's count is the timed run's.
        warm_team = Team.objects.create(slug="bench-ingest-warm", name="Bench ingest (warm-up)")
        _, warm_secret = ingest_token_create(team=warm_team, name="warm", actor=None)
        warm_batches = make_batches(BATCH_LINES * workers * 2, now_ns=now_ns, seed=99)
        warm = run_parallel(
            [(encode_push(b), b.lines) for b in warm_batches],
            http_pusher(port, warm_secret),
            threads=workers,
            meter=CpuMeter({}),
        )
        if warm.errors:
            print(f"warm-up failed: {warm.errors[:3]}")
            return False
        http_pids = {"gunicorn workers": _children(server.proc.pid), **base_pids}
        push = http_pusher(port, secret)
        # The HTTP team's streams opened before timing, as the raw team's stream rows are
        # made beforehand: both sides then write entries into streams that exist, as a
        # fleet's shippers do for hours on end (a stream's first line costs a lookup, a
        # deployment match and an insert, once). One line per stream, pushed a second
        # before the first batch's entries, counted in what the HTTP team must store.
        first_ns = min(ts for b in batches for e in b.streams.values() for ts, _ in e)
        opening = Batch(
            "streams", {k: [(first_ns - S, "stream opened")] for k in labels_of.values()}
        )
        # Sent once per client thread, so that every worker has seen the streams (its
        # cache of stream ids is warm, as in a worker that has served for a while); the
        # repeats store nothing (same stream, time and line: one entry).
        body = encode_push(opening)
        opened = run_parallel(
            [(body, opening.lines)] * clients, push, threads=clients, meter=CpuMeter({})
        )
        if opened.errors:
            print(f"opening the streams failed: {opened.errors[:3]}")
            return False
        print(
            f"  {opening.lines:,} streams opened over HTTP before timing (one line each, "
            f"sent {clients} times: the repeats are duplicates and store nothing)"
        )
        # Raw and HTTP take turns, a part of the lines each per round, so that a change in
        # the machine's load during the run weighs on both alike.
        for index in range(rounds):
            part = slice(index * len(bodies) // rounds, (index + 1) * len(bodies) // rounds)
            raws.append(
                run_parallel(raw_items[part], raw_write, threads=workers, meter=CpuMeter(base_pids))
            )
            https.append(
                run_parallel(bodies[part], push, threads=clients, meter=CpuMeter(http_pids))
            )
            print(
                f"  round {index + 1}/{rounds}: raw {raws[-1].lines_per_s:,.0f} lines/s, HTTP "
                f"{https[-1].lines_per_s:,.0f} lines/s, load average "
                f"{os.getloadavg()[0]:.2f}",
                flush=True,
            )
    finally:
        server.stop()
    raw, timing = merged(raws), merged(https)
    print(
        f"raw ({raw_what}; {workers} connections): {raw.lines:,} lines in {raw.seconds:.2f} s "
        f"= {raw.lines_per_s:,.0f} lines/s; batch p50 {_percentile(raw.latencies, 0.5) * 1000:.0f} "
        f"ms; {_cpu_text(raw.cpu)}",
        flush=True,
    )
    print(
        f"HTTP ({server.description}; {clients} client threads, http.client, one batch per "
        f"request): {timing.lines:,} lines in {timing.seconds:.2f} s = "
        f"{timing.lines_per_s:,.0f} lines/s; request p50 "
        f"{_percentile(timing.latencies, 0.5) * 1000:.0f} ms, p95 "
        f"{_percentile(timing.latencies, 0.95) * 1000:.0f} ms; {_cpu_text(timing.cpu)}; "
        f"gunicorn workers {timing.cpu['gunicorn workers'] / max(1, timing.lines) * 1e6:.1f} "
        "CPU µs per line",
        flush=True,
    )
    print(
        f"rate limits raised for the run: LOGS_INGEST_LINES_PER_S={RATE_LIMIT_LINES_PER_S:,}, "
        f"LOGS_INGEST_BYTES_PER_S={RATE_LIMIT_BYTES_PER_S:,} (checked on every push, "
        f"{'Redis' if server_env.get('REDIS_URL') else 'file cache: REDIS_URL unset'})"
    )
    ok = not timing.errors and not raw.errors
    for error in (timing.errors + raw.errors)[:5]:
        print(f"  error: {error}")

    http_count, http_distinct = stored_counts(backend, http_team.pk, store)
    raw_count, raw_distinct = stored_counts(backend, raw_team.pk, store)
    for name, sent, count, distinct in (
        ("HTTP", timing.lines + opening.lines, http_count, http_distinct),
        ("raw", raw.lines, raw_count, raw_distinct),
    ):
        good = count == distinct == sent
        ok = ok and good
        print(
            f"stored ({name}): {count:,} lines, {distinct:,} distinct, {sent:,} sent "
            f"-> {'OK' if good else 'WRONG'}"
        )
    ratio = timing.lines_per_s / raw.lines_per_s if raw.lines_per_s else 0.0
    target_rate, target_ratio = TARGETS[vendor if vendor in TARGETS else "postgresql"]
    verdict = timing.lines_per_s >= target_rate and (target_ratio is None or ratio >= target_ratio)
    wanted = f">= {target_rate:,} lines/s" + (
        f" and >= {target_ratio}x raw" if target_ratio is not None else ""
    )
    print(
        f"ingest {vendor}: {timing.lines_per_s:,.0f} lines/s over HTTP, raw "
        f"{raw.lines_per_s:,.0f} lines/s, HTTP/raw {ratio:.2f}x; target {wanted}: "
        f"{'PASS' if verdict else 'MISS'}; load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs",
        flush=True,
    )
    return ok
