"""The console's fleet overview for a large fleet: server-side render time and query count.

Creates a team with N deployments (default 1,000), each with its latest observations, 30
minutes of request-rate samples (one a minute) and of decisions (one per
``AUTOSCALING_INTERVAL_S``, with a scale-up and a scale-down: what the sparklines read), a
TTFT SLO with
its status, for one in ten a firing alert and for one in four a degradation policy (one in
twenty at level 1: the overview's degradation column); then renders ``/console/`` as a viewer of
that team through Django's test client (the whole view, template included, no network) and
prints the median and maximum of ``--repeat`` renders and the number of SQL queries of one.
Figures are printed, never asserted. SQLite in a temporary directory by default;
``--postgres`` uses a PostgreSQL database of its own (created and dropped).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import pg, serving  # noqa: E402 - after the path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

DEFAULT_DB = "cp_bench_console"
TARGET_MS = 300.0
SPARK_MINUTES = 30


def populate(n: int) -> object:
    """N deployments of one team with what the overview shows; returns a viewer of it."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from apps.accounts.models import Membership, Role, Team
    from apps.alerts.models import Alert, AlertSource, AlertStatus
    from apps.autoscaling.models import DecisionRecord, ScaleAction
    from apps.inventory.models import Cluster, Deployment, LLMModel
    from apps.metrics.models import DeploymentMetrics, MetricSample
    from apps.slos.models import LatencyMetric, SliKind, Slo, SloState, SloStatus
    from apps.toggles.models import DegradationPolicy, DegradationState

    now = timezone.now()
    team = Team.objects.create(slug="bench", name="Bench")
    user = get_user_model().objects.create_user("bench-viewer")  # logged in by force_login
    Membership.objects.create(team=team, user=user, role=Role.VIEWER)
    cluster = Cluster.objects.create(team=team, name="bench", kind="kubernetes")
    model = LLMModel.objects.create(team=team, name="org/bench", version="v1", parameter_count=1)
    deployments = Deployment.objects.bulk_create(
        Deployment(
            team=team,
            name=f"d-{i:05d}",
            model=model,
            cluster=cluster,
            framework="vllm",
            target_kind="k8s_deployment",
            target_name=f"d-{i:05d}",
            gpu_type="a100-80gb",
            min_replicas=1,
            max_replicas=8,
            prometheus_selector=f'{{deployment="d-{i:05d}"}}',
        )
        for i in range(n)
    )
    obs = {
        signal: {"value": value, "ts": now.timestamp(), "status": "ok", "reason": ""}
        for signal, value in (("queue_length", 3.0), ("kv_cache_usage", 0.4), ("ttft_p95", 0.3))
    }
    DeploymentMetrics.objects.bulk_create(
        DeploymentMetrics(deployment=d, status="ok", observations=obs, collected_at=now)
        for d in deployments
    )
    minutes = [now - timedelta(minutes=m) for m in range(SPARK_MINUTES, 0, -1)]
    MetricSample.objects.bulk_create(
        (
            MetricSample(deployment=d, signal="request_rate", ts=ts, value=10.0 + i % 7)
            for d in deployments
            for i, ts in enumerate(minutes)
        ),
        batch_size=5000,
    )
    step = settings.AUTOSCALING_INTERVAL_S
    n_ticks = int(SPARK_MINUTES * 60 / step)
    ticks = [now - timedelta(seconds=i * step) for i in range(n_ticks, 0, -1)]
    counts = [2 if len(ticks) // 3 <= i < 2 * len(ticks) // 3 else 1 for i in range(len(ticks))]
    states = {
        n: {"spec": n, "ready": n, "starting": [], "observed_spec": n, "last_applied": n}
        for n in (1, 2)
    }
    DecisionRecord.objects.bulk_create(
        (
            DecisionRecord(
                deployment=d, at=ts, current_replicas=n, desired_replicas=n, rule="hold",
                reason="Within tolerance.", inputs={"replicas": states[n]}, dry_run=False,
            )
            for d in deployments
            for ts, n in zip(ticks, counts, strict=True)
        ),
        batch_size=5000,
    )  # fmt: skip
    changes = [
        (i, counts[i - 1], counts[i]) for i in range(1, n_ticks) if counts[i - 1] != counts[i]
    ]
    ScaleAction.objects.bulk_create(
        ScaleAction(
            deployment=d, from_replicas=before, to_replicas=after, status="succeeded",
            idempotency_key=f"bench-{d.pk}-{i}", attempts=1, finished_at=ticks[i],
        )
        for d in deployments
        for i, before, after in changes
    )  # fmt: skip
    slos = Slo.objects.bulk_create(
        Slo(
            team=team, deployment=d, name=f"ttft-{d.name}", sli_kind=SliKind.LATENCY,
            latency_metric=LatencyMetric.TTFT, threshold_seconds=0.5, objective_percent=99,
            window="28d",
        )
        for d in deployments
    )  # fmt: skip
    SloStatus.objects.bulk_create(
        SloStatus(slo=s, state=SloState.OK, sli=0.995, budget_remaining=0.5, evaluated_at=now)
        for s in slos
    )
    Alert.objects.bulk_create(
        Alert(
            fingerprint=f"{i:016x}", team=team, deployment=d, source=AlertSource.API,
            name="HighQueueDepth", labels={"alertname": "HighQueueDepth", "deployment": d.name},
            status=AlertStatus.FIRING, starts_at=now, received_at=now,
        )
        for i, d in enumerate(deployments)
        if i % 10 == 0
    )  # fmt: skip
    policies = DegradationPolicy.objects.bulk_create(
        DegradationPolicy(
            team=team, deployment=d, name=f"degrade-{d.name}",
            triggers=[{"kind": "slo_state", "slo": s.pk}],
            levels=[{"name": "cap", "set": {"max_output_tokens": 512}}],
        )
        for i, (d, s) in enumerate(zip(deployments, slos, strict=True))
        if i % 4 == 0
    )  # fmt: skip
    DegradationState.objects.bulk_create(
        DegradationState(policy=p, level=1 if i % 5 == 0 else 0, level_since=now)
        for i, p in enumerate(policies)
    )
    if connection.vendor == "postgresql":  # statistics as autovacuum would have them
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return user


def measure(user: object, repeat: int) -> tuple[list[float], list[float], int, int]:
    """Render times (wall and this process's CPU, s) of /console/, the query count of one
    render, and the rows shown. The CPU time leaves out waiting for another process (the
    PostgreSQL server) and for a busy machine's other work, so it moves less between runs."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(user)  # type: ignore[arg-type]
    response = client.get("/console/")  # warm-up: templates compiled, caches filled
    assert response.status_code == 200, response.status_code
    rows = response.content.decode().count('data-field="replicas"')
    times, cpu = [], []
    for _ in range(repeat):
        began, began_cpu = time.perf_counter(), time.process_time()
        client.get("/console/")
        times.append(time.perf_counter() - began)
        cpu.append(time.process_time() - began_cpu)
    with CaptureQueriesContext(connection) as ctx:
        client.get("/console/")
    return times, cpu, len(ctx.captured_queries), rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=9, help="timed renders (median)")
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL instead of SQLite")
    parser.add_argument("--admin-url", help="PostgreSQL URL to create/drop the database from")
    parser.add_argument("--db-name", default=DEFAULT_DB)
    args = parser.parse_args(argv)

    workdir = tempfile.mkdtemp(prefix="bench-console-")
    env = {"CONTROLPLANE_VAR_DIR": workdir, "DEBUG": "false", "LOG_LEVEL": "WARNING"}
    admin_url = pg.admin_url_for(args.admin_url) if args.postgres else ""
    if args.postgres:
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

    try:
        call_command("migrate", verbosity=0, interactive=False)
        began = time.perf_counter()
        user = populate(args.deployments)
        print(f"{args.deployments} deployments populated in {time.perf_counter() - began:.1f} s")
        times, cpu, queries, rows = measure(user, args.repeat)
        median_ms = statistics.median(times) * 1000
        print(f"database:        {connection.vendor}")
        print(f"rows rendered:   {rows}")
        print(
            f"render median:   {median_ms:.0f} ms (max {max(times) * 1000:.0f} ms, "
            f"{args.repeat} renders; target <= {TARGET_MS:.0f} ms)"
        )
        print(f"render CPU:      {statistics.median(cpu) * 1000:.0f} ms median "
              "(this process only: on SQLite the whole render)")  # fmt: skip
        print(f"queries:         {queries}")
    finally:
        connection.close()
        if args.postgres:
            pg.database_drop(admin_url, args.db_name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
