"""Time the REST API's list and detail endpoints under gunicorn, against a minimal DRF view.

Usage::

    .venv/bin/python -m bench.api [--workers 2] [--duration 9] [--rounds 3]
        [--connections 4] [--client wrk|python] [--debug] [--gunicorn-config PATH]
        [--profile] [--keep] [--db-name cp_bench_api]

Creates a PostgreSQL database of its own (``cp_bench_api`` on the server of
``DATABASE_URL``, or of ``--admin-url``), migrates it and fills it with two teams of
realistic rows (deployments with their model, cluster and readiness checklist, scale
decisions with their inputs and proposals, alerts with labels and annotations, and a few
active silences), then starts ``gunicorn`` with ``--workers`` workers on a free loopback
port, with the deployed configuration (``deploy/gunicorn.conf.py``; ``''`` for
none) and ``DEBUG=false`` unless ``--debug``. The server runs ``bench.api_settings``: the
product's settings and URLs plus one bench-only route, ``/bench/baseline/``, a
token-authenticated ``APIView`` that answers a small dict. Every request carries a real API
token of a team operator, as an API client would.

It times the baseline and, for deployments, decisions and alerts, a 50-row list page and
one object, each for ``--duration`` seconds with ``--connections`` connections, split into
``--rounds`` rounds that each run every endpoint in turn (so that a change in the machine's
load weighs on all of them alike), after a short warm-up. It prints req/s, p50 and p99, each
as a ratio to the baseline: 1.0 is as fast as the minimal view. Target: at least 0.5x the
baseline's req/s for a 50-row page. The load generator is ``wrk`` (Debian package ``wrk``)
with a Lua ``done()`` hook that prints the latency percentiles; ``--client python`` uses
threads with keep-alive sessions instead (also the fallback when ``wrk`` is not installed).

``--profile`` also runs each endpoint in this process through Django's test client under
cProfile and prints the top functions. Prints SKIP and exits 0 when PostgreSQL is
unreachable; exits 1 when an endpoint answers anything but 200 with the expected rows. The
database is dropped afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import math
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import pg, serving  # noqa: E402 - after the path

SETTINGS_MODULE = "bench.api_settings"
BASELINE_PATH = "/bench/baseline/"
DEFAULT_DB = "cp_bench_api"
GUNICORN_CONFIG = ROOT / "deploy" / "gunicorn.conf.py"
TARGET_RATIO = 0.5
PAGE_SIZE = 50

# wrk calls done() once at the end with its own latency statistics (microseconds).
WRK_SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
    .. '"non_2xx": %d, "socket_errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""


# --------------------------------------------------------------------------- pure parts


@dataclass(frozen=True)
class Result:
    name: str
    requests: int
    seconds: float
    p50_s: float
    p99_s: float
    failures: int

    @property
    def per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def parse_wrk(name: str, output: str) -> Result:
    """The figures of the ``BENCH {...}`` line that ``WRK_SCRIPT`` prints."""
    for line in output.splitlines():
        if line.startswith("BENCH "):
            data = json.loads(line[len("BENCH ") :])
            return Result(
                name=name,
                requests=int(data["requests"]),
                seconds=data["duration_us"] / 1e6,
                p50_s=data["p50_us"] / 1e6,
                p99_s=data["p99_us"] / 1e6,
                failures=int(data["non_2xx"]) + int(data["socket_errors"]),
            )
    raise ValueError(f"no BENCH line in wrk's output: {output[-500:]!r}")


def percentile(values: list[float], q: float) -> float:
    """Nearest rank, ``q`` in [0, 1]."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def merge_runs(name: str, runs: list[Result]) -> Result:
    """One figure from several runs of an endpoint: total requests over total time, and the
    mean of the runs' percentiles."""
    n = len(runs)
    return Result(
        name=name,
        requests=sum(r.requests for r in runs),
        seconds=sum(r.seconds for r in runs),
        p50_s=sum(r.p50_s for r in runs) / n,
        p99_s=sum(r.p99_s for r in runs) / n,
        failures=sum(r.failures for r in runs),
    )


def interleaved_rounds(
    plan: list[tuple[str, str, str]],
    run: Callable[[str, str, float], Result],
    *,
    rounds: int,
    duration: float,
    warmup: float,
) -> dict[str, list[Result]]:
    """Each (name, path, _) of ``plan`` run ``duration / rounds`` seconds per round, every
    round running all in turn (after a ``warmup`` in the first), so that a change in the
    machine's load during the run weighs on all of them alike. Prints each round's req/s."""
    runs: dict[str, list[Result]] = {name: [] for name, _, _ in plan}
    for round_no in range(1, rounds + 1):
        for name, path, _ in plan:
            if round_no == 1 and warmup > 0:
                run(name, path, warmup)
            runs[name].append(run(name, path, duration / rounds))
        line = ", ".join(f"{name} {runs[name][-1].per_s:.0f}" for name, _, _ in plan)
        print(f"  round {round_no}: req/s {line}")
    return runs


def database_release(admin_url: str, name: str, *, keep: bool) -> None:
    """Close this process's connections, then drop the bench's database unless ``keep``."""
    from django.db import connections

    connections.close_all()
    if not keep:
        pg.database_drop(admin_url, name)


@dataclass(frozen=True)
class Ratios:
    """Each figure of an endpoint as a fraction of the baseline's speed (1.0: as fast)."""

    per_s: float
    p50: float
    p99: float


def ratios(result: Result, baseline: Result) -> Ratios:
    def safe(num: float, den: float) -> float:
        return num / den if den else float("nan")

    return Ratios(
        per_s=safe(result.per_s, baseline.per_s),
        p50=safe(baseline.p50_s, result.p50_s),
        p99=safe(baseline.p99_s, result.p99_s),
    )


def render_table(results: list[tuple[Result, str]], baseline: Result) -> str:
    """Markdown: one row per endpoint with its figures and ratios to the baseline."""
    lines = [
        "| endpoint | rows | req/s | p50 | p99 | req/s vs baseline | p50 vs baseline "
        "| p99 vs baseline |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result, rows in [(baseline, "-"), *results]:
        r = ratios(result, baseline)
        lines.append(
            f"| {result.name} | {rows} | {result.per_s:.0f} | {result.p50_s * 1000:.1f} ms "
            f"| {result.p99_s * 1000:.1f} ms | {r.per_s:.2f}x | {r.p50:.2f}x | {r.p99:.2f}x |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- database


@dataclass(frozen=True)
class Dataset:
    token: str
    deployment_id: int
    decision_id: int
    alert_id: int


def populate(*, deployments: int, decisions: int, alerts: int) -> Dataset:
    """Two teams; the caller (an operator of the first) sees only the first team's rows."""
    from django.contrib.auth import get_user_model

    from apps.accounts.models import Membership, Role, Team
    from apps.accounts.services import api_token_create
    from apps.alerts.models import Alert, AlertSource, AlertStatus, Silence
    from apps.autoscaling.models import DecisionRecord
    from apps.inventory.models import (
        Cluster,
        ClusterKind,
        Deployment,
        DeploymentReadiness,
        GpuType,
        LLMModel,
        ScaleTargetKind,
        ServingFramework,
    )

    now = datetime.now(UTC)
    user = get_user_model().objects.create_user(username="bench-operator", password=None)
    first = None
    for t, slug in enumerate(("bench", "neighbours")):
        team = Team.objects.create(slug=slug, name=slug.title())
        if first is None:
            first = team
            Membership.objects.create(user=user, team=team, role=Role.OPERATOR)
        clusters = [
            Cluster.objects.create(
                team=team, name=f"{slug}-c{i}", kind=ClusterKind.KUBERNETES, default_namespace="llm"
            )
            for i in range(3)
        ]
        models = [
            LLMModel.objects.create(
                team=team, name=f"org/{name}", version="v1", parameter_count=size
            )
            for name, size in (("llama-8b", 8 * 10**9), ("qwen-32b", 32 * 10**9))
        ]
        rows = Deployment.objects.bulk_create(
            Deployment(
                team=team,
                name=f"{slug}-chat-{i:03d}",
                description="Chat completions for the assistant product.",
                model=models[i % 2],
                cluster=clusters[i % 3],
                framework=ServingFramework.VLLM,
                target_kind=ScaleTargetKind.K8S_DEPLOYMENT,
                target_namespace="llm",
                target_name=f"chat-{i:03d}",
                gpu_type=GpuType.A100_80GB,
                min_replicas=1,
                max_replicas=8,
                prometheus_selector=f'{{namespace="llm", deployment="chat-{i:03d}"}}',
                labels={"env": "prod", "tier": "gold" if i % 4 == 0 else "silver"},
            )
            for i in range(deployments)
        )
        DeploymentReadiness.objects.bulk_create(
            DeploymentReadiness(
                deployment=d,
                model_files_verified=True,
                version_confirmed=True,
                performance_validated=i % 3 == 0,
                updated_by=user,
            )
            for i, d in enumerate(rows)
        )
        DecisionRecord.objects.bulk_create(
            DecisionRecord(
                deployment=rows[i % len(rows)],
                at=now - timedelta(seconds=10 * i),
                current_replicas=2,
                desired_replicas=3,
                rule="target:queue_length",
                reason="queue_length 7.4 per replica is above the target 3 (+10 %): 2 -> 3.",
                proposals=[
                    {"target": "queue_length", "value": 7.4, "desired": 3},
                    {"target": "kv_cache_usage", "value": 0.61, "desired": 2},
                ],
                events=[{"kind": "stabilization", "detail": "scale-down window 300 s"}],
                inputs={
                    "observations": {"queue_length": 7.4, "kv_cache_usage": 0.61, "ttft_p95": 0.8},
                    "replicas": {"current": 2, "ready": 2, "min": 1, "max": 8},
                },
                dry_run=False,
            )
            for i in range(decisions)
        )
        Alert.objects.bulk_create(
            Alert(
                fingerprint=f"{t:02d}{i:014x}",
                team=team,
                deployment=rows[i % len(rows)],
                source=AlertSource.choices[0][0],
                name=("HighQueueDepth", "KVCacheNearlyFull", "TTFTp95High")[i % 3],
                severity="warning" if i % 5 else "critical",
                labels={
                    "alertname": ("HighQueueDepth", "KVCacheNearlyFull", "TTFTp95High")[i % 3],
                    "deployment": rows[i % len(rows)].name,
                    "namespace": "llm",
                    "pod": f"{rows[i % len(rows)].name}-{i:04d}",
                    "severity": "warning" if i % 5 else "critical",
                },
                annotations={
                    "summary": "Queue depth above 50 for 5 minutes.",
                    "runbook_url": "https://runbooks.example/llm/queue",
                },
                status=AlertStatus.FIRING if i % 4 else AlertStatus.RESOLVED,
                starts_at=now - timedelta(minutes=i),
                received_at=now,
            )
            for i in range(alerts)
        )
        for name in ("KVCacheNearlyFull", "NeverFires", "AlsoNeverFires"):
            Silence.objects.create(
                team=team,
                matchers=[
                    {"name": "alertname", "op": "=", "value": name},
                    {"name": "deployment", "op": "=~", "value": f"{slug}-chat-0[0-4].*"},
                ],
                starts_at=now - timedelta(hours=1),
                ends_at=now + timedelta(days=1),
                comment="maintenance",
            )
    assert first is not None
    issued = api_token_create(user=user, name="bench")
    return Dataset(
        token=issued.secret,
        deployment_id=Deployment.objects.filter(team=first).order_by("id").first().pk,  # type: ignore[union-attr]
        decision_id=DecisionRecord.objects.filter(deployment__team=first).first().pk,  # type: ignore[union-attr]
        alert_id=Alert.objects.filter(team=first).first().pk,  # type: ignore[union-attr]
    )


def endpoints(data: Dataset) -> list[tuple[str, str, str]]:
    """(name, path, rows) of what is timed, besides the baseline."""
    return [
        ("deployments list", "/api/v1/deployments/", str(PAGE_SIZE)),
        ("deployment detail", f"/api/v1/deployments/{data.deployment_id}/", "1"),
        ("decisions list", "/api/v1/autoscaling/decisions/", str(PAGE_SIZE)),
        ("decision detail", f"/api/v1/autoscaling/decisions/{data.decision_id}/", "1"),
        ("alerts list", "/api/v1/alerts/", str(PAGE_SIZE)),
        ("alert detail", f"/api/v1/alerts/{data.alert_id}/", "1"),
    ]


# --------------------------------------------------------------------------- server


def start_gunicorn(
    *, workers: int, db_url: str, debug: bool, config: Path | None, workdir: Path
) -> serving.Server:
    from apps.devstack.prometheus import free_port

    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
        "DATABASE_URL": db_url,
        "DEBUG": "true" if debug else "false",
        "PYTHONUNBUFFERED": "1",
    }
    return serving.server_start(
        serving.gunicorn_command(port, workers, config),
        port=port,
        env=env,
        log=workdir / "gunicorn.log",
        description=f"gunicorn, {workers} workers",
    )


# --------------------------------------------------------------------------- load


def load_wrk(
    name: str, url: str, token: str, *, seconds: float, connections: int, script: Path
) -> Result:
    threads = max(1, min(2, connections))
    completed = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "30s",
            "-s",
            str(script),
            "-H",
            f"Authorization: Bearer {token}",
            "-H",
            "Accept: application/json",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    )
    return parse_wrk(name, completed.stdout)


def load_python(name: str, url: str, token: str, *, seconds: float, connections: int) -> Result:
    import requests

    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def worker() -> None:
        nonlocal failures
        session = requests.Session()
        session.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/json"})
        mine: list[float] = []
        bad = 0
        while time.perf_counter() < stop_at:
            began = time.perf_counter()
            try:
                ok = session.get(url, timeout=30).status_code == 200
            except requests.RequestException:
                ok = False
            mine.append(time.perf_counter() - began)
            bad += 0 if ok else 1
        with lock:
            latencies.extend(mine)
            failures += bad

    began = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(connections)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return Result(
        name=name,
        requests=len(latencies),
        seconds=time.perf_counter() - began,
        p50_s=percentile(latencies, 0.50),
        p99_s=percentile(latencies, 0.99),
        failures=failures,
    )


# --------------------------------------------------------------------------- profile


def profile_in_process(paths: list[tuple[str, str]], token: str, requests_each: int) -> str:
    from django.db import close_old_connections
    from django.test import Client

    client = Client(headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
    out = io.StringIO()
    for name, path in paths:
        client.get(path)  # warm caches before profiling
        profiler = cProfile.Profile()
        began = time.perf_counter()
        profiler.enable()
        for _ in range(requests_each):
            close_old_connections()
            client.get(path)
        profiler.disable()
        elapsed = time.perf_counter() - began
        out.write(
            f"\n### {name} ({path}): {requests_each} requests in-process, "
            f"{elapsed / requests_each * 1000:.1f} ms each under the profiler\n"
        )
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("cumulative").print_stats(30)
        stats.sort_stats("tottime").print_stats(15)
    return out.getvalue()


# --------------------------------------------------------------------------- main


def check_answers(url: str, token: str, paths: list[tuple[str, str, str]]) -> list[str]:
    import requests

    problems = []
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    for name, path, rows in paths:
        response = requests.get(url + path, headers=headers, timeout=30)
        if response.status_code != 200:
            problems.append(f"{name}: {response.status_code} {response.text[:200]}")
            continue
        body = response.json()
        if rows != "1" and len(body.get("results", ())) != int(rows):
            problems.append(f"{name}: {len(body.get('results', ()))} rows, expected {rows}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument(
        "--duration", type=float, default=9.0, help="seconds per endpoint, over all rounds"
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds, first round")
    parser.add_argument("--connections", type=int, default=4, help="concurrent connections")
    parser.add_argument("--client", choices=("wrk", "python"), default="wrk")
    parser.add_argument("--debug", action="store_true", help="serve with DEBUG=true")
    parser.add_argument(
        "--gunicorn-config",
        default=str(GUNICORN_CONFIG),
        help="gunicorn config file ('' for gunicorn's defaults)",
    )
    parser.add_argument("--deployments", type=int, default=60, help="per team")
    parser.add_argument("--decisions", type=int, default=500, help="per team")
    parser.add_argument("--alerts", type=int, default=500, help="per team")
    parser.add_argument("--profile", action="store_true", help="also cProfile in-process")
    parser.add_argument("--profile-requests", type=int, default=100)
    parser.add_argument("--admin-url", help="PostgreSQL URL to create/drop the database from")
    parser.add_argument("--db-name", default=DEFAULT_DB)
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args(argv)

    admin_url = pg.admin_url_for(args.admin_url)
    why = pg.unreachable_reason(admin_url)
    if why is not None:
        print(f"SKIP: PostgreSQL unreachable ({why})")
        return 0
    client = args.client
    if client == "wrk" and shutil.which("wrk") is None:
        print("wrk is not installed (Debian package 'wrk'): using the Python client")
        client = "python"
    db_url = pg.database_url(admin_url, args.db_name)
    pg.database_recreate(admin_url, args.db_name)
    serving.django_setup(
        {
            "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
            "DATABASE_URL": db_url,
            "DEBUG": "true" if args.debug else "false",
        }
    )
    from django.core.management import call_command

    server: serving.Server | None = None
    workdir = Path(tempfile.mkdtemp(prefix="bench-api-"))
    try:
        began = time.perf_counter()
        call_command("migrate", verbosity=0, interactive=False)
        data = populate(deployments=args.deployments, decisions=args.decisions, alerts=args.alerts)
        print(
            f"database {args.db_name}: migrated and filled in {time.perf_counter() - began:.1f} s"
        )
        timed = endpoints(data)
        config = Path(args.gunicorn_config) if args.gunicorn_config else None
        server = start_gunicorn(
            workers=args.workers,
            db_url=db_url,
            debug=args.debug,
            config=config,
            workdir=workdir,
        )
        print(
            f"server: gunicorn, {args.workers} workers, DEBUG={args.debug}, "
            f"config {config or 'none'}, on {server.url}; load: {client}, "
            f"{args.connections} connections, {args.duration:.0f} s per endpoint in "
            f"{args.rounds} rounds"
        )
        problems = check_answers(server.url, data.token, [("baseline", BASELINE_PATH, "1")])
        problems += check_answers(server.url, data.token, timed)
        if problems:
            print("WRONG: " + "; ".join(problems))
            return 1

        script = workdir / "report.lua"
        script.write_text(WRK_SCRIPT)

        def run(name: str, path: str, seconds: float) -> Result:
            url = server.url + path  # type: ignore[union-attr]
            if client == "wrk":
                return load_wrk(
                    name,
                    url,
                    data.token,
                    seconds=seconds,
                    connections=args.connections,
                    script=script,
                )
            return load_python(name, url, data.token, seconds=seconds, connections=args.connections)

        plan = [("baseline", BASELINE_PATH, "-"), *timed]
        runs = interleaved_rounds(
            plan, run, rounds=args.rounds, duration=args.duration, warmup=args.warmup
        )
        baseline = merge_runs("baseline", runs["baseline"])
        results = [(merge_runs(name, runs[name]), rows) for name, _, rows in timed]
        print()
        print(render_table(results, baseline))
        print()
        load1, load5, _ = os.getloadavg()
        spread = [r.per_s for r in runs["baseline"]]
        print(
            f"baseline over the rounds: {min(spread):.0f}-{max(spread):.0f} req/s; "
            f"load average {load1:.2f} (1 min), {load5:.2f} (5 min); the load generator, "
            f"the server and PostgreSQL share the machine's {os.cpu_count()} CPUs"
        )
        failed = sum(r.failures for r, _ in results) + baseline.failures
        verdicts = []
        for result, rows in results:
            if rows == str(PAGE_SIZE):
                ratio = ratios(result, baseline).per_s
                verdicts.append(f"{result.name} {ratio:.2f}x")
        met = all(ratios(r, baseline).per_s >= TARGET_RATIO for r, rows in results if rows != "1")
        print(
            f"target: 50-row pages at >= {TARGET_RATIO}x the baseline's req/s: "
            f"{', '.join(verdicts)} -> {'PASS' if met else 'MISS'}"
        )
        if failed:
            print(f"WRONG: {failed} requests failed")
            return 1
        if args.profile:
            print(
                profile_in_process(
                    [("baseline", BASELINE_PATH)] + [(n, p) for n, p, _ in timed],
                    data.token,
                    args.profile_requests,
                )
            )
        return 0
    finally:
        if server is not None:
            server.stop()
        database_release(admin_url, args.db_name, keep=args.keep)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
