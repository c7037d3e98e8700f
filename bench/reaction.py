"""Time from a load step to the actuator call, through the live control loop.

Usage::

    .venv/bin/python bench/reaction.py [--steps 8] [--scrape-s 5] [--eval-s 5]
        [--multiplier 25] [--rate-window 1m] [--seed 7]

Starts, all on 127.0.0.1: the fleet simulator in real time, a real Prometheus
(``EmbeddedPrometheus``) scraping it every ``--scrape-s`` seconds, and the control loop
every ``--eval-s`` seconds on a fixed schedule: ``metrics_collect_shard`` (the collection
task's body), ``deployment_evaluate`` and ``scale_action_execute`` for the action it
created, with the simulator's actuator (``SimulatedActuator``) wrapped to note the wall
time of every ``set_replicas`` call. The policy is one ``queue_length`` target of 3
waiting requests per replica (HPA's 10 % tolerance), in enforce mode.

Each step needs a calm deployment at its minimum of one replica. Putting the same one
back takes long: a vLLM pod keeps its own waiting queue, so the backlog a 25x step leaves
on the first replica drains at that one replica's pace (about a minute), whatever is
added. So the simulator serves one identical copy of the deployment per step (vLLM,
steady ``--rps`` Poisson traffic, one replica), all scraped and collected from the
start, and the loop evaluates one copy at a time. A step switches the loop to the next
copy, waits for two evaluations at one replica on fresh data, then at a random moment
(seeded) relative to the evaluation and scrape schedules multiplies its traffic by
``--multiplier`` and waits for the first scale-up ``set_replicas`` call: that wait is the
step's reaction time. The copy's traffic then goes back to normal.

It prints every step, then p50 / p95 / max (nearest rank), the target (p95 <= 15 s: a
Kubernetes HPA syncs every 15 s on top of its metrics pipeline's lag, KEDA polls every
30 s by default) with PASS or MISS, and where the time went: waiting for a scrape that
carried the step (from Prometheus' own scrape timestamps, ``up``), waiting for the next
evaluation, and the evaluation itself (collection, decision, actuator call).

``queue_length`` is a gauge, read as it was at the last scrape; the rate window
(``METRICS_RATE_WINDOW``, ``--rate-window``) only applies to rate()-based signals
(latency percentiles, token throughput), which would need part of the window to pass
before a step shows. The database is a throw-away SQLite file; nothing is kept. Exits 0
with a SKIP line when the prometheus binary is not installed, 1 on a MISS.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_P95_S = 15.0
NAMESPACE = "bench"
NAME = "chat"


@dataclass
class Call:
    at: float  # wall clock, when set_replicas was called
    target: str
    replicas: int


@dataclass
class Tick:
    deployment_id: int
    started: float  # wall clock
    ended: float
    current: int
    desired: int
    rule: str
    queue: float | None
    calls: list[Call] = field(default_factory=list)


@dataclass
class Step:
    number: int
    t0: float  # wall clock of the load step
    eval_phase_s: float  # t0 after the latest evaluation tick of the schedule
    call: Call | None = None
    tick: Tick | None = None
    scrape_used: float | None = None  # the scrape the deciding evaluation read

    @property
    def latency(self) -> float | None:
        return None if self.call is None else self.call.at - self.t0


class RecordingActuator:
    """The simulator's actuator, noting the wall time of every set_replicas call."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[Call] = []
        self._lock = threading.Lock()

    def get_scale(self, target: Any) -> Any:
        return self.inner.get_scale(target)

    def set_replicas(self, target: Any, replicas: int, *, idempotency_key: str) -> Any:
        call = Call(time.time(), target.name, replicas)
        with self._lock:
            self.calls.append(call)
        return self.inner.set_replicas(target, replicas, idempotency_key=idempotency_key)

    def calls_since(self, t: float, target: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.at >= t and target in (None, c.target)]


class ControlLoop(threading.Thread):
    """Collect, evaluate and act every ``eval_s`` seconds on a fixed schedule, as the
    periodic tasks do; a tick that overruns skips the slots it missed. Collection covers
    every deployment (one batched query per signal); only ``deployment_id`` is evaluated."""

    def __init__(self, deployment_id: int, actuator: RecordingActuator, eval_s: float) -> None:
        super().__init__(name="control-loop", daemon=True)
        self.deployment_id = deployment_id
        self.actuator = actuator
        self.eval_s = eval_s
        self.origin = time.time()
        self.ticks: list[Tick] = []
        self.tick_lock = threading.Lock()  # held during a tick
        self.errors: list[str] = []
        self._stopping = threading.Event()
        self._wake = threading.Event()

    def next_slot(self, after: float) -> float:
        return self.origin + math.ceil((after - self.origin) / self.eval_s) * self.eval_s

    def shift(self, offset_s: float) -> None:
        """Move the schedule: ticks from now on fall ``offset_s`` after now, modulo
        ``eval_s``. The scrape schedule stays where Prometheus put it."""
        self.origin = time.time() + offset_s
        self._wake.set()

    def run(self) -> None:
        from django.db import connections

        slot = self.origin
        try:
            while not self._stopping.is_set():
                if self._wake.wait(max(0.0, slot - time.time())):
                    self._wake.clear()
                    slot = self.next_slot(time.time())
                    continue
                if self._stopping.is_set():
                    break
                with self.tick_lock:
                    try:
                        self.tick()
                    except Exception as exc:  # noqa: BLE001 - a benchmark keeps going
                        self.errors.append(repr(exc))
                slot = self.next_slot(time.time() + 1e-3)
        finally:
            connections.close_all()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self.join(timeout=30)

    def tick(self) -> None:
        from apps.autoscaling.actions import scale_action_execute
        from apps.autoscaling.evaluation import deployment_evaluate
        from apps.autoscaling.models import ActionStatus, ScaleAction
        from apps.inventory.models import Deployment
        from apps.metrics.services import metrics_collect_shard

        started = time.time()
        metrics_collect_shard(shard=0, shards=1)
        deployment = Deployment.objects.get(pk=self.deployment_id)
        record = deployment_evaluate(deployment=deployment, actuator=self.actuator)
        pending = ScaleAction.objects.filter(deployment=deployment, status=ActionStatus.PENDING)
        for action_id in pending.values_list("pk", flat=True):
            scale_action_execute(action_id=action_id, actuator_factory=lambda _d: self.actuator)
        ended = time.time()
        if record is None:
            return
        queue = (record.inputs.get("observations") or {}).get("queue_length") or {}
        self.ticks.append(
            Tick(
                deployment_id=deployment.pk,
                started=started,
                ended=ended,
                current=record.current_replicas,
                desired=record.desired_replicas,
                rule=record.rule,
                queue=queue.get("value") if queue.get("status") == "ok" else None,
                calls=[c for c in self.actuator.calls_since(started) if c.at <= ended],
            )
        )


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def scrape_times(prom_url: str, since: float) -> list[float]:
    """When Prometheus scraped the simulator (the timestamps of its ``up`` samples)."""
    import requests

    span = max(60, math.ceil(time.time() - since) + 30)
    response = requests.get(
        f"{prom_url}/api/v1/query",
        params={"query": f'up{{job="fleetsim"}}[{span}s]', "time": f"{time.time():.3f}"},
        timeout=10,
    )
    response.raise_for_status()
    result = response.json()["data"]["result"]
    return sorted(float(ts) for series in result for ts, _ in series["values"])


def wait_until(predicate: Any, timeout_s: float, poll_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll_s)
    return bool(predicate())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="load steps to time")
    parser.add_argument("--scrape-s", type=float, default=5.0, help="Prometheus scrape interval")
    parser.add_argument("--eval-s", type=float, default=5.0, help="control loop interval")
    parser.add_argument("--multiplier", type=float, default=25.0, help="traffic during a step")
    parser.add_argument("--rps", type=float, default=2.0, help="normal traffic, requests/s")
    parser.add_argument("--rate-window", default="1m", help="METRICS_RATE_WINDOW")
    parser.add_argument("--cold-start-s", type=float, default=5.0, help="replica cold start")
    parser.add_argument("--timeout-s", type=float, default=60.0, help="per step, to the call")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.scrape_s <= 0 or args.eval_s <= 0 or args.multiplier <= 1:
        parser.error("need --steps >= 1, positive intervals and --multiplier > 1")

    from apps.devstack.prometheus import find_binary

    binary = find_binary()
    if binary is None:
        print("SKIP: prometheus not installed (Debian package 'prometheus')")
        return 0

    workdir = Path(tempfile.mkdtemp(prefix="bench-reaction-"))
    # A private, throw-away control plane: SQLite, file cache and broker under workdir.
    for name in ("DATABASE_URL", "REDIS_URL", "PROMETHEUS_URL", "FLEETSIM_URL"):
        os.environ.pop(name, None)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "controlplane.settings",
            "CONTROLPLANE_ENV": "development",
            "CONTROLPLANE_VAR_DIR": str(workdir),
            "SQLITE_PATH": str(workdir / "bench.sqlite3"),
            "DEBUG": "false",
            "LOG_LEVEL": "WARNING",
            "METRICS_RATE_WINDOW": args.rate_window,
        }
    )
    try:
        return run(args, binary, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(args: argparse.Namespace, binary: str, workdir: Path) -> int:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from apps.accounts.models import Team
    from apps.autoscaling.actuators.simulated import SimulatedActuator
    from apps.autoscaling.models import AutoscalingPolicy, Mode
    from apps.devstack.prometheus import EmbeddedPrometheus, ScrapeTarget
    from apps.fleetsim.exposition import serve
    from apps.fleetsim.fleet import Fleet, SimulatedDeployment
    from apps.fleetsim.inventory import endless
    from apps.fleetsim.profiles import get_profile
    from apps.inventory.models import Deployment, LLMModel, ScaleTargetKind

    started = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    # Actions are applied by this loop right after each evaluation (no enqueue given), as a
    # worker would pick them up; nothing goes through a broker.

    profile = replace(get_profile("A100-80GB"), cold_start_s=args.cold_start_s)
    names = [f"{NAME}-{n}" for n in range(1, args.steps + 1)]
    sims = [
        SimulatedDeployment(
            name,
            profile.model_name,
            NAMESPACE,
            profile,
            replicas=1,
            workload=endless("steady", args.rps, seed=args.seed + n),
            seed=args.seed + n,
            max_records=2000,
        )
        for n, name in enumerate(names)
    ]
    fleet = Fleet(sims)
    server, port = serve(fleet)
    fleet.run_realtime()
    prom = EmbeddedPrometheus(
        targets=[ScrapeTarget("fleetsim", f"127.0.0.1:{port}", args.scrape_s)],
        binary=binary,
        data_dir=workdir / "prometheus",
    )
    loop: ControlLoop | None = None
    steps: list[Step] = []
    try:
        prom.start()
        settings.PROMETHEUS_URL = prom.url
        team = Team.objects.create(name="bench", slug="bench")
        model = LLMModel.objects.create(team=team, name=profile.model_name, version="v1")
        deployments = []
        for name in names:
            deployment = Deployment.objects.create(
                team=team,
                name=name,
                model=model,
                framework="vllm",
                cluster=None,
                target_kind=ScaleTargetKind.SIMULATED,
                target_namespace=NAMESPACE,
                gpu_type="a100-80gb",
                min_replicas=1,
                max_replicas=10,
                status="active",
                prometheus_selector=f'{{namespace="{NAMESPACE}", deployment="{name}"}}',
            )
            AutoscalingPolicy.objects.create(
                deployment=deployment,
                mode=Mode.ENFORCE,
                targets=[{"signal": "queue_length", "value": 3}],
                cold_start_s=args.cold_start_s,
            )
            deployments.append(deployment)
        actuator = RecordingActuator(SimulatedActuator(f"http://127.0.0.1:{port}"))
        loop = ControlLoop(deployments[0].pk, actuator, args.eval_s)
        run_started = time.time()
        loop.start()
        print(
            f"fleet simulator on 127.0.0.1:{port}: {args.steps} copies of one vLLM deployment "
            f"({profile.name}, 1 replica, {args.rps:g} req/s, cold start "
            f"{args.cold_start_s:g} s); Prometheus {prom.url} scraping every "
            f"{args.scrape_s:g} s; control loop every {args.eval_s:g} s; "
            f"METRICS_RATE_WINDOW={settings.METRICS_RATE_WINDOW}\n",
            flush=True,
        )

        def calm(deployment_id: int) -> bool:
            """Two evaluations in a row at one replica, with a queue reading."""
            mine = [t for t in loop.ticks if t.deployment_id == deployment_id]
            return len(mine) >= 2 and all(
                t.current == t.desired == 1 and t.queue is not None for t in mine[-2:]
            )

        rng = random.Random(args.seed)
        for number, (deployment, sim) in enumerate(zip(deployments, sims, strict=True), 1):
            with loop.tick_lock:
                loop.deployment_id = deployment.pk
            # An independent phase between the scrape and evaluation schedules for each
            # step, as between a real Prometheus and a real beat schedule.
            loop.shift(rng.uniform(0.0, args.eval_s))
            if not wait_until(lambda pk=deployment.pk: calm(pk), 90):
                print(f"step {number}: {deployment.name} never settled at one replica")
                print(f"  last evaluations: {loop.ticks[-2:]}; errors: {loop.errors[-3:]}")
                return 1
            # The step at a random moment of the evaluation (and so the scrape) schedule.
            phase = rng.uniform(0.0, args.eval_s)
            at = loop.next_slot(time.time()) + phase
            time.sleep(max(0.0, at - time.time()))
            t0 = time.time()
            with fleet.lock:
                sim.set_rate_multiplier(args.multiplier)
            step = Step(number, t0, (t0 - loop.origin) % args.eval_s)
            steps.append(step)

            def reacted(t0: float = t0, name: str = deployment.name) -> Call | None:
                return next((c for c in actuator.calls_since(t0, name) if c.replicas > 1), None)

            wait_until(reacted, args.timeout_s, poll_s=0.02)
            with fleet.lock:
                sim.set_rate_multiplier(1.0)
            step.call = reacted()
            if step.call is None:
                print(f"step {number}: no scale-up within {args.timeout_s:g} s", flush=True)
            else:
                print(
                    f"step {number}: {step.latency:5.2f} s from the load step to set_replicas "
                    f"({deployment.name}: 1 -> {step.call.replicas})",
                    flush=True,
                )
        scrapes = scrape_times(prom.url, run_started)
    finally:
        if loop is not None:
            loop.stop()
        prom.stop()
        fleet.stop()
        server.stop()

    assert loop is not None
    for step in steps:
        if step.call is None:
            continue
        step.tick = next(
            (t for t in loop.ticks if t.started <= step.call.at <= t.ended and t.calls), None
        )
        if step.tick is not None:
            step.scrape_used = max((s for s in scrapes if s <= step.tick.started), default=None)
    return report(args, steps, loop, time.perf_counter() - started)


def report(args: argparse.Namespace, steps: list[Step], loop: ControlLoop, total_s: float) -> int:
    print(
        "\n step | t0 after eval tick (s) | to set_replicas (s) | scrape wait | eval wait "
        "| evaluation | queue seen | replicas"
    )
    rows = []
    for s in steps:
        if s.latency is None:
            print(f" {s.number:4d} | {s.eval_phase_s:22.2f} | {'none':>19} |")
            continue
        assert s.call is not None
        scrape_wait = eval_wait = work = float("nan")
        queue = "?"
        if s.tick is not None and s.scrape_used is not None:
            scrape_wait = s.scrape_used - s.t0
            eval_wait = s.tick.started - s.scrape_used
            work = s.call.at - s.tick.started
            queue = f"{s.tick.queue:g}" if s.tick.queue is not None else "missing"
            rows.append((scrape_wait, eval_wait, work))
        print(
            f" {s.number:4d} | {s.eval_phase_s:22.2f} | {s.latency:19.2f} | {scrape_wait:11.2f} "
            f"| {eval_wait:9.2f} | {work:10.2f} | {queue:>10} | 1 -> {s.call.replicas}"
        )
    latencies = [s.latency for s in steps if s.latency is not None]
    missing = len(steps) - len(latencies)
    print()
    if not latencies:
        print(f"no step reached the actuator within {args.timeout_s:g} s: MISS")
        return 1
    p50, p95 = nearest_rank(latencies, 0.50), nearest_rank(latencies, 0.95)
    ok = missing == 0 and p95 <= TARGET_P95_S
    print(
        f"load step -> actuator call over {len(latencies)} steps: p50 {p50:.2f} s, "
        f"p95 {p95:.2f} s, max {max(latencies):.2f} s (nearest rank)"
        + (f"; {missing} steps got no call" if missing else "")
    )
    print(
        f"target: p95 <= {TARGET_P95_S:g} s (HPA: 15 s sync period plus metrics lag; KEDA: "
        f"30 s polling) -> {'PASS' if ok else 'MISS'}"
    )
    if rows:
        means = [statistics.fmean(col) for col in zip(*rows, strict=True)]
        print(
            f"where the time went (mean): waiting for a scrape that carried the step "
            f"{means[0]:.2f} s (scrape every {args.scrape_s:g} s), then for the next "
            f"evaluation {means[1]:.2f} s (every {args.eval_s:g} s), evaluation itself "
            f"(collect + decide + set_replicas) {means[2]:.2f} s"
        )
    print(
        f"queue_length is a gauge: read as of the last scrape, METRICS_RATE_WINDOW="
        f"{args.rate_window} does not delay it (rate()-based targets would lag by part of "
        f"the window). Evaluation ticks: {len(loop.ticks)}, errors: {len(loop.errors)}; "
        f"run took {total_s:.0f} s."
    )
    for error in loop.errors[:5]:
        print(f"  error: {error}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
