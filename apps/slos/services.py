"""Evaluating SLOs from Prometheus, batched across SLOs, and recording what changed."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.integrations.prometheus import PrometheusClient, PrometheusError
from apps.inventory.models import Deployment
from apps.metrics.collection import Query, group_targets, map_results
from apps.metrics.services import ClientFactory, default_client_factory, targets_for

from .burn import Evaluation, WindowCounts, evaluate, promql_duration, scaled_windows
from .models import SliKind, Slo, SloEvent, SloState, SloStatus, SloStatusSample
from .sli import SliError, SliSpec, count_queries

logger = structlog.get_logger("controlplane.slos")


@dataclass(frozen=True)
class SloResult:
    slo_id: int
    state: str
    evaluation: Evaluation | None
    windows: dict[str, int]
    reason: str


def slo_deployments(*, slo: Slo, team_deployments: Sequence[Deployment]) -> list[Deployment]:
    if slo.deployment_id is not None:
        return [d for d in team_deployments if d.pk == slo.deployment_id]
    wanted = slo.deployment_labels or {}
    return [
        d for d in team_deployments if all((d.labels or {}).get(k) == v for k, v in wanted.items())
    ]


def _spec(slo: Slo) -> SliSpec:
    if slo.sli_kind == SliKind.LATENCY:
        return SliSpec("latency", slo.latency_metric, float(slo.threshold_seconds or 0))
    return SliSpec(slo.sli_kind)


def slos_evaluate(
    *,
    slos: Sequence[Slo],
    at: float | None = None,
    client_factory: ClientFactory = default_client_factory,
    compression: float | None = None,
) -> list[SloResult]:
    """Evaluate ``slos``: one query per window and count type per group of deployments
    that share a Prometheus, a framework, identity labels and the same SLI definition."""
    compression = compression or settings.SLO_WINDOW_COMPRESSION
    team_ids = {s.team_id for s in slos}
    deployments = list(
        Deployment.objects.filter(team_id__in=team_ids)
        .exclude(status="retired")
        .select_related("cluster")
        .prefetch_related("custom_queries")
    )
    by_team: dict[int, list[Deployment]] = defaultdict(list)
    for dep in deployments:
        by_team[dep.team_id].append(dep)

    # (spec, windows) -> deployments needing those counts.
    needs: dict[tuple[SliSpec, tuple[tuple[str, int], ...]], dict[int, Deployment]] = defaultdict(
        dict
    )
    slo_deps: dict[int, list[Deployment]] = {}
    slo_windows: dict[int, dict[str, int]] = {}
    for slo in slos:
        windows = scaled_windows(slo.window, compression=compression)
        slo_windows[slo.pk] = windows
        deps = slo_deployments(slo=slo, team_deployments=by_team[slo.team_id])
        slo_deps[slo.pk] = deps
        if slo.sli_kind != SliKind.CUSTOM_RATIO:
            key = (_spec(slo), tuple(sorted(windows.items())))
            for dep in deps:
                needs[key][dep.pk] = dep

    # (spec, windows, window name, "good"/"total") -> deployment id -> value
    values: dict[tuple[object, ...], dict[int, float]] = defaultdict(dict)
    failures: dict[int, str] = {}
    jobs: list[tuple[tuple[object, ...], Query]] = []
    for (spec, windows_items), members in needs.items():
        for group in group_targets(targets_for(list(members.values()))):
            if not group.prometheus_url:
                for dep_id in group.members.values():
                    failures[dep_id] = "no Prometheus configured"
                continue
            for name, seconds in windows_items:
                try:
                    good, total = count_queries(
                        spec,
                        group.framework,
                        sel=group.sel,
                        by=group.by,
                        window=promql_duration(seconds),
                    )
                except SliError as exc:
                    for dep_id in group.members.values():
                        failures[dep_id] = str(exc)
                    break
                for kind, promql in (("good", good), ("total", total)):
                    job_key: tuple[object, ...] = (spec, windows_items, name, kind)
                    jobs.append(
                        (
                            job_key,
                            Query(
                                promql, kind, group.prometheus_url, group.identity, group.members
                            ),
                        )
                    )

    custom_jobs: list[tuple[int, str, str, str, str]] = []  # slo, url, window, kind, promql
    for slo in slos:
        if slo.sli_kind != SliKind.CUSTOM_RATIO:
            continue
        url = settings.PROMETHEUS_URL or ""
        deps = slo_deps[slo.pk]
        if deps and deps[0].cluster_id and deps[0].cluster and deps[0].cluster.prometheus_url:
            url = deps[0].cluster.prometheus_url
        for name, seconds in slo_windows[slo.pk].items():
            duration = promql_duration(seconds)
            for kind, template in (("good", slo.good_query), ("total", slo.total_query)):
                custom_jobs.append((slo.pk, url, name, kind, template.replace("$window", duration)))

    clients: dict[str, PrometheusClient] = {}
    down: dict[str, str] = {}

    def run(url: str, promql: str) -> tuple[list[object] | None, str | None]:
        if not url:
            return None, "no Prometheus configured"
        if url in down:
            return None, down[url]
        client = clients.setdefault(url, client_factory(url))
        try:
            return list(client.query(promql, at=at)), None
        except PrometheusError as exc:
            if exc.unreachable:
                down[url] = str(exc)
            return None, str(exc)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda j: run(j[1].prometheus_url, j[1].promql), jobs))
        custom_results = list(pool.map(lambda j: run(j[1], j[4]), custom_jobs))
    for (job_key, query), (samples, error) in zip(jobs, results, strict=True):
        if error is not None:
            for dep_id in query.members.values():
                failures.setdefault(dep_id, error)
            continue
        mapped = map_results(query, samples or [])  # type: ignore[arg-type]
        values[job_key].update({dep: value for dep, (value, _) in mapped.items()})
    custom_values: dict[tuple[int, str, str], float] = {}
    custom_failures: dict[int, str] = {}
    for (slo_id, _, name, kind, _), (samples, error) in zip(
        custom_jobs, custom_results, strict=True
    ):
        if error is not None:
            custom_failures.setdefault(slo_id, error)
            continue
        if samples:
            custom_values[(slo_id, name, kind)] = sum(s.value for s in samples)  # type: ignore[attr-defined]

    out: list[SloResult] = []
    for slo in slos:
        windows = slo_windows[slo.pk]
        deps = slo_deps[slo.pk]
        if not deps and slo.sli_kind != SliKind.CUSTOM_RATIO:
            out.append(
                SloResult(slo.pk, SloState.NO_DATA, None, windows, "no deployment matches the SLO")
            )
            continue
        failed = (
            custom_failures.get(slo.pk)
            if slo.sli_kind == SliKind.CUSTOM_RATIO
            else next((failures[d.pk] for d in deps if d.pk in failures), None)
        )
        if failed:
            out.append(SloResult(slo.pk, SloState.UNAVAILABLE, None, windows, failed))
            continue
        counts: dict[str, WindowCounts] = {}
        for name in windows:
            if slo.sli_kind == SliKind.CUSTOM_RATIO:
                counts[name] = WindowCounts(
                    custom_values.get((slo.pk, name, "good")),
                    custom_values.get((slo.pk, name, "total")),
                )
                continue
            key_base = (_spec(slo), tuple(sorted(windows.items())), name)
            goods = [values[(*key_base, "good")].get(d.pk) for d in deps]
            totals = [values[(*key_base, "total")].get(d.pk) for d in deps]
            counts[name] = WindowCounts(
                None if all(g is None for g in goods) else sum(g or 0 for g in goods),
                None if all(t is None for t in totals) else sum(t or 0 for t in totals),
            )
        evaluation = evaluate(objective=slo.objective, counts=counts, min_requests=slo.min_requests)
        out.append(SloResult(slo.pk, evaluation.state, evaluation, windows, evaluation.reason))
    logger.info(
        "slos-evaluated",
        slos=len(slos),
        queries=len(jobs) + len(custom_jobs),
        failed_deployments=len(failures),
        query_seconds=round(time.perf_counter() - started, 3),
    )
    return out


def _finite(value: float | None) -> float | None:
    return None if value is None or value != value else value


@transaction.atomic
def slo_results_store(
    *, results: Sequence[SloResult], now: datetime | None = None
) -> list[SloEvent]:
    """Upsert statuses, add a history point per step, and record state changes as events."""
    now = now or timezone.now()
    resolution = settings.SLO_HISTORY_RESOLUTION_S
    step = datetime.fromtimestamp(now.timestamp() // resolution * resolution, tz=UTC)
    previous = dict(
        SloStatus.objects.filter(slo_id__in=[r.slo_id for r in results]).values_list(
            "slo_id", "state"
        )
    )
    events: list[SloEvent] = []
    for result in results:
        ev = result.evaluation
        rates = {k: _finite(v) for k, v in (ev.burn_rates if ev else {}).items()}
        SloStatus.objects.update_or_create(
            slo_id=result.slo_id,
            defaults={
                "state": result.state,
                "reason": result.reason[:4000],
                "sli": _finite(ev.sli) if ev else None,
                "budget_remaining": _finite(ev.budget_remaining) if ev else None,
                "burn_rates": rates,
                "totals": dict(ev.totals) if ev else {},
                "windows": result.windows,
                "firing": list(ev.firing) if ev else [],
                "evaluated_at": now,
            },
        )
        SloStatusSample.objects.update_or_create(
            slo_id=result.slo_id,
            ts=step,
            defaults={
                "state": result.state,
                "sli": _finite(ev.sli) if ev else None,
                "budget_remaining": _finite(ev.budget_remaining) if ev else None,
                "burn_rates": rates,
            },
        )
        before = previous.get(result.slo_id, "")
        if before != result.state:
            events.append(
                SloEvent.objects.create(
                    slo_id=result.slo_id,
                    at=now,
                    from_state=before,
                    to_state=result.state,
                    reason=result.reason[:4000],
                    burn_rates=rates,
                )
            )
            logger.info(
                "slo-state-changed",
                slo=result.slo_id,
                from_state=before,
                to_state=result.state,
                reason=result.reason,
            )
    return events


def slos_evaluate_all(*, at: float | None = None) -> list[SloEvent]:
    slos = list(Slo.objects.filter(enabled=True).select_related("deployment", "team"))
    if not slos:
        return []
    return slo_results_store(results=slos_evaluate(slos=slos, at=at))
