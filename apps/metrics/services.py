"""Collecting from Prometheus and storing what was seen.

Nothing here raises to the caller because Prometheus is down, slow or answering garbage:
the affected deployments are marked "unavailable" with the reason, and the next cycle
starts from scratch, so recovery needs no intervention.
"""

from __future__ import annotations

import gc
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.integrations.prometheus import PrometheusClient, PrometheusError
from apps.integrations.prometheus.types import InstantSample
from apps.inventory.models import Deployment

from .catalogue import FRESHNESS_METRIC, Signal, render, template_for
from .collection import (
    FRESHNESS,
    Observation,
    Query,
    Target,
    build_observations,
    map_results,
    plan_queries,
)
from .models import DeploymentMetrics, MetricSample, MetricsStatus

logger = structlog.get_logger("controlplane.metrics")

ALL_SIGNALS: tuple[str, ...] = tuple(str(s) for s in Signal)
ClientFactory = Callable[[str], PrometheusClient]

NO_PROMETHEUS = "no Prometheus configured (set PROMETHEUS_URL or the cluster's prometheus_url)"


def default_client_factory(url: str) -> PrometheusClient:
    return PrometheusClient(url, timeout_s=settings.METRICS_QUERY_TIMEOUT_S)


@dataclass
class CycleReport:
    deployments: int
    queries: int
    failed_queries: int
    query_seconds: float
    observations: dict[int, dict[str, Observation]]


def targets_for(deployments: Sequence[Deployment]) -> list[Target]:
    targets = []
    for dep in deployments:
        url = (dep.cluster.prometheus_url if dep.cluster_id and dep.cluster else "") or (
            settings.PROMETHEUS_URL or ""
        )
        custom = {c.signal: c.promql for c in dep.custom_queries.all()}
        targets.append(Target(dep.pk, dep.framework, dep.prometheus_selector, url, custom))
    return targets


def _run_query(client: PrometheusClient, query: Query, at: float | None) -> list[InstantSample]:
    return client.query(query.promql, at=at)


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the length of one collection cycle.

    At 10,000 deployments a cycle allocates about a million small objects (parsed JSON,
    samples, observations) and none of them is part of a reference cycle, so reference
    counting frees them all; the cyclic collector would still make several full passes
    over the heap per cycle (about 1 s of a 4-5 s cycle on 2 cores) and find nothing.
    It is switched back on when the cycle ends, if it was on, whatever happens.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@_cyclic_gc_paused()
def metrics_collect(
    *,
    targets: Sequence[Target],
    signals: Sequence[str] = ALL_SIGNALS,
    now: float | None = None,
    at: float | None = None,
    client_factory: ClientFactory = default_client_factory,
    staleness_s: float | None = None,
    window: str | None = None,
    parallelism: int = 4,
) -> CycleReport:
    """One collection cycle over ``targets``: one query per signal and group.

    ``at`` evaluates the queries at a past time (benchmarks on backfilled data); ``now`` is
    the time staleness is measured against (defaults to ``at`` or the wall clock).
    """
    staleness_s = settings.METRICS_STALENESS_S if staleness_s is None else staleness_s
    window = window or settings.METRICS_RATE_WINDOW
    now = now if now is not None else (at if at is not None else time.time())
    started = time.perf_counter()

    failures: dict[str, dict[int, str]] = defaultdict(dict)
    values: dict[str, dict[int, tuple[float, float]]] = defaultdict(dict)
    freshness: dict[int, float] = {}

    no_url = [t for t in targets if not t.prometheus_url]
    for t in no_url:
        failures[FRESHNESS][t.deployment_id] = NO_PROMETHEUS
    with_url = [t for t in targets if t.prometheus_url]
    queries = plan_queries(with_url, signals, window=window)
    clients: dict[str, PrometheusClient] = {}
    down: dict[str, str] = {}

    def run(query: Query) -> tuple[Query, list[InstantSample] | None, str | None]:
        if query.prometheus_url in down:
            return query, None, down[query.prometheus_url]
        client = clients.get(query.prometheus_url)
        if client is None:
            client = clients[query.prometheus_url] = client_factory(query.prometheus_url)
        try:
            return query, _run_query(client, query, at), None
        except PrometheusError as exc:
            if exc.unreachable:
                # Do not wait for every remaining query to fail the same way.
                down[query.prometheus_url] = str(exc)
            return query, None, str(exc)

    failed = 0
    # Freshness queries first, so an unreachable Prometheus is known before the rest.
    fresh_queries = [q for q in queries if q.signal == FRESHNESS]
    other_queries = [q for q in queries if q.signal != FRESHNESS]
    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        for batch in (fresh_queries, other_queries):
            for query, samples, error in pool.map(run, batch):
                if error is not None:
                    failed += 1
                    for dep in query.members.values():
                        failures[query.signal][dep] = error
                    continue
                mapped = map_results(query, samples or [])
                if query.signal == FRESHNESS:
                    freshness.update({dep: value for dep, (value, _) in mapped.items()})
                else:
                    values[query.signal].update(mapped)
    elapsed = time.perf_counter() - started

    observations = build_observations(
        deployment_ids=[t.deployment_id for t in targets],
        signals=list(signals),
        frameworks={t.deployment_id: t.framework for t in targets},
        custom={t.deployment_id: set(t.custom) for t in targets},
        values=values,
        freshness=freshness,
        failures=failures,
        now=now,
        staleness_s=staleness_s,
    )
    if failed:
        logger.warning(
            "metrics-collection-degraded",
            failed_queries=failed,
            queries=len(queries),
            reasons=sorted(set(down.values()))[:3],
        )
    return CycleReport(len(targets), len(queries), failed, elapsed, observations)


def _summarise(obs: dict[str, Observation]) -> tuple[str, str]:
    relevant = [o for o in obs.values() if o.status != "unsupported"]
    if not relevant:
        return MetricsStatus.UNAVAILABLE, "no supported signal"
    bad = {k: o for k, o in obs.items() if o.status not in ("ok", "unsupported")}
    if not bad:
        return MetricsStatus.OK, ""
    # Prefer the reason of a hard failure (Prometheus down, stale scrape) over "no traffic".
    hard = [o for o in bad.values() if o.status in ("unavailable", "stale")]
    first = (hard or list(bad.values()))[0]
    if len(bad) == len(relevant):
        return MetricsStatus.UNAVAILABLE, first.reason
    return MetricsStatus.PARTIAL, f"{', '.join(sorted(bad))}: {first.reason}"


def metrics_store(
    *, observations: dict[int, dict[str, Observation]], collected_at: datetime | None = None
) -> int:
    """Upsert the latest state and add a downsampled point per resolution step."""
    collected_at = collected_at or timezone.now()
    resolution = settings.METRICS_SAMPLE_RESOLUTION_S
    step_start = datetime.fromtimestamp(collected_at.timestamp() // resolution * resolution, tz=UTC)
    previous = dict(
        DeploymentMetrics.objects.filter(deployment_id__in=list(observations)).values_list(
            "deployment_id", "sampled_at"
        )
    )
    rows = []
    samples: list[MetricSample] = []
    for dep, obs in observations.items():
        status, reason = _summarise(obs)
        last = previous.get(dep)
        take_sample = last is None or last < step_start
        # The step counts as sampled once every supported signal had a value in it; until
        # then later cycles of the same step try again (the unique constraint drops repeats).
        complete = all(o.status == "ok" for o in obs.values() if o.status != "unsupported")
        rows.append(
            DeploymentMetrics(
                deployment_id=dep,
                status=status,
                reason=reason[:2000],
                observations={k: o.as_dict() for k, o in obs.items()},
                collected_at=collected_at,
                sampled_at=step_start if take_sample and complete else last,
            )
        )
        if take_sample:
            samples.extend(
                MetricSample(deployment_id=dep, signal=k, ts=step_start, value=o.value)
                for k, o in obs.items()
                if o.status == "ok" and o.value is not None
            )
    with transaction.atomic():
        DeploymentMetrics.objects.bulk_create(
            rows,
            batch_size=1000,
            update_conflicts=True,
            unique_fields=["deployment"],
            update_fields=["status", "reason", "observations", "collected_at", "sampled_at"],
        )
        MetricSample.objects.bulk_create(samples, batch_size=2000, ignore_conflicts=True)
    return len(rows)


def metrics_collect_shard(*, shard: int, shards: int) -> CycleReport:
    deployments = list(
        Deployment.objects.exclude(status="retired")
        .select_related("cluster")
        .prefetch_related("custom_queries")
        .order_by("pk")
    )
    mine = [d for d in deployments if d.pk % shards == shard]
    report = metrics_collect(targets=targets_for(mine))
    metrics_store(observations=report.observations)
    logger.info(
        "metrics-collected",
        shard=shard,
        shards=shards,
        deployments=report.deployments,
        queries=report.queries,
        failed_queries=report.failed_queries,
        query_seconds=round(report.query_seconds, 3),
    )
    return report


def metric_samples_prune(*, older_than_days: int | None = None) -> int:
    days = older_than_days or settings.METRICS_SAMPLE_RETENTION_DAYS
    deleted, _ = MetricSample.objects.filter(ts__lt=timezone.now() - timedelta(days=days)).delete()
    return deleted


# Per-replica load, for choosing which replicas a scale-down removes: requests in flight
# plus requests waiting, per pod. A replica with no requests is the cheapest to remove.
_POD_LOAD_SIGNALS = (Signal.RUNNING_REQUESTS, Signal.QUEUE_LENGTH)


def pod_load_read(
    *, deployment: Deployment, client_factory: ClientFactory = default_client_factory
) -> dict[str, float] | None:
    """pod name → requests running + waiting, from the deployment's Prometheus; None when
    it cannot be known (no Prometheus, no per-pod metric for the framework, a failed
    query). Best effort: the caller scales down either way."""
    (target,) = targets_for([deployment])
    if not target.prometheus_url:
        return None
    sel = "".join(m.render() + "," for m in target.matchers())
    client = client_factory(target.prometheus_url)
    load: dict[str, float] = {}
    for signal in _POD_LOAD_SIGNALS:
        template = template_for(deployment.framework, signal)
        if template is None:
            continue
        promql = render(template, sel=sel, by="pod", window=settings.METRICS_RATE_WINDOW)
        try:
            samples = client.query(promql)
        except PrometheusError as exc:
            logger.warning("pod-load-unavailable", deployment=deployment.pk, error=str(exc))
            return None
        for sample in samples:
            pod = sample.labels.get("pod")
            if pod:
                load[pod] = load.get(pod, 0.0) + sample.value
    return load or None


# --------------------------------------------------------------------------- range reads

# The name of the replica count in SignalHistory.multiple_series.
ACTUAL_REPLICAS = "__actual_replicas__"

Points = list[tuple[float, float]]


class SignalHistoryError(Exception):
    """A range read that cannot be made; ``unavailable`` says Prometheus was the problem
    (not configured, or failing in a way that may pass)."""

    def __init__(self, message: str, *, unavailable: bool) -> None:
        super().__init__(message)
        self.unavailable = unavailable


@dataclass(frozen=True)
class SignalHistory:
    """One deployment's signals over a past range, on the range's step grid."""

    # signal → (t, value): every signal asked for, empty where there is no query or no data.
    series: dict[str, Points]
    # Replicas that actually served (pods reporting the framework's always-present gauge);
    # None when the framework has no such gauge.
    replicas: Points | None
    # Signals asked for that have no query: no metric for the framework, no custom query.
    unqueryable: tuple[str, ...]
    # (signal or ACTUAL_REPLICAS, series returned) where a query returned more than one
    # series; the highest value at each step is kept.
    multiple_series: tuple[tuple[str, int], ...]


def _range_queries(target: Target, signals: Sequence[str]) -> dict[str, str]:
    """signal → PromQL for one deployment, plus the replica-count query under ACTUAL_REPLICAS."""
    queries = {
        q.signal: q.promql
        for q in plan_queries([target], signals, window=settings.METRICS_RATE_WINDOW)
        if q.signal in signals
    }
    fresh = FRESHNESS_METRIC.get(target.framework)
    if fresh:
        queries[ACTUAL_REPLICAS] = f"count({fresh}{target.selector.strip() or '{}'})"
    return queries


def signal_history(
    *,
    deployment: Deployment,
    signals: Sequence[str],
    start: datetime,
    end: datetime,
    step_s: float,
    client_factory: ClientFactory = default_client_factory,
) -> SignalHistory:
    """Read ``signals`` of ``deployment`` over [start, end] every ``step_s`` from its
    Prometheus (one range query per signal, the same PromQL the collector uses), and the
    replicas that served. Raises SignalHistoryError when Prometheus cannot answer."""
    (target,) = targets_for([deployment])
    queries = _range_queries(target, signals)
    if not target.prometheus_url:
        raise SignalHistoryError(NO_PROMETHEUS, unavailable=True)
    client = client_factory(target.prometheus_url)
    series: dict[str, Points] = {s: [] for s in signals}
    replicas: Points | None = None
    multiple: list[tuple[str, int]] = []
    for name, promql in queries.items():
        try:
            result = client.query_range(promql, start=start, end=end, step_s=step_s)
        except PrometheusError as exc:
            raise SignalHistoryError(f"Prometheus: {exc}", unavailable=exc.retryable) from exc
        if len(result) > 1:
            multiple.append((name, len(result)))
        merged: dict[float, float] = {}
        for item in result:
            for t, v in item.points:
                merged[t] = max(merged.get(t, v), v)
        if name == ACTUAL_REPLICAS:
            replicas = sorted(merged.items())
        else:
            series[name] = sorted(merged.items())
    return SignalHistory(
        series=series,
        replicas=replicas,
        unqueryable=tuple(s for s in signals if s not in queries),
        multiple_series=tuple(multiple),
    )
