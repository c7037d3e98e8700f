"""Ingest Alertmanager webhook payloads over HTTP in bursts and time it.

Usage::

    .venv/bin/python bench/alerts.py [--alerts 10000] [--concurrency 4] [--burst 16]
        [--server gunicorn|runserver|in-process] [--workers 3] [--baseline-alerts 400]
        [--profile] [--keep] [--seed 7]

Creates a PostgreSQL database of its own (``cp_bench_alerts`` on the server of
``DATABASE_URL``, or of ``--admin-url``), migrates it, creates a team, a receiver token and
a route (group_by alertname, deployment) so that ingestion also puts alerts into groups,
then starts the control plane on 127.0.0.1 (gunicorn, as deployed; ``runserver`` or the
in-process WSGI test client on request) and posts to the real webhook endpoint
(``/api/v1/alerts/webhook/alertmanager/``, bearer token):

- a baseline: ``--baseline-alerts`` alerts, one alert per request;
- the run: ``--alerts`` alerts as Alertmanager notifications, one alert group per payload
  (group sizes from 1 to 400), about 70 % new groups, 20 % repeats of a group sent before
  and 10 % repeats where part of the group is resolved; ``--burst`` payloads at a time from
  ``--concurrency`` sender threads.

An alert counts as ingested when the 200 of its payload arrives. Prints alerts/s, per-payload
p50/p95 latency, per-alert p95 ingest latency (each alert weighted by its payload), the
server's own request time from its log, checks what was stored against what was sent, and
PASS/MISS against 500 alerts/s. ``--profile`` (and any MISS) also profiles the view
in-process and prints where the time goes. Prints SKIP and exits 0 when PostgreSQL is
unreachable; exits 1 when what was stored is wrong. The database is dropped afterwards
unless ``--keep``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import math
import os
import pstats
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import pg, serving  # noqa: E402 - after the path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

TARGET_ALERTS_PER_S = 500.0
WEBHOOK_PATH = "/api/v1/alerts/webhook/alertmanager/"
DEFAULT_DB = "cp_bench_alerts"
ALERT_NAMES = (
    "HighQueueDepth",
    "KVCacheNearlyFull",
    "TTFTp95High",
    "GPUMemoryPressure",
    "ReplicaRestarting",
    "ErrorRateHigh",
    "TokenThroughputLow",
    "PodNotReady",
)
GROUP_SIZES = (1, 2, 5, 10, 25, 50, 100, 150, 250, 400)
GROUP_WEIGHTS = (10, 8, 8, 10, 10, 12, 14, 10, 10, 8)


# --------------------------------------------------------------------------- payloads


@dataclass
class Group:
    index: int
    alertname: str
    deployment: str
    size: int
    starts_at: datetime
    resolved: set[int] = field(default_factory=set)

    def labels(self, member: int, phase: str) -> dict[str, str]:
        return {
            "alertname": self.alertname,
            "deployment": self.deployment,
            "namespace": "bench",
            "pod": f"{self.deployment}-{member:04d}",
            "severity": "critical" if self.index % 5 == 0 else "warning",
            "prometheus": "bench/k8s",
            "phase": phase,
        }


@dataclass(frozen=True)
class Payload:
    body: bytes
    alerts: int
    kind: str  # new | repeat | resolve | single | warmup


def _go_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"


def _payload(group: Group, phase: str, receiver: str, now: datetime, kind: str) -> Payload:
    alerts = []
    for member in range(group.size):
        resolved = member in group.resolved
        labels = group.labels(member, phase)
        alerts.append(
            {
                "status": "resolved" if resolved else "firing",
                "labels": labels,
                "annotations": {
                    "summary": f"{group.alertname} on {labels['pod']}",
                    "description": "Queue depth above 50 for 5 minutes.",
                    "runbook_url": "https://runbooks.example/llm/queue",
                },
                "startsAt": _go_time(group.starts_at),
                "endsAt": _go_time(now) if resolved else "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.bench:9090/graph?g0.expr=vllm%3Aqueue",
                "fingerprint": "",
            }
        )
    firing = any(a["status"] == "firing" for a in alerts)
    common = {"alertname": group.alertname, "deployment": group.deployment}
    body = {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{group.alertname}", deployment="{group.deployment}"}}',
        "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved",
        "receiver": receiver,
        "groupLabels": common,
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.bench:9093",
        "alerts": alerts,
    }
    return Payload(json.dumps(body).encode(), len(alerts), kind)


@dataclass
class Workload:
    payloads: list[Payload]
    groups: list[Group]
    fingerprints: int  # distinct alerts
    resolved: int  # alerts resolved at the end


def build_workload(total: int, burst: int, receiver: str, seed: int, phase: str) -> Workload:
    """Payloads adding up to ``total`` alerts. A repeat or resolution only refers to a group
    sent in an earlier burst, so it never races its group's first payload."""
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    groups: list[Group] = []
    payloads: list[Payload] = []
    sent_before_burst = 0  # groups whose first payload is in an earlier burst
    alerts = 0
    while alerts < total:
        if len(payloads) % burst == 0:
            sent_before_burst = len(groups)
        left = total - alerts
        draw = rng.random()
        candidates = [g for g in groups[:sent_before_burst] if g.size <= left]
        if candidates and draw < 0.3:
            group = rng.choice(candidates)
            kind = "repeat"
            if draw < 0.1:
                kind = "resolve"
                firing = [m for m in range(group.size) if m not in group.resolved]
                if firing:
                    count = max(1, len(firing) // rng.choice((1, 2, 4)))
                    group.resolved.update(rng.sample(firing, count))
            payloads.append(_payload(group, phase, receiver, now, kind))
        else:
            size = min(left, rng.choices(GROUP_SIZES, GROUP_WEIGHTS)[0])
            index = len(groups)
            group = Group(
                index=index,
                alertname=ALERT_NAMES[index % len(ALERT_NAMES)],
                deployment=f"{phase}-d{index:04d}",
                size=size,
                starts_at=now - timedelta(minutes=rng.randint(1, 120)),
            )
            groups.append(group)
            payloads.append(_payload(group, phase, receiver, now, "new"))
        alerts += payloads[-1].alerts
    return Workload(
        payloads=payloads,
        groups=groups,
        fingerprints=sum(g.size for g in groups),
        resolved=sum(len(g.resolved) for g in groups),
    )


def single_alert_workload(count: int, receiver: str, phase: str) -> list[Payload]:
    now = datetime.now(UTC).replace(microsecond=0)
    out = []
    for i in range(count):
        group = Group(i, ALERT_NAMES[i % len(ALERT_NAMES)], f"{phase}-d{i:04d}", 1, now)
        out.append(_payload(group, phase, receiver, now, "single"))
    return out


# --------------------------------------------------------------------------- senders


Post = Callable[[bytes], tuple[int, str]]


class HttpPoster:
    """One keep-alive session per sender thread."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.local = threading.local()

    def __call__(self, body: bytes) -> tuple[int, str]:
        import requests

        session = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = requests.Session()
        response = session.post(self.url, data=body, headers=self.headers, timeout=120)
        return response.status_code, response.text[:300]


class InProcessPoster:
    """The WSGI application in this process through Django's test client."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.local = threading.local()

    def __call__(self, body: bytes) -> tuple[int, str]:
        from django.db import close_old_connections
        from django.test import Client

        client = getattr(self.local, "client", None)
        if client is None:
            client = self.local.client = Client()
        close_old_connections()
        response = client.post(
            WEBHOOK_PATH,
            data=body,
            content_type="application/json",
            headers={"Authorization": f"Bearer {self.token}"},
        )
        return response.status_code, response.content[:300].decode(errors="replace")


@dataclass
class Timing:
    alerts: int
    payloads: int
    busy_s: float
    latencies: list[tuple[float, int]]  # (seconds, alerts in the payload)
    errors: list[str]

    @property
    def alerts_per_s(self) -> float:
        return self.alerts / self.busy_s if self.busy_s else 0.0

    def payload_percentile(self, q: float) -> float:
        return percentile(sorted(s for s, _ in self.latencies), q)

    def alert_percentile(self, q: float) -> float:
        """Each alert weighted by its payload: the latency below which q of alerts landed."""
        ordered = sorted(self.latencies)
        total = sum(n for _, n in ordered)
        rank, seen = q * total, 0
        for seconds, n in ordered:
            seen += n
            if seen >= rank:
                return seconds
        return ordered[-1][0] if ordered else float("nan")


def percentile(values: list[float], q: float) -> float:
    """Nearest rank on sorted values."""
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


def send(
    post: Post, payloads: list[Payload], *, concurrency: int, burst: int, pause_s: float = 0.0
) -> Timing:
    latencies: list[tuple[float, int]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def one(payload: Payload) -> None:
        started = time.perf_counter()
        try:
            status, text = post(payload.body)
        except Exception as exc:  # noqa: BLE001 - recorded and reported
            status, text = 0, f"{type(exc).__name__}: {exc}"
        elapsed = time.perf_counter() - started
        with lock:
            if status == 200:
                latencies.append((elapsed, payload.alerts))
            else:
                errors.append(f"{status} {text}")

    busy = 0.0
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for start in range(0, len(payloads), burst):
            chunk = payloads[start : start + burst]
            began = time.perf_counter()
            list(pool.map(one, chunk))
            busy += time.perf_counter() - began
            if pause_s:
                time.sleep(pause_s)
    return Timing(
        alerts=sum(n for _, n in latencies),
        payloads=len(payloads),
        busy_s=busy,
        latencies=latencies,
        errors=errors,
    )


# --------------------------------------------------------------------------- server


def request_durations_ms(server: serving.Server) -> list[float]:
    """The webhook requests' own time, from the server's http-request log lines."""
    out = []
    for line in server.log.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "http-request" and event.get("path") == WEBHOOK_PATH:
            out.append(float(event["duration_ms"]))
    return out


def start_server(kind: str, workers: int, db_url: str, workdir: Path) -> serving.Server:
    from apps.devstack.prometheus import free_port

    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "DEBUG": "false",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    if kind == "gunicorn":
        command = serving.gunicorn_command(port, workers)
        description = f"gunicorn, {workers} sync workers"
    else:
        command = [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
        description = "manage.py runserver (threaded)"
    return serving.server_start(
        command, port=port, env=env, log=workdir / f"{kind}.log", description=description
    )


# --------------------------------------------------------------------------- checks


def check_stored(workload: Workload, phase: str, route_id: int) -> list[str]:
    from apps.alerts.models import Alert, AlertGroup, AlertStatus

    problems = []
    alerts = Alert.objects.filter(labels__phase=phase)
    count = alerts.count()
    if count != workload.fingerprints:
        problems.append(f"{phase}: {count} alerts stored, {workload.fingerprints} sent")
    resolved = alerts.filter(status=AlertStatus.RESOLVED).count()
    if resolved != workload.resolved:
        problems.append(f"{phase}: {resolved} resolved stored, {workload.resolved} sent")
    groups = AlertGroup.objects.filter(route_id=route_id, labels__deployment__startswith=phase)
    if groups.count() != len(workload.groups):
        problems.append(f"{phase}: {groups.count()} alert groups, {len(workload.groups)} sent")
    return problems


# --------------------------------------------------------------------------- profile


def profile_in_process(token: str, payloads: list[Payload], top: int = 25) -> str:
    post = InProcessPoster(token)
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for payload in payloads:
        post(payload.body)
    profiler.disable()
    elapsed = time.perf_counter() - started
    alerts = sum(p.alerts for p in payloads)
    out = io.StringIO()
    out.write(
        f"in-process, one sender, {len(payloads)} payloads / {alerts} alerts in {elapsed:.2f} s "
        f"(under the profiler: {alerts / elapsed:.0f} alerts/s)\n"
    )
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(15)
    return out.getvalue()


# --------------------------------------------------------------------------- main


def _fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--alerts", type=int, default=10_000, help="alerts in the run")
    parser.add_argument("--concurrency", type=int, default=4, help="sender threads")
    parser.add_argument("--burst", type=int, default=16, help="payloads per burst")
    parser.add_argument("--pause", type=float, default=0.0, help="seconds between bursts")
    parser.add_argument(
        "--server", choices=("gunicorn", "runserver", "in-process"), default="gunicorn"
    )
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers (as deployed)")
    parser.add_argument("--baseline-alerts", type=int, default=400, help="0: no baseline")
    parser.add_argument("--profile", action="store_true", help="profile the view in-process")
    parser.add_argument("--admin-url", help="PostgreSQL URL to create/drop the database from")
    parser.add_argument("--db-name", default=DEFAULT_DB)
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    admin_url = pg.admin_url_for(args.admin_url)
    why = pg.unreachable_reason(admin_url)
    if why is not None:
        host = urlsplit(admin_url).hostname
        print(f"SKIP: PostgreSQL unreachable at {host}:{urlsplit(admin_url).port or 5432} ({why})")
        return 0
    db_url = pg.database_url(admin_url, args.db_name)
    pg.database_recreate(admin_url, args.db_name)
    serving.django_setup({"DATABASE_URL": db_url, "DATABASE_CONN_MAX_AGE": "60", "DEBUG": "false"})
    from django.core.management import call_command
    from django.db import connections

    server: serving.Server | None = None
    workdir = Path(tempfile.mkdtemp(prefix="bench-alerts-"))
    try:
        began = time.perf_counter()
        call_command("migrate", verbosity=0, interactive=False)
        print(f"database {args.db_name}: migrated in {time.perf_counter() - began:.1f} s")

        from apps.accounts.models import Team
        from apps.alerts.models import Alert, Route
        from apps.alerts.services import receiver_create

        team = Team.objects.create(slug="bench", name="Bench")
        receiver, token = receiver_create(team=team, name="bench-alertmanager", actor=None)
        route = Route.objects.create(
            team=team, name="everything", group_by=["alertname", "deployment"]
        )

        if args.server == "in-process":
            post: Post = InProcessPoster(token)
            description = "in-process WSGI (django.test.Client), no HTTP"
        else:
            server = start_server(args.server, args.workers, db_url, workdir)
            post = HttpPoster(server.url + WEBHOOK_PATH, token)
            description = f"{server.description} on {server.url}"
        print(f"server: {description}; senders: {args.concurrency} threads")

        warmup = single_alert_workload(max(8, 3 * args.workers), receiver.name, "warmup")
        warm = send(post, warmup, concurrency=args.concurrency, burst=len(warmup))
        if warm.errors:
            print(f"warm-up failed: {warm.errors[:3]}")
            return 1

        baseline: Timing | None = None
        if args.baseline_alerts:
            singles = single_alert_workload(args.baseline_alerts, receiver.name, "single")
            baseline = send(post, singles, concurrency=args.concurrency, burst=args.burst)

        workload = build_workload(args.alerts, args.burst, receiver.name, args.seed, "run")
        kinds = {
            k: sum(1 for p in workload.payloads if p.kind == k)
            for k in ("new", "repeat", "resolve")
        }
        sizes = sorted(p.alerts for p in workload.payloads)
        print(
            f"workload: {sum(sizes)} alerts in {len(sizes)} payloads "
            f"({kinds['new']} new groups, {kinds['repeat']} repeats, {kinds['resolve']} with "
            f"resolutions; {workload.fingerprints} distinct alerts in {len(workload.groups)} "
            f"groups; payload sizes {sizes[0]}-{sizes[-1]}, median {sizes[len(sizes) // 2]}); "
            f"bursts of {args.burst}"
        )
        before = len(request_durations_ms(server)) if server else 0
        run = send(
            post,
            workload.payloads,
            concurrency=args.concurrency,
            burst=args.burst,
            pause_s=args.pause,
        )
        server_ms = request_durations_ms(server)[before:] if server else []

        problems = [f"HTTP error: {e}" for e in run.errors[:5]]
        if baseline is not None and baseline.errors:
            problems += [f"baseline HTTP error: {e}" for e in baseline.errors[:5]]
        problems += check_stored(workload, "run", route.pk)

        print()
        print("| phase | alerts | payloads | alerts/s | payload p50 | payload p95 | alert p95 |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        rows = [("batched (run)", run)]
        if baseline is not None:
            rows.insert(0, ("one alert per request", baseline))
        for name, timing in rows:
            print(
                f"| {name} | {timing.alerts} | {timing.payloads} | {timing.alerts_per_s:.0f} | "
                f"{_fmt_ms(timing.payload_percentile(0.5))} | "
                f"{_fmt_ms(timing.payload_percentile(0.95))} | "
                f"{_fmt_ms(timing.alert_percentile(0.95))} |"
            )
        print()
        if server_ms:
            ordered = sorted(server_ms)
            print(
                f"server-side request time (its log): p50 {percentile(ordered, 0.5):.0f} ms, "
                f"p95 {percentile(ordered, 0.95):.0f} ms, max {ordered[-1]:.0f} ms over "
                f"{len(ordered)} requests"
            )
        if baseline is not None and baseline.alerts_per_s:
            print(
                f"batching: {run.alerts_per_s / baseline.alerts_per_s:.1f}x the alerts/s of "
                "one alert per request"
            )
        per_alert_ms = 1000 * run.busy_s / max(1, run.alerts)
        print(
            f"busy time {run.busy_s:.2f} s, {per_alert_ms:.2f} ms per alert; "
            f"stored: {Alert.objects.filter(labels__phase='run').count()} distinct alerts; "
            f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on "
            f"{os.cpu_count()} CPUs"
        )
        verdict = "PASS" if run.alerts_per_s >= TARGET_ALERTS_PER_S else "MISS"
        print(
            f"{verdict}: {run.alerts_per_s:.0f} alerts/s ingested "
            f"(target >= {TARGET_ALERTS_PER_S:.0f} alerts/s); "
            f"p95 ingest latency {_fmt_ms(run.alert_percentile(0.95))} per alert"
        )
        if problems:
            print("WRONG:")
            for problem in problems:
                print(f"  {problem}")

        if args.profile or verdict == "MISS":
            sample = build_workload(
                min(args.alerts, 3000), args.burst, receiver.name, args.seed + 1, "profile"
            )
            print()
            print(profile_in_process(token, sample.payloads))
        return 1 if problems else 0
    finally:
        if server is not None:
            server.stop()
        connections.close_all()
        if args.keep:
            print(f"kept database {args.db_name} ({db_url}); server log in {workdir}")
        else:
            pg.database_drop(admin_url, args.db_name)
            for path in workdir.iterdir():
                path.unlink()
            workdir.rmdir()


if __name__ == "__main__":
    sys.exit(main())
