"""Time the gateway read path (OFREP bulk evaluation, snapshot 304s, full snapshots) under
gunicorn with ``wrk``, against a constant view of the same server, and the time from a
toggle change to a long-polling client seeing it.

Usage::

    .venv/bin/python -m bench.toggles [--workers 2] [--duration 10] [--rounds 2]
        [--connections 8] [--toggles 12] [--changes 50] [--gunicorn-config PATH]
        [--worker-class CLASS] [--keep] [--db-name cp_bench_toggles]

Creates a PostgreSQL database of its own (``cp_bench_toggles`` on the server of
``DATABASE_URL``, or of ``--admin-url``), migrates it, creates a team with ``--toggles``
team-wide toggles (every type and preset, targeting rules and a split; a few overridden by
a degradation level), a deployment with its own toggles and a gateway token, then starts
``gunicorn`` with ``--workers`` workers and the deployed configuration
(``deploy/gunicorn.conf.py``: threaded workers), ``DEBUG=false``, on a free loopback port.
``REDIS_URL`` is passed on: the team's version lives there (without it the file cache is
used, which is slower and not how production runs; the bench says so).

Endpoints, each checked before timing:

- ``constant``: ``GET /toggles/v1/bench-constant`` (``bench/toggles_urls.py``), a plain
  Django view answering a fixed body with no authentication, behind the gateway paths'
  middleware (``TokenPathMiddleware``): the ceiling, and what the ratios divide by.
- ``constant, full middleware``: the same view at ``/bench/constant``, behind every other
  view's middleware (sessions, CSRF, ...), for reference.
- ``(a) OFREP bulk``: ``POST /ofrep/v1/evaluate/flags`` with a context (targeting key,
  tier, priority, deployment): every toggle evaluated per request.
- ``(b) snapshot 304``: ``GET /toggles/v1/snapshot?deployment=chat`` with the current ETag
  in ``If-None-Match``.
- ``(c) snapshot``: the same without it (the full body).

``wrk`` (Debian package ``wrk``) drives ``--connections`` keep-alive connections; the
request bodies and headers are Lua scripts written to a temporary directory, whose
``done()`` prints wrk's own p50/p99. Each endpoint runs ``--duration`` seconds split into
``--rounds`` rounds, every round running all endpoints in turn (constant first), so a change
in the machine's load weighs on all alike. Then ``--changes`` times: a client long-polls
``/toggles/v1/changes``, the bench changes a toggle (a service call in this process: its
own transaction, then the announcement through Redis), and the time from the start of that
call to the client's answer is recorded; p50/p95/max are printed.

Targets: (b) >= 3,000 req/s; (a) and (c) >= 2,000 req/s, p99 <= 10 ms and >= 0.7x the
constant view's req/s; a change seen within 1 s at p95. Prints SKIP and exits 0 without
PostgreSQL or wrk; exits 1 when an answer is wrong or a request failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import pg, serving  # noqa: E402 - after the path
from bench.api import (  # noqa: E402
    WRK_SCRIPT,
    Result,
    database_release,
    interleaved_rounds,
    load_wrk,
    merge_runs,
    percentile,
    ratios,
)

SETTINGS_MODULE = "bench.toggles_settings"
DEFAULT_DB = "cp_bench_toggles"
GUNICORN_CONFIG = ROOT / "deploy" / "gunicorn.conf.py"
CONSTANT = "/toggles/v1/bench-constant"
FULL_STACK_CONSTANT = "/bench/constant"
BULK = "/ofrep/v1/evaluate/flags"
SNAPSHOT = "/toggles/v1/snapshot?deployment=chat"
CHANGES = "/toggles/v1/changes"
CONTEXT = {
    "context": {
        "targetingKey": "user-1234",
        "tier": "free",
        "priority": "interactive",
        "region": "eu-west-1",
        "deployment": "chat",
    }
}
TARGET_304 = 3000.0
TARGET_RATE = 2000.0
TARGET_P99_S = 0.010
TARGET_RATIO = 0.7
TARGET_CHANGE_S = 1.0


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Dataset:
    token: str
    toggle_ids: list[int]


def populate(*, toggles: int) -> Dataset:
    """A team with ``toggles`` team-wide toggles of every kind and a deployment ``chat``
    with two of its own, plus a gateway token."""
    from apps.accounts.models import Team
    from apps.inventory.models import (
        Cluster,
        ClusterKind,
        Deployment,
        GpuType,
        LLMModel,
        ScaleTargetKind,
        ServingFramework,
    )
    from apps.toggles.services import gateway_token_create, toggle_create, toggle_override_set

    team = Team.objects.create(slug="bench", name="Bench")
    Team.objects.create(slug="neighbours", name="Neighbours")
    deployment = Deployment.objects.create(
        team=team,
        name="chat",
        model=LLMModel.objects.create(team=team, name="org/llama-8b", version="v1"),
        cluster=Cluster.objects.create(
            team=team, name="c1", kind=ClusterKind.KUBERNETES, default_namespace="llm"
        ),
        framework=ServingFramework.VLLM,
        target_kind=ScaleTargetKind.K8S_DEPLOYMENT,
        gpu_type=GpuType.A100_80GB,
        min_replicas=1,
        max_replicas=4,
    )

    def rule(attribute: str, op: str, value: object, served: object) -> dict[str, object]:
        return {"conditions": [{"attribute": attribute, "op": op, "value": value}], "value": served}

    arms = [{"variant": "a", "value": "large", "weight": 80},
            {"variant": "b", "value": "small", "weight": 20}]  # fmt: skip
    split = [{"conditions": [], "split": arms}]
    kinds: list[dict[str, object]] = [
        {"value_type": "boolean", "value": True, "off_value": False,
         "rules": [rule("tier", "in", ["free", "trial"], False)]},
        {"preset": "max_output_tokens", "value": 1024,
         "rules": [rule("priority", "eq", "batch", 256)]},
        {"value_type": "string", "value": "large", "off_value": "small", "rules": split},
        {"preset": "shed_fraction", "value": {"low": 0.2, "batch": 0.5}},
        {"value_type": "string", "value": "ok", "off_value": "",
         "rules": [rule("region", "matches", "eu-.*", "eu")]},
        {"value_type": "object", "value": {"rpm": 600, "burst": 50}, "off_value": {}},
    ]  # fmt: skip
    made = []
    for i in range(toggles):
        spec: dict[str, Any] = kinds[i % len(kinds)]
        made.append(toggle_create(team=team, key=f"t{i:02d}", actor=None, enabled=True, **spec))
    for toggle in made[1::5]:
        toggle_override_set(toggle=toggle, value=toggle.off_value, level=1,
                            source="policy:bench", reason="bench")  # fmt: skip
    toggle_create(team=team, deployment=deployment, key="t01", actor=None,
                  preset="max_output_tokens", value=512, enabled=True)  # fmt: skip
    toggle_create(team=team, deployment=deployment, key="cache_only", actor=None,
                  preset="cache_only", value=False, enabled=True)  # fmt: skip
    _, secret = gateway_token_create(team=team, name="bench", actor=None)
    return Dataset(token=secret, toggle_ids=[t.pk for t in made])


# --------------------------------------------------------------------------- load


def lua_script(
    *, method: str = "GET", body: str = "", headers: dict[str, str] | None = None
) -> str:
    """A wrk script: the request's method, body and headers, then WRK_SCRIPT's report."""
    lines = [f"wrk.method = {json.dumps(method)}"]
    if body:
        lines.append(f"wrk.body = {json.dumps(body)}")
        lines.append('wrk.headers["Content-Type"] = "application/json"')
    for name, value in (headers or {}).items():
        lines.append(f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}")
    return "\n".join(lines) + "\n" + WRK_SCRIPT


def check_answers(base: str, token: str) -> tuple[list[str], str]:
    """Problems with the endpoints' answers (empty: all right), and the snapshot's ETag."""
    import requests

    auth = {"Authorization": f"Bearer {token}"}
    problems = []
    constant = requests.get(base + CONSTANT, timeout=10)
    if constant.status_code != 200:
        problems.append(f"constant: {constant.status_code}")
    bulk = requests.post(base + BULK, json=CONTEXT, headers=auth, timeout=10)
    if bulk.status_code != 200 or not bulk.json().get("flags"):
        problems.append(f"bulk: {bulk.status_code} {bulk.text[:200]}")
    snapshot = requests.get(base + SNAPSHOT, headers=auth, timeout=10)
    etag = snapshot.headers.get("ETag", "")
    if snapshot.status_code != 200 or not etag:
        problems.append(f"snapshot: {snapshot.status_code} {snapshot.text[:200]}")
    again = requests.get(base + SNAPSHOT, headers={**auth, "If-None-Match": etag}, timeout=10)
    if again.status_code != 304:
        problems.append(f"snapshot 304: {again.status_code}")
    return problems, etag


def change_latencies(base: str, token: str, toggle_id: int, count: int) -> list[float]:
    """Seconds from the start of a toggle change (a service call here) to a long-polling
    client's answer, ``count`` times."""
    import requests

    from apps.toggles.models import Toggle
    from apps.toggles.services import toggle_update

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    version = session.get(base + SNAPSHOT, timeout=10).json()["version"]
    latencies = []
    for i in range(count):
        answered: list[tuple[float, int, int]] = []

        def poll(after: int = version, answered: list[tuple[float, int, int]] = answered) -> None:
            response = session.get(
                base + CHANGES, params={"version": after, "wait": 10}, timeout=20
            )
            body = response.json() if response.status_code == 200 else {}
            answered.append((time.perf_counter(), response.status_code, body.get("version", 0)))

        waiter = threading.Thread(target=poll)
        waiter.start()
        time.sleep(0.15)  # the request is waiting on the server by now
        toggle = Toggle.objects.get(pk=toggle_id)
        started = time.perf_counter()
        toggle_update(toggle=toggle, actor=None, enabled=i % 2 == 1, reason="bench")
        waiter.join(timeout=30)
        if not answered or answered[0][1] != 200:
            raise RuntimeError(f"change {i}: the long-poll answered {answered}")
        latencies.append(answered[0][0] - started)
        version = answered[0][2]
    return latencies


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-class", default="", help="override the config's (e.g. sync)")
    parser.add_argument("--duration", type=float, default=10.0, help="s per endpoint, all rounds")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds, first round")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--toggles", type=int, default=12, help="team-wide toggles")
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--gunicorn-config", default=str(GUNICORN_CONFIG))
    parser.add_argument("--admin-url", help="PostgreSQL URL to create/drop the database from")
    parser.add_argument("--db-name", default=DEFAULT_DB)
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args(argv)

    admin_url = pg.admin_url_for(args.admin_url)
    why = pg.unreachable_reason(admin_url)
    if why is not None:
        print(f"SKIP: PostgreSQL unreachable ({why})")
        return 0
    if shutil.which("wrk") is None:
        print("SKIP: wrk is not installed (Debian package 'wrk')")
        return 0
    if not os.environ.get("REDIS_URL"):
        print("note: REDIS_URL is unset: the version lives in the file cache (not production)")
    db_url = pg.database_url(admin_url, args.db_name)
    pg.database_recreate(admin_url, args.db_name)
    serving.django_setup(
        {"DJANGO_SETTINGS_MODULE": SETTINGS_MODULE, "DATABASE_URL": db_url, "DEBUG": "false"}
    )
    from django.core.management import call_command

    from apps.devstack.prometheus import free_port

    server: serving.Server | None = None
    workdir = Path(tempfile.mkdtemp(prefix="bench-toggles-"))
    try:
        call_command("migrate", verbosity=0, interactive=False)
        data = populate(toggles=args.toggles)
        port = free_port()
        config = Path(args.gunicorn_config) if args.gunicorn_config else None
        command = serving.gunicorn_command(port, args.workers, config)
        if args.worker_class:
            command += ["--worker-class", args.worker_class]
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
            "DATABASE_URL": db_url,
            "DEBUG": "false",
            "PYTHONUNBUFFERED": "1",
        }
        server = serving.server_start(
            command, port=port, env=env, log=workdir / "gunicorn.log", description="gunicorn"
        )
        kind = args.worker_class or "the config's (gthread, 8 threads)"
        print(
            f"server: gunicorn, {args.workers} workers, worker class {kind}, config "
            f"{config or 'none'}, on {server.url}; wrk, {args.connections} connections, "
            f"{args.duration:.0f} s per endpoint in {args.rounds} rounds; "
            f"{args.toggles + 2} toggles in the deployment's scope"
        )
        problems, etag = check_answers(server.url, data.token)
        if problems:
            print("WRONG: " + "; ".join(problems))
            return 1
        auth = {"Authorization": f"Bearer {data.token}"}
        plan = [
            ("constant", CONSTANT, lua_script()),
            ("constant, full middleware", FULL_STACK_CONSTANT, lua_script()),
            ("(a) OFREP bulk", BULK,
             lua_script(method="POST", body=json.dumps(CONTEXT), headers=auth)),
            ("(b) snapshot 304", SNAPSHOT, lua_script(headers={**auth, "If-None-Match": etag})),
            ("(c) snapshot", SNAPSHOT, lua_script(headers=auth)),
        ]  # fmt: skip
        scripts = {}
        for number, (name, _, text) in enumerate(plan):
            scripts[name] = workdir / f"s{number}.lua"
            scripts[name].write_text(text)

        def run(name: str, path: str, seconds: float) -> Result:
            # The token is in the script's headers; load_wrk's own header is harmless.
            return load_wrk(
                name,
                server.url + path,  # type: ignore[union-attr]
                data.token,
                seconds=seconds,
                connections=args.connections,
                script=scripts[name],
            )

        runs = interleaved_rounds(
            plan, run, rounds=args.rounds, duration=args.duration, warmup=args.warmup
        )
        baseline = merge_runs("constant", runs["constant"])
        merged = {name: merge_runs(name, runs[name]) for name, _, _ in plan}
        print()
        print("| endpoint | req/s | p50 | p99 | req/s vs constant | target | |")
        print("|---|---:|---:|---:|---:|---|---|")
        failed = 0
        all_met = True
        for name, _, _ in plan:
            result = merged[name]
            failed += result.failures
            ratio = ratios(result, baseline).per_s
            if name.startswith("constant"):
                target, met = "-", True
            elif name.startswith("(b)"):
                target, met = f">= {TARGET_304:.0f} req/s", result.per_s >= TARGET_304
            else:
                target = f">= {TARGET_RATE:.0f} req/s, p99 <= 10 ms, >= {TARGET_RATIO}x"
                met = (
                    result.per_s >= TARGET_RATE
                    and result.p99_s <= TARGET_P99_S
                    and ratio >= TARGET_RATIO
                )
            all_met = all_met and met
            print(
                f"| {name} | {result.per_s:.0f} | {result.p50_s * 1000:.2f} ms "
                f"| {result.p99_s * 1000:.2f} ms | {ratio:.2f}x | {target} "
                f"| {verdict(met) if not name.startswith('constant') else ''} |"
            )
        print()
        change_met = True
        if args.changes > 0:
            latencies = change_latencies(server.url, data.token, data.toggle_ids[0], args.changes)
            p95 = percentile(latencies, 0.95)
            change_met = p95 <= TARGET_CHANGE_S
            print(
                f"change -> long-polling client, {len(latencies)} changes: "
                f"p50 {percentile(latencies, 0.5) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, "
                f"max {max(latencies) * 1000:.1f} ms (target p95 <= 1 s: {verdict(change_met)})"
            )
        else:
            print("change stream: not measured (--changes 0)")
        load1, load5, _ = os.getloadavg()
        spread = [r.per_s for r in runs["constant"]]
        print(
            f"constant view over the rounds: {min(spread):.0f}-{max(spread):.0f} req/s; load "
            f"average {load1:.2f} (1 min), {load5:.2f} (5 min); wrk, gunicorn, Redis and "
            f"PostgreSQL share the machine's {os.cpu_count()} CPUs"
        )
        print(f"targets: {verdict(all_met and change_met)}")
        if failed:
            print(f"WRONG: {failed} requests failed")
            return 1
        return 0
    finally:
        if server is not None:
            server.stop()
        database_release(admin_url, args.db_name, keep=args.keep)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
