"""Reads of the web console, built on the domain apps' selectors and always scoped to the
user's teams with :func:`apps.accounts.selectors.team_scoped`.

Every function here answers one page (or one partial of it) with a fixed number of
queries, whatever the number of deployments: rows are fetched per table with ``__in``
filters and joined in Python, never one query per deployment.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.db import connections
from django.db.models import (
    Count,
    F,
    FloatField,
    Func,
    Max,
    Model,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Window,
)
from django.db.models.functions import RowNumber
from django.http import Http404
from django.utils import timezone

from apps.accounts.models import Role
from apps.accounts.selectors import AnyUser, team_scoped, user_has_role
from apps.alerts import grouping
from apps.alerts.labels import fingerprint, matchers_load
from apps.alerts.models import Alert, AlertGroup, AlertStatus, Channel, Delivery, Route, Silence
from apps.alerts.selectors import (
    alert_silenced_by,
    inhibited_fingerprints,
    route_matches,
    routes_for_teams,
    silences_active,
    silences_with_matchers,
)
from apps.audit.models import AuditEntry
from apps.autoscaling.backtest import BacktestResult, backtest_payload
from apps.autoscaling.engine import SLO_BURN_RATE
from apps.autoscaling.models import (
    ActionStatus,
    AutoscalingPolicy,
    DecisionRecord,
    DeploymentControl,
    ScaleAction,
)
from apps.core.digits import ascii_int
from apps.inventory.models import Cluster, Deployment, DeploymentStatus
from apps.metrics.catalogue import Signal
from apps.metrics.models import MetricSample
from apps.metrics.selectors import latest_observations, metric_series
from apps.slos.burn import BASE_WINDOWS_S, CONDITIONS, scaled_windows
from apps.slos.models import (
    LatencyMetric,
    SliKind,
    Slo,
    SloEvent,
    SloStatus,
    SloStatusSample,
)
from apps.slos.services import slo_deployments
from apps.toggles.evaluation import evaluate
from apps.toggles.models import (
    DegradationPolicy,
    DegradationState,
    DegradationSwitch,
    DegradationTransition,
    Toggle,
    ToggleChange,
)
from apps.toggles.selectors import toggle_definition

# How far back the overview's sparklines look, and the most points a chart series gets.
SPARKLINE_WINDOW = timedelta(minutes=30)
MAX_POINTS = 500
RANGES: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
}
DEFAULT_RANGE = "1h"


# --------------------------------------------------------------------------- deployments


def deployments_visible(*, user: AnyUser) -> QuerySet[Deployment]:
    """The deployments the user may see, with what a row shows of their relations."""
    return team_scoped(
        Deployment.objects.select_related("team", "cluster", "model"), user=user
    ).order_by("team__slug", "name")


def deployment_get(*, user: AnyUser, deployment_id: int) -> Deployment:
    """One deployment the user may see; another team's (or none) is a 404, as in the API."""
    try:
        return deployments_visible(user=user).get(pk=deployment_id)
    except Deployment.DoesNotExist as exc:
        raise Http404("No such deployment.") from exc


def deployment_can_operate(*, user: AnyUser, deployment: Deployment) -> bool:
    """Whether the user may change the deployment's autoscaling controls (operator+)."""
    return user_has_role(user=user, team_id=deployment.team_id, role=Role.OPERATOR)


def clusters_visible(*, user: AnyUser) -> QuerySet[Cluster]:
    return team_scoped(Cluster.objects.all(), user=user).order_by("name")


# --------------------------------------------------------------------------- overview

# Deployment ids to read rows of: a list, or a ``values("pk")`` queryset (a subquery).
DeploymentIds = Sequence[int] | QuerySet[Any]


@dataclass(frozen=True)
class DeploymentRef:
    """What an overview row shows of a deployment and its relations: a thousand rows read
    as plain values, not as a thousand model instances of three tables."""

    pk: int
    name: str
    status: str
    framework: str
    team_slug: str
    cluster_name: str | None


OVERVIEW_FIELDS = ("pk", "name", "status", "framework", "team__slug", "cluster__name")


@dataclass
class OverviewRow:
    """One deployment's line of the fleet overview."""

    deployment: DeploymentRef
    ready: int | None = None
    starting: int | None = None
    desired: int | None = None
    queue: float | None = None
    kv_cache: float | None = None
    ttft_p95: float | None = None
    ttft_objective: float | None = None
    budget_left: float | None = None
    budget_slo_id: int | None = None  # the SLO with the least budget left
    firing_alerts: int = 0
    paused: bool = False
    pinned: int | None = None
    degradation: int | None = None  # highest level of its degradation policies; None: none
    sparkline: dict[str, Any] = field(default_factory=dict)

    @property
    def ttft_over(self) -> bool:
        return (
            self.ttft_p95 is not None
            and self.ttft_objective is not None
            and self.ttft_p95 > self.ttft_objective
        )


@dataclass(frozen=True)
class LatestDecision:
    desired: int
    replicas: Mapping[str, Any]  # the decision's replica state (``inputs["replicas"]``)


def _latest_decisions(deployment_ids: DeploymentIds) -> dict[int, LatestDecision]:
    """deployment id → its latest decision's desired count and replica state, in one query;
    only the replica state is read out of the stored inputs."""
    # One index probe per deployment on (deployment, -at), where a GROUP BY would read
    # every stored decision of the fleet.
    latest_ids = Deployment.objects.filter(pk__in=deployment_ids).values(
        last=Subquery(
            DecisionRecord.objects.filter(deployment_id=OuterRef("pk"))
            .order_by("-at")
            .values("id")[:1]
        )
    )
    rows = (
        DecisionRecord.objects.filter(pk__in=latest_ids)
        .order_by()
        .values_list("deployment_id", "desired_replicas", "inputs__replicas")
    )
    return {
        pk: LatestDecision(desired, replicas if isinstance(replicas, Mapping) else {})
        for pk, desired, replicas in rows
    }


def _slo_figures(
    deployment_ids: DeploymentIds,
) -> dict[int, tuple[float | None, float | None, int | None]]:
    """deployment id → (TTFT objective in seconds, least error budget left over its SLOs,
    the SLO with that least budget)."""
    objective: dict[int, float] = {}
    budget: dict[int, tuple[float, int]] = {}
    rows = (
        Slo.objects.filter(deployment_id__in=deployment_ids, enabled=True)
        .order_by()
        .values_list(
            "id", "deployment_id", "sli_kind", "latency_metric", "threshold_seconds",
            "status__budget_remaining",
        )
    )  # fmt: skip
    for slo_id, deployment_id, kind, metric, threshold, left in rows:
        if kind == SliKind.LATENCY and metric == LatencyMetric.TTFT and threshold is not None:
            objective[deployment_id] = min(objective.get(deployment_id, threshold), threshold)
        if left is not None:
            budget[deployment_id] = min(budget.get(deployment_id, (left, slo_id)), (left, slo_id))
    return {
        d: (objective.get(d), *(budget.get(d) or (None, None)))
        for d in set(objective) | set(budget)
    }


def _firing_counts(deployment_ids: DeploymentIds) -> dict[int, int]:
    return dict(
        Alert.objects.filter(deployment_id__in=deployment_ids, status=AlertStatus.FIRING)
        .order_by()
        .values("deployment_id")
        .annotate(n=Count("id"))
        .values_list("deployment_id", "n")
    )


def _controls(deployment_ids: DeploymentIds) -> dict[int, DeploymentControl]:
    return {
        c.deployment_id: c
        for c in DeploymentControl.objects.filter(deployment_id__in=deployment_ids).only(
            "deployment_id", "paused", "pinned_replicas", "pinned_until"
        )
    }


def control_pinned_replicas(*, control: DeploymentControl | None, now: datetime) -> int | None:
    """The replica count a pin holds now; ``None`` when not pinned or the pin expired."""
    if control is None or control.pinned_replicas is None or control.pinned_until is None:
        return None
    return control.pinned_replicas if control.pinned_until > now else None


class EpochSeconds(Func):
    """A timestamp column as unix seconds, computed by the database: thousands of rows then
    come back as numbers, without a datetime built (and, on SQLite, parsed) for each."""

    output_field = FloatField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler, connection, template="CAST(strftime('%%%%s', %(expressions)s) AS REAL)"
        )

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # EXTRACT gives numeric (Decimal in Python) on PostgreSQL 14+: cast to a float.
        return self.as_sql(
            compiler,
            connection,
            template="CAST(EXTRACT(EPOCH FROM %(expressions)s) AS DOUBLE PRECISION)",
        )


def _plain_rows(queryset: QuerySet[Any]) -> list[tuple[Any, ...]]:
    """A ``values_list`` queryset's rows straight from the database cursor, skipping the
    ORM's per-value converters: for columns that arrive as plain numbers (ids, floats,
    :class:`EpochSeconds`) they change nothing and cost more than the query on tens of
    thousands of rows."""
    sql, params = queryset.query.sql_with_params()
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _sparklines(
    deployment_ids: DeploymentIds,
    since: datetime,
    now: datetime,
    current: Mapping[int, int],
) -> dict[int, dict[str, Any]]:
    """deployment id → chart data of replicas and load (request rate samples) since
    ``since``: two queries for the whole fleet. Replicas are a step line from the scale
    actions that succeeded (a handful of rows, where the decisions are one per evaluation)
    ending at the ``current`` count; without one in the window, the current count held."""
    start, end = since.timestamp(), now.timestamp()
    replicas: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for deployment_id, t, before, after in _plain_rows(
        ScaleAction.objects.filter(
            deployment_id__in=deployment_ids,
            status=ActionStatus.SUCCEEDED,
            finished_at__gte=since,
        )
        .annotate(t=EpochSeconds("finished_at"))
        .order_by("finished_at")
        .values_list("deployment_id", "t", "from_replicas", "to_replicas")
    ):
        points = replicas[deployment_id]
        if not points:
            points.append((start, float(before)))
        points += [(float(t) - 1, points[-1][1]), (float(t), float(after))]  # a step
    load: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for deployment_id, t, value in _plain_rows(
        MetricSample.objects.filter(
            deployment_id__in=deployment_ids, signal=Signal.REQUEST_RATE, ts__gte=since
        )
        .annotate(t=EpochSeconds("ts"))
        .order_by("deployment_id", "ts")  # the index's order: no sort
        .values_list("deployment_id", "t", "value")
    ):
        load[deployment_id].append((float(t), value))
    for deployment_id, count in current.items():
        points = replicas[deployment_id]
        if not points:
            points.append((start, float(count)))
        points.append((end, float(count)))
    return {
        d: chart_data(
            series={"replicas": replicas.get(d, []), "requests/s": load.get(d, [])},
            max_points=60,
        )
        for d in set(replicas) | set(load)
    }


def overview_rows(
    *, deployments: QuerySet[Deployment], now: datetime | None = None
) -> list[OverviewRow]:
    """The overview's rows for already scoped and filtered deployments."""
    now = now or timezone.now()
    rows = [
        OverviewRow(deployment=DeploymentRef(*values))
        for values in deployments.values_list(*OVERVIEW_FIELDS)
    ]
    ids = [row.deployment.pk for row in rows]
    if not ids:
        return rows
    # The other tables are filtered by the same deployments as a subquery: the database
    # reads them once more, where a list of a thousand ids would be a thousand parameters
    # to prepare and send in each query.
    scope = deployments.order_by().values("pk")
    observations = latest_observations(deployment_ids=ids)
    decisions = _latest_decisions(scope)
    slos = _slo_figures(scope)
    firing = _firing_counts(scope)
    controls = _controls(scope)
    degradation = _degradation_levels(scope)
    current = {
        pk: spec
        for pk, decision in decisions.items()
        if isinstance(spec := decision.replicas.get("spec"), int)
    }
    sparklines = _sparklines(scope, now - SPARKLINE_WINDOW, now, current)
    no_sparkline = chart_data(series={"replicas": [], "requests/s": []})
    for row in rows:
        pk = row.deployment.pk
        obs = observations.get(pk, {})
        for attr, signal in (
            ("queue", Signal.QUEUE_LENGTH),
            ("kv_cache", Signal.KV_CACHE_USAGE),
            ("ttft_p95", Signal.TTFT_P95),
        ):
            setattr(row, attr, obs[signal].ok_value if signal in obs else None)
        decision = decisions.get(pk)
        if decision is not None:
            row.ready = decision.replicas.get("ready")
            starting = decision.replicas.get("starting")
            row.starting = len(starting) if isinstance(starting, list) else None
            row.desired = decision.desired
        row.ttft_objective, row.budget_left, row.budget_slo_id = slos.get(pk, (None, None, None))
        row.firing_alerts = firing.get(pk, 0)
        control = controls.get(pk)
        row.paused = bool(control and control.paused)
        row.pinned = control_pinned_replicas(control=control, now=now)
        row.degradation = degradation.get(pk)
        row.sparkline = sparklines.get(pk) or no_sparkline
    return rows


# --------------------------------------------------------------------------- charts


def downsample(
    points: Sequence[tuple[float, float]], *, max_points: int
) -> list[tuple[float, float]]:
    """At most ``max_points`` points: the mean of each of ``max_points`` equal runs (the
    time of its first point), so a spike still moves its bucket."""
    if len(points) <= max_points:
        return list(points)
    size = len(points) / max_points
    out = []
    for i in range(max_points):
        bucket = points[int(i * size) : int((i + 1) * size)]
        if bucket:
            out.append((bucket[0][0], sum(v for _, v in bucket) / len(bucket)))
    return out


def chart_data(
    *,
    series: Mapping[str, Sequence[tuple[float, float]]],
    max_points: int = MAX_POINTS,
    markers: Iterable[float] = (),
    lines: Mapping[str, float | None] | None = None,
    annotations: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The JSON the console's chart component draws (``charts.js``): one shared x axis
    (unix seconds, union of the series' times), one y array per series with ``null`` where a
    series has no point, vertical ``markers``, horizontal ``lines`` and labelled
    ``annotations`` ({t, label, kind}: degradation level and toggle changes)."""
    sampled = {name: downsample(points, max_points=max_points) for name, points in series.items()}
    xs = sorted({t for points in sampled.values() for t, _ in points})
    index = {t: i for i, t in enumerate(xs)}
    ys: list[list[float | None]] = []
    for points in sampled.values():
        column: list[float | None] = [None] * len(xs)
        for t, v in points:
            column[index[t]] = v
        ys.append(column)
    return {
        "labels": list(sampled),
        "x": xs,
        "y": ys,
        "markers": sorted(markers),
        "lines": [{"label": k, "value": v} for k, v in (lines or {}).items() if v is not None],
        "annotations": [dict(a) for a in annotations],
    }


def _samples(deployment: Deployment, signal: str, since: datetime) -> list[tuple[float, float]]:
    return [
        (ts.timestamp(), value)
        for ts, value in metric_series(
            deployment=deployment, signal=signal, since=since
        ).values_list("ts", "value")
    ]


def deployment_charts(
    *, deployment: Deployment, range_key: str, now: datetime | None = None
) -> dict[str, dict[str, Any]]:
    """Chart data of the deployment page over the chosen range, from stored samples and
    decisions (never live Prometheus), each series at most :data:`MAX_POINTS` points."""
    now = now or timezone.now()
    since = now - RANGES.get(range_key, RANGES[DEFAULT_RANGE])
    decisions = list(
        DecisionRecord.objects.filter(deployment=deployment, at__gte=since)
        .order_by("at")
        .values_list("at", "current_replicas", "desired_replicas")
    )
    replicas = [(at.timestamp(), float(cur)) for at, cur, _ in decisions]
    changes = [at.timestamp() for at, cur, want in decisions if cur != want]
    objective = (
        Slo.objects.filter(
            deployment=deployment,
            enabled=True,
            sli_kind=SliKind.LATENCY,
            latency_metric=LatencyMetric.TTFT,
        )
        .order_by("threshold_seconds")
        .values_list("threshold_seconds", flat=True)
        .first()
    )
    s = {signal: _samples(deployment, signal, since) for signal in _CHART_SIGNALS}
    levels, notes, top = degradation_marks(deployment=deployment, since=since, now=now)
    charts = {
        "demand": chart_data(
            series={
                "queue": s[Signal.QUEUE_LENGTH],
                "requests/s": s[Signal.REQUEST_RATE],
                "replicas": replicas,
            },
            markers=changes,
            annotations=notes,
        ),
        "latency": chart_data(
            series={
                "TTFT p50 (s)": s[Signal.TTFT_P50],
                "TTFT p95 (s)": s[Signal.TTFT_P95],
                "TTFT p99 (s)": s[Signal.TTFT_P99],
                "ITL p95 (s)": s[Signal.ITL_P95],
            },
            lines={"TTFT SLO": objective},
            annotations=notes,
        ),
        "utilisation": chart_data(
            series={
                "KV-cache": s[Signal.KV_CACHE_USAGE],
                "GPU": s[Signal.GPU_UTILIZATION],
            },
            annotations=notes,
        ),
    }
    if levels:  # the deployment has degradation policies
        charts["degradation"] = {
            **chart_data(series=levels, annotations=notes),
            "y_max": top,  # the y axis shows every level a policy has
        }
    return charts


_CHART_SIGNALS = (
    Signal.QUEUE_LENGTH,
    Signal.REQUEST_RATE,
    Signal.TTFT_P50,
    Signal.TTFT_P95,
    Signal.TTFT_P99,
    Signal.ITL_P95,
    Signal.KV_CACHE_USAGE,
    Signal.GPU_UTILIZATION,
)


# --------------------------------------------------------------------------- deployment page


def deployment_decisions(*, deployment: Deployment, limit: int = 50) -> list[DecisionRecord]:
    """The latest decisions, newest first (the timeline)."""
    return list(DecisionRecord.objects.filter(deployment=deployment).order_by("-at", "-id")[:limit])


def deployment_actions(*, deployment: Deployment, limit: int = 20) -> list[ScaleAction]:
    return list(
        ScaleAction.objects.filter(deployment=deployment).order_by("-created_at", "-id")[:limit]
    )


def deployment_alerts(*, deployment: Deployment, limit: int = 20) -> list[Alert]:
    """Its firing alerts first, then the latest resolved ones."""
    # "firing" sorts before "resolved".
    return list(
        Alert.objects.filter(deployment=deployment).order_by("status", "-starts_at")[:limit]
    )


def deployment_control(*, deployment: Deployment) -> DeploymentControl | None:
    return DeploymentControl.objects.filter(deployment=deployment).first()


@dataclass(frozen=True)
class CapacityView:
    """A policy's demand sizing as the deployment page shows it: the capacity per replica it
    started from and the one learned online (None until an interval taught something), in
    the demand signal's unit, with the bounds learning keeps to."""

    policy: AutoscalingPolicy
    by_demand: bool
    signal: str
    initial: float
    learned: float | None
    intervals: int
    low: float
    high: float


def deployment_capacity(
    *, deployment: Deployment, control: DeploymentControl | None
) -> CapacityView | None:
    """The deployment's demand sizing, or None when it has no saved policy."""
    policy = AutoscalingPolicy.objects.filter(deployment=deployment).first()
    if policy is None:
        return None
    demand = [
        t for t in policy.targets if isinstance(t, dict) and t.get("kind") == "demand_capacity"
    ]
    learned, intervals = None, 0
    raw = (control.history or {}).get("capacity") if control is not None else None
    if isinstance(raw, list) and len(raw) == 2:
        try:
            learned, intervals = float(raw[0]), int(raw[1])
        except (TypeError, ValueError):
            learned, intervals = None, 0
    initial = policy.capacity_initial_per_replica
    spread = max(1.0, policy.capacity_learn_range)
    return CapacityView(
        policy=policy,
        by_demand=bool(demand),
        signal=str(demand[0].get("signal", "")) if demand else "",
        initial=initial,
        learned=learned,
        intervals=intervals,
        low=initial / spread,
        high=initial * spread,
    )


# --------------------------------------------------------------------------- backtest page


def backtest_saved_policy(*, deployment: Deployment) -> AutoscalingPolicy | None:
    """The saved policy a backtest starts from (overrides replace some of its fields)."""
    return AutoscalingPolicy.objects.filter(deployment=deployment).first()


# The rule an SLO boost decides with: the steps where the SLO burned at or above the boost's
# threshold and the boost set the count (the only SLO reading a backtest result carries).
SLO_BOOST_RULE = "slo_boost"


@dataclass
class BacktestOutcome:
    """What the backtest page shows of a result: the API's payload (its summary and the
    steps where something changed), the chart, and figures derived from the summary."""

    payload: dict[str, Any]
    chart: dict[str, Any]
    slo_boost_steps: int

    @property
    def summary(self) -> dict[str, Any]:
        return self.payload["summary"]

    @property
    def gpu_hours_difference(self) -> float | None:
        """Policy minus actual GPU-hours over the steps where the actual count is known, so
        like for like (negative: the policy would have used fewer)."""
        actual = self.summary["actual_gpu_hours"]
        return None if actual is None else round(self.summary["gpu_hours_known"] - actual, 4)


def backtest_outcome(*, result: BacktestResult, deployment: Deployment) -> BacktestOutcome:
    """The page's view of ``result``: the policy's replicas against those that actually
    ran, with the demand the policy scaled on from the stored samples of the range, and
    the steps the SLO boost decided marked."""
    since = datetime.fromtimestamp(result.start, UTC)
    until = datetime.fromtimestamp(result.end, UTC) + timedelta(seconds=1)
    demand = {
        f"{signal} (stored)": [
            (ts.timestamp(), value)
            for ts, value in metric_series(
                deployment=deployment, signal=signal, since=since, until=until
            ).values_list("ts", "value")
        ]
        for signal in result.signals
        if signal != SLO_BURN_RATE
    }
    boosted = [s.t for s in result.steps if s.rule == SLO_BOOST_RULE]
    chart = chart_data(
        series={
            "policy replicas": [(s.t, float(s.replicas)) for s in result.steps],
            "actual replicas": [
                (s.t, float(s.actual)) for s in result.steps if s.actual is not None
            ],
            **{name: points for name, points in demand.items() if points},
        },
        markers=boosted,
    )
    return BacktestOutcome(
        payload=backtest_payload(result, deployment.pk, "changes"),
        chart=chart,
        slo_boost_steps=len(boosted),
    )


# --------------------------------------------------------------------------- SLO pages


def slos_visible(*, user: AnyUser) -> QuerySet[Slo]:
    """The SLOs the user may see, with their team, deployment and latest status."""
    return team_scoped(
        Slo.objects.select_related("team", "deployment", "status"), user=user
    ).order_by("team__slug", "name")


def slo_status(slo: Slo) -> SloStatus | None:
    """The SLO's latest evaluation, ``None`` before the first (no query when selected)."""
    try:
        return slo.status
    except SloStatus.DoesNotExist:
        return None


def duration_text(seconds: int) -> str:
    """A window's length for people, in its two largest units: ``4m 40s``, ``2d 19h``."""
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
        elif parts:
            break  # keep the units adjacent: 2d 0h 5m reads as 2d
    return " ".join(parts[:2]) or "0s"


def slo_windows(*, slo: Slo, status: SloStatus | None) -> dict[str, int]:
    """Window name → seconds as last evaluated (the compression in force then), else as
    the settings give them now."""
    stored = (status.windows if status is not None else None) or {}
    if stored.get("period"):
        return {name: int(seconds) for name, seconds in stored.items()}
    return scaled_windows(slo.window, compression=settings.SLO_WINDOW_COMPRESSION)


@dataclass
class SloRow:
    """One SLO's line of the SLO list."""

    slo: Slo
    status: SloStatus | None
    deployments: list[Deployment]
    windows: dict[str, int]

    def _burn(self, window: str) -> float | None:
        return (self.status.burn_rates or {}).get(window) if self.status is not None else None

    @property
    def short_burn(self) -> float | None:
        return self._burn(LIST_BURN_WINDOWS[0])

    @property
    def long_burn(self) -> float | None:
        return self._burn(LIST_BURN_WINDOWS[1])

    @property
    def short_window(self) -> str:
        return duration_text(self.windows[LIST_BURN_WINDOWS[0]])

    @property
    def long_window(self) -> str:
        return duration_text(self.windows[LIST_BURN_WINDOWS[1]])


# The list shows the fastest paging pair: the short window that says the burn goes on, the
# long one that says it is significant.
LIST_BURN_WINDOWS = (CONDITIONS[0].short, CONDITIONS[0].long)


def _covered_deployments(slos: Sequence[Slo]) -> dict[int, list[Deployment]]:
    """SLO id → the deployments it covers: its own, or its team's matching its labels (one
    query for every label-selected SLO of the list)."""
    by_labels = [slo for slo in slos if slo.deployment_id is None]
    team_deployments: dict[int, list[Deployment]] = defaultdict(list)
    if by_labels:
        for deployment in (
            Deployment.objects.filter(team_id__in={slo.team_id for slo in by_labels})
            .exclude(status=DeploymentStatus.RETIRED)
            .order_by("name")
        ):
            team_deployments[deployment.team_id].append(deployment)
    return {
        slo.pk: [slo.deployment]
        if slo.deployment is not None
        else slo_deployments(slo=slo, team_deployments=team_deployments[slo.team_id])
        for slo in slos
    }


def slo_rows(*, slos: QuerySet[Slo]) -> list[SloRow]:
    """The SLO list's rows for already scoped and filtered SLOs: at most two queries,
    whatever their number."""
    listed = list(slos)
    covered = _covered_deployments(listed)
    rows = []
    for slo in listed:
        status = slo_status(slo)
        rows.append(
            SloRow(
                slo=slo,
                status=status,
                deployments=covered[slo.pk],
                windows=slo_windows(slo=slo, status=status),
            )
        )
    return rows


@dataclass(frozen=True)
class BurnCondition:
    """One multi-window burn-rate condition of an SLO as last evaluated."""

    severity: str
    long: str  # window name ("1h"), as the conditions and the stored rates name them
    short: str
    long_length: str  # its length for this SLO ("1h", or "15m" for a 7-day SLO)
    short_length: str
    threshold: float
    long_rate: float | None
    short_rate: float | None
    firing: bool

    @property
    def label(self) -> str:
        return f"{self.severity}:{self.long}/{self.short}"

    @property
    def exceeded(self) -> bool:
        """Both windows at or over the threshold."""
        return (
            self.long_rate is not None
            and self.short_rate is not None
            and min(self.long_rate, self.short_rate) >= self.threshold
        )

    @property
    def held_back(self) -> bool:
        """Over the threshold, but the minimum-traffic guard keeps it from firing."""
        return self.exceeded and not self.firing


def slo_burn_conditions(
    *, status: SloStatus | None, windows: Mapping[str, int]
) -> list[BurnCondition]:
    """Each window pair of the multi-window, multi-burn-rate alerting with its threshold,
    the burn rates last evaluated and whether it fires."""
    rates = (status.burn_rates if status is not None else None) or {}
    firing = set((status.firing if status is not None else None) or [])
    return [
        BurnCondition(
            severity=cond.severity,
            long=cond.long,
            short=cond.short,
            long_length=duration_text(windows[cond.long]),
            short_length=duration_text(windows[cond.short]),
            threshold=cond.burn_rate,
            long_rate=rates.get(cond.long),
            short_rate=rates.get(cond.short),
            firing=f"{cond.severity}:{cond.long}/{cond.short}" in firing,
        )
        for cond in CONDITIONS
    ]


# Burn-rate windows the chart draws, shortest first.
_CHART_BURN_WINDOWS = sorted(
    {name for cond in CONDITIONS for name in (cond.long, cond.short)},
    key=lambda name: BASE_WINDOWS_S[name],
)


def slo_charts(
    *, slo: Slo, windows: Mapping[str, int], now: datetime | None = None
) -> dict[str, dict[str, Any]]:
    """Chart data of the SLO page over its compliance period, from the stored samples
    (one query): error budget left (the burn-down), SLI against the objective, and the
    burn rate of each window with the alerting thresholds."""
    now = now or timezone.now()
    since = now - timedelta(seconds=windows["period"])
    budget: list[tuple[float, float]] = []
    sli: list[tuple[float, float]] = []
    burn: dict[str, list[tuple[float, float]]] = {name: [] for name in _CHART_BURN_WINDOWS}
    for t, value, left, rates in (
        SloStatusSample.objects.filter(slo=slo, ts__gte=since)
        .annotate(t=EpochSeconds("ts"))
        .order_by("ts")
        .values_list("t", "sli", "budget_remaining", "burn_rates")
    ):
        t = float(t)
        if left is not None:
            budget.append((t, left * 100))
        if value is not None:
            sli.append((t, value * 100))
        for name, points in burn.items():
            rate = (rates or {}).get(name)
            if rate is not None:
                points.append((t, float(rate)))
    objective = float(slo.objective_percent)
    # The objective as a flat series, not a chart line, so that the axis fits the SLI
    # (99.4 against 99.5) instead of starting at zero.
    objective_points = [(sli[0][0], objective), (sli[-1][0], objective)] if sli else []
    thresholds = {f"{c.burn_rate:g}x": c.burn_rate for c in CONDITIONS}
    return {
        "budget": chart_data(series={"error budget left (%)": budget}),
        "sli": chart_data(series={"SLI (%)": sli, "objective (%)": objective_points}),
        "burn": chart_data(
            series={f"{name} burn rate": points for name, points in burn.items()},
            lines=thresholds,
        ),
    }


def slo_row_get(*, user: AnyUser, slo_id: int) -> SloRow:
    """One SLO the user may see, as a row; another team's (or none) is a 404, as in the API."""
    rows = slo_rows(slos=slos_visible(user=user).filter(pk=slo_id))
    if not rows:
        raise Http404("No such SLO.")
    return rows[0]


def slo_events(*, slo: Slo, limit: int = 50) -> list[SloEvent]:
    """The SLO's latest state changes, newest first."""
    return list(SloEvent.objects.filter(slo=slo).order_by("-at", "-id")[:limit])


def deployment_slos(*, deployment: Deployment) -> list[SloRow]:
    """The SLOs covering a deployment: its own and its team's label-selected ones that
    match it (one query)."""
    candidates = Slo.objects.filter(team_id=deployment.team_id).filter(
        Q(deployment=deployment) | Q(deployment__isnull=True)
    )
    return [
        row
        for row in slo_rows(slos=candidates.select_related("team", "deployment", "status"))
        if slo_deployments(slo=row.slo, team_deployments=[deployment])
    ]


# --------------------------------------------------------------------------- audit page

AUDIT_PAGE_SIZE = 50


def audit_entries_visible(*, user: AnyUser) -> QuerySet[AuditEntry]:
    """The audit entries the user may see, by the audit API's rule: those of the teams
    where they hold a role (viewers included), and their own actions whatever the team."""
    return team_scoped(AuditEntry.objects.all(), user=user, user_field="actor_id")


def audit_object_types(*, entries: QuerySet[AuditEntry]) -> list[str]:
    """The object types among ``entries`` (for the filter's choices)."""
    return sorted(set(entries.order_by().values_list("object_type", flat=True).distinct()))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _cursor_encode(entry: AuditEntry) -> str:
    """An entry's place in the newest-first order: its time (microseconds) and id."""
    return f"{(entry.timestamp - _EPOCH) // _MICROSECOND}-{entry.pk}"


def _cursor_decode(cursor: str) -> tuple[datetime, int] | None:
    micros_text, _, pk_text = cursor.partition("-")
    micros, pk = ascii_int(micros_text), ascii_int(pk_text)
    if micros is None or pk is None:
        return None
    try:
        return _EPOCH + micros * _MICROSECOND, pk
    except OverflowError:
        return None


@dataclass(frozen=True)
class DiffLine:
    """One field of an audit entry's change. ``kind`` is added (no value before), removed
    (none after), changed, or note (a value recorded with the change, such as the reason);
    values are JSON text. A JSON object changed in place lists its keys in ``keys``."""

    field: str
    kind: str
    old: str = ""
    new: str = ""
    keys: tuple[DiffLine, ...] = ()


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _value_diff(name: str, old: Any, new: Any) -> DiffLine:
    if old is None:
        return DiffLine(name, "added", new=_json(new))
    if new is None:
        return DiffLine(name, "removed", old=_json(old))
    keys: tuple[DiffLine, ...] = ()
    if isinstance(old, dict) and isinstance(new, dict):
        keys = tuple(
            _value_diff(key, old.get(key), new.get(key))
            for key in sorted(set(old) | set(new))
            if old.get(key) != new.get(key)
        )
    return DiffLine(name, "changed", old=_json(old), new=_json(new), keys=keys)


def audit_diff(changes: Mapping[str, Any] | None) -> list[DiffLine]:
    """An entry's field-level diff: ``changes`` holds ``[old, new]`` per changed field
    (creates have ``old`` null, deletes ``new`` null) and plain values recorded with the
    change (an operator's reason)."""
    lines = []
    for name, value in sorted((changes or {}).items()):
        if isinstance(value, list) and len(value) == 2:
            lines.append(_value_diff(name, value[0], value[1]))
        else:
            lines.append(DiffLine(name, "note", new=_json(value)))
    return lines


@dataclass
class AuditRow:
    entry: AuditEntry
    diff: list[DiffLine]


@dataclass
class AuditPage:
    rows: list[AuditRow]
    cursor: str  # this page's start ("" for the newest)
    next_cursor: str | None  # the next (older) page's start; None on the last page


def audit_page(
    *, entries: QuerySet[AuditEntry], cursor: str = "", size: int = AUDIT_PAGE_SIZE
) -> AuditPage:
    """One page of ``entries``, newest first, starting after ``cursor`` (keyset paging on
    time and id: a page costs the same however deep it is, and entries written meanwhile
    do not shift it). An unreadable cursor starts at the newest."""
    size = max(1, min(size, AUDIT_PAGE_SIZE))
    after = _cursor_decode(cursor) if cursor else None
    if after is None:
        cursor = ""
    else:
        ts, pk = after
        entries = entries.filter(Q(timestamp__lt=ts) | Q(timestamp=ts, pk__lt=pk))
    fetched = list(entries.select_related("team").order_by("-timestamp", "-id")[: size + 1])
    shown = fetched[:size]
    return AuditPage(
        rows=[AuditRow(entry=entry, diff=audit_diff(entry.changes)) for entry in shown],
        cursor=cursor,
        next_cursor=_cursor_encode(shown[-1]) if len(fetched) > size else None,
    )


# =========================================================================== alerts page
#
# Reads of the alerts page (``views/alerts.py``): alerts grouped as the alerts app groups
# them for delivery, what mutes them, silences, and each channel's latest deliveries.
# Routing, grouping and muting are the alerts app's own functions, so the page shows what
# is (or would be) sent; the query count depends on the number of teams, not of alerts.

ALERTS_RECENT = timedelta(hours=24)  # resolved alerts and expired silences kept in view
ALERTS_LIMIT = 500
DELIVERIES_PER_CHANNEL = 10
PREVIEW_LIMIT = 50
M = TypeVar("M", bound=Model)


def team_can_operate(*, user: AnyUser, team_id: int | None) -> bool:
    """Operator+ in the team; an object of no team (a silence for every team, a teamless
    alert) is the superusers' to change, as in the API."""
    return user_has_role(user=user, team_id=team_id, role=Role.OPERATOR)


def alerts_visible(*, user: AnyUser) -> QuerySet[Alert]:
    """The alerts the user may see (the API's scoping), with what a row shows."""
    return team_scoped(
        Alert.objects.select_related("team", "deployment", "acknowledged_by"), user=user
    )


def _one_or_404(queryset: QuerySet[M], pk: int) -> M:
    """The row ``pk`` of an already scoped queryset; another team's (or none) is a 404."""
    found = queryset.filter(pk=pk).first()
    if found is None:
        raise Http404(f"No such {queryset.model._meta.verbose_name}.")
    return found


def alert_get(*, user: AnyUser, alert_id: int) -> Alert:
    return _one_or_404(alerts_visible(user=user), alert_id)


def alerts_recent(*, user: AnyUser, now: datetime | None = None) -> QuerySet[Alert]:
    """Firing alerts and those resolved within :data:`ALERTS_RECENT`, firing first."""
    since = (now or timezone.now()) - ALERTS_RECENT
    recent = (
        Q(status=AlertStatus.FIRING)
        | Q(ends_at__gte=since)
        | Q(ends_at__isnull=True, received_at__gte=since)
    )
    return alerts_visible(user=user).filter(recent).order_by("status", "-starts_at", "-id")


@dataclass
class AlertRow:
    alert: Alert
    silenced_by: Silence | None
    inhibited: bool
    can_operate: bool
    anchor: bool  # its first row on the page (holds the ``alert-<id>`` anchor)


@dataclass
class DeliveredGroup:
    """Alerts notified together: a route's group (its ``group_by`` values), with the
    stored notification state when the group has been formed; ``route`` None holds the
    alerts no route of their team takes (nothing is sent for them)."""

    route: Route | None
    labels: dict[str, str]
    key_hash: str
    channels: list[str]
    state: AlertGroup | None
    rows: list[AlertRow] = field(default_factory=list)

    @property
    def dom_id(self) -> str:
        return f"group-{self.route.pk}-{self.key_hash}" if self.route else "group-unrouted"

    @property
    def title(self) -> str:
        if self.route is None:
            return "Not routed"
        shown = ", ".join(f'{k}="{v}"' for k, v in self.labels.items())
        return shown or "every alert of the route"

    @property
    def firing(self) -> int:
        return sum(row.alert.status == AlertStatus.FIRING for row in self.rows)


def _route_channels(route_ids: Sequence[int]) -> dict[int, list[str]]:
    names: dict[int, list[str]] = defaultdict(list)
    for route_id, name, enabled in (
        Route.channels.through.objects.filter(route_id__in=route_ids)
        .order_by("channel__name")
        .values_list("route_id", "channel__name", "channel__enabled")
    ):
        names[route_id].append(name if enabled else f"{name} (disabled)")
    return names


def alert_groups(
    *, user: AnyUser, alerts: QuerySet[Alert], now: datetime | None = None
) -> list[DeliveredGroup]:
    """The (scoped, filtered) alerts in their delivery groups: each alert goes where
    ingestion puts it (``route_matches`` then ``grouping.group_key``), so an alert that
    several routes take (``continue``) is in each of their groups. Groups with firing
    alerts come first, then the most recently started."""
    now = now or timezone.now()
    rows = list(alerts[:ALERTS_LIMIT])
    team_ids = {a.team_id for a in rows if a.team_id is not None}
    routes = routes_for_teams(team_ids)
    channels = _route_channels([r.pk for team_routes in routes.values() for r in team_routes])
    silences = silences_active(team_ids=team_ids, now=now)
    loaded = silences_with_matchers(silences)
    inhibited: set[tuple[int, str]] = set()
    for team_id in team_ids:
        members = [a for a in rows if a.team_id == team_id]
        muted = inhibited_fingerprints(team_id=team_id, candidates=members)
        inhibited |= {(team_id, fp) for fp in muted}
    groups: dict[tuple[int, str], DeliveredGroup] = {}
    unrouted = DeliveredGroup(route=None, labels={}, key_hash="", channels=[], state=None)
    for alert in rows:
        row = AlertRow(
            alert=alert,
            silenced_by=alert_silenced_by(alert, silences, loaded=loaded),
            inhibited=(alert.team_id, alert.fingerprint) in inhibited,
            can_operate=team_can_operate(user=user, team_id=alert.team_id),
            anchor=True,
        )
        taken = route_matches(routes.get(alert.team_id, []), alert.labels) if alert.team_id else []
        for i, route in enumerate(taken):
            labels = grouping.group_key(route.group_by or [], alert.labels)
            key = (route.pk, fingerprint(labels))
            if key not in groups:
                groups[key] = DeliveredGroup(
                    route=route,
                    labels=labels,
                    key_hash=key[1],
                    channels=channels.get(route.pk, []),
                    state=None,
                )
            groups[key].rows.append(row if i == 0 else replace(row, anchor=False))
        if not taken:
            unrouted.rows.append(row)
    if groups:
        stored = AlertGroup.objects.filter(
            route_id__in={k[0] for k in groups}, key_hash__in={k[1] for k in groups}
        )
        for state in stored:
            if (state.route_id, state.key_hash) in groups:
                groups[(state.route_id, state.key_hash)].state = state
    ordered = sorted(
        groups.values(),
        key=lambda g: (g.firing == 0, -max(r.alert.starts_at.timestamp() for r in g.rows)),
    )
    return ordered + ([unrouted] if unrouted.rows else [])


def silence_preview(
    *, user: AnyUser, team_id: int | None, matchers: list[dict[str, str]]
) -> tuple[list[Alert], int]:
    """The firing alerts a silence of ``team_id`` with these (checked) matchers would mute
    now, tested with the function that mutes them at notification time; the first
    :data:`PREVIEW_LIMIT` of them and how many in all."""
    probe = Silence(team_id=team_id, matchers=matchers)
    loaded = silences_with_matchers([probe])
    candidates = alerts_visible(user=user).filter(status=AlertStatus.FIRING)
    if team_id is not None:
        candidates = candidates.filter(team_id=team_id)
    hits = [
        alert
        for alert in candidates.order_by("-starts_at", "-id")
        if alert_silenced_by(alert, [probe], loaded=loaded) is not None
    ]
    return hits[:PREVIEW_LIMIT], len(hits)


@dataclass
class SilenceRow:
    silence: Silence
    matchers: str
    state: str  # "active", "pending" or "expired"
    can_expire: bool


def silences_visible(*, user: AnyUser) -> QuerySet[Silence]:
    """The API's scoping: the user's teams' silences and those for every team."""
    return team_scoped(
        Silence.objects.select_related("team", "created_by"), user=user, include_global=True
    )


def silence_get(*, user: AnyUser, silence_id: int) -> Silence:
    return _one_or_404(silences_visible(user=user), silence_id)


def silence_rows(*, user: AnyUser, now: datetime | None = None) -> list[SilenceRow]:
    """Silences in force or to come, and those ended within :data:`ALERTS_RECENT`."""
    now = now or timezone.now()
    silences = silences_visible(user=user).filter(ends_at__gte=now - ALERTS_RECENT)
    rows = []
    for silence in silences.order_by("-ends_at", "-id")[:ALERTS_LIMIT]:
        state = (
            "expired"
            if silence.ends_at <= now
            else ("pending" if silence.starts_at > now else "active")
        )
        rows.append(
            SilenceRow(
                silence=silence,
                matchers=", ".join(m.render() for m in matchers_load(silence.matchers)),
                state=state,
                can_expire=state != "expired"
                and team_can_operate(user=user, team_id=silence.team_id),
            )
        )
    return rows


def channels_visible(*, user: AnyUser) -> QuerySet[Channel]:
    # The settings stay encrypted: a listing never needs them.
    return team_scoped(
        Channel.objects.select_related("team").defer("config", "title_template", "body_template"),
        user=user,
    ).order_by("team__slug", "name")


def channel_get(*, user: AnyUser, channel_id: int) -> Channel:
    return _one_or_404(team_scoped(Channel.objects.all(), user=user), channel_id)


@dataclass
class DeliveryRow:
    delivery: Delivery
    what: str


@dataclass
class ChannelDeliveries:
    channel: Channel
    deliveries: list[DeliveryRow]
    can_test: bool

    @property
    def dom_id(self) -> str:
        return f"channel-{self.channel.pk}"


def _delivery_what(delivery: Delivery) -> str:
    if delivery.idempotency_key.startswith("test-"):
        return "test message"
    if delivery.idempotency_key.startswith("digest-"):
        return "digest"
    if delivery.idempotency_key.startswith("degradation-"):
        return "degradation level change"
    group = delivery.group
    if group is None:
        return "group notification"
    shown = ", ".join(f'{k}="{v}"' for k, v in (group.labels or {}).items())
    return f"{group.route.name}: {shown or 'every alert'}"


def channel_deliveries(
    *, user: AnyUser, limit: int = DELIVERIES_PER_CHANNEL
) -> list[ChannelDeliveries]:
    """Each visible channel with its latest ``limit`` deliveries: two queries in all (a
    row number per channel picks the latest of each)."""
    channels = list(channels_visible(user=user))
    latest: dict[int, list[DeliveryRow]] = defaultdict(list)
    deliveries = (
        Delivery.objects.filter(channel_id__in=[c.pk for c in channels])
        .annotate(
            rank=Window(
                RowNumber(),
                partition_by=[F("channel_id")],
                order_by=[F("created_at").desc(), F("id").desc()],
            )
        )
        .filter(rank__lte=limit)
        .select_related("group__route")
        .defer("notification", "response")
        .order_by("channel_id", "-created_at", "-id")
    )
    for delivery in deliveries:
        latest[delivery.channel_id].append(DeliveryRow(delivery, _delivery_what(delivery)))
    return [
        ChannelDeliveries(
            channel=channel,
            deliveries=latest.get(channel.pk, []),
            can_test=team_can_operate(user=user, team_id=channel.team_id),
        )
        for channel in channels
    ]


# --------------------------------------------------------------------------- degradation


@dataclass(frozen=True)
class PolicyLevel:
    """Where one of the deployment's degradation policies stands."""

    policy: DegradationPolicy
    level: int
    level_name: str
    choices: list[tuple[int, str]]  # the levels a pin may hold, 0 first
    since: datetime | None
    pinned_level: int | None
    pinned_by: str
    pin_reason: str
    pinned_until: datetime | None
    dry_level: int = 0  # where a dry-run policy would stand

    @property
    def pinned(self) -> bool:
        return self.pinned_level is not None


@dataclass(frozen=True)
class ToggleRow:
    """A toggle that applies to the deployment (its own, or its team's) and what a caller
    no rule matches is served now."""

    toggle: Toggle
    own: bool  # the deployment's own toggle, not the team's
    shadowed: bool  # a team toggle the deployment's own toggle of the same key replaces
    served: str  # JSON text of the served value
    reason: str  # OpenFeature reason of that value

    @property
    def state(self) -> str:
        if self.toggle.overridden:
            return f"level {self.toggle.override_level}"
        return "on" if self.toggle.enabled else "off"


@dataclass(frozen=True)
class DegradationEvent:
    """A line of the degradation history: a level change or a toggle change."""

    at: datetime
    kind: str  # "level" or "toggle"
    subject: str
    change: str
    actor: str
    reason: str
    dry_run: bool = False


@dataclass(frozen=True)
class DegradationSection:
    policies: list[PolicyLevel]
    toggles: list[ToggleRow]
    history: list[DegradationEvent]
    automatic: bool  # the global switch of automatic degradation

    @property
    def level(self) -> int:
        return max((p.level for p in self.policies), default=0)


def _level_names(levels: Any) -> list[str]:
    names = ["not degraded"]
    for index, level in enumerate(levels if isinstance(levels, list) else [], 1):
        name = level.get("name") if isinstance(level, dict) else None
        names.append(str(name) if name else f"level {index}")
    return names


def _applying_toggles(deployment: Deployment) -> QuerySet[Toggle]:
    return Toggle.objects.filter(team_id=deployment.team_id).filter(
        Q(deployment=deployment) | Q(deployment__isnull=True)
    )


def deployment_toggle_get(*, deployment: Deployment, toggle_id: int) -> Toggle:
    """A toggle that applies to ``deployment``; any other is a 404."""
    return _one_or_404(_applying_toggles(deployment).select_related("team", "deployment"),
                       toggle_id)  # fmt: skip


def deployment_policy_get(*, deployment: Deployment, policy_id: int) -> DegradationPolicy:
    """One of the deployment's policies; any other is a 404."""
    return _one_or_404(
        DegradationPolicy.objects.filter(deployment=deployment).select_related(
            "team", "deployment"
        ),
        policy_id,
    )


def deployment_degradation(*, deployment: Deployment, limit: int = 20) -> DegradationSection:
    """The deployment page's degradation section in five queries: its policies with their
    state, the toggles that apply to it with the value they serve, the latest level and
    toggle changes, and the global switch."""
    policies = []
    for policy in DegradationPolicy.objects.filter(deployment=deployment).select_related(
        "state"
    ).order_by("name"):  # fmt: skip
        state = policy.state if _has_state(policy) else None
        names = _level_names(policy.levels)
        level = state.level if state else 0
        policies.append(
            PolicyLevel(
                policy=policy,
                level=level,
                level_name=names[level] if level < len(names) else f"level {level}",
                choices=[(i, f"{i} — {name}") for i, name in enumerate(names)],
                since=state.level_since if state else None,
                pinned_level=state.pinned_level if state else None,
                pinned_by=state.pinned_by if state else "",
                pin_reason=state.pin_reason if state else "",
                pinned_until=state.pinned_until if state else None,
                dry_level=state.dry_level if state else 0,
            )
        )
    toggles = list(_applying_toggles(deployment).order_by("key", "deployment_id"))
    own_keys = {t.key for t in toggles if t.deployment_id is not None}
    rows = []
    for toggle in toggles:
        resolution = evaluate(toggle_definition(toggle, deployment_name=deployment.name), {})
        rows.append(
            ToggleRow(
                toggle=toggle,
                own=toggle.deployment_id is not None,
                shadowed=toggle.deployment_id is None and toggle.key in own_keys,
                served=json.dumps(resolution.value),
                reason=str(resolution.reason),
            )
        )
    history = [
        DegradationEvent(
            at=at, kind="level", subject=name, change=f"level {before} → {after}",
            actor=actor, reason=reason, dry_run=dry,
        )
        for at, name, before, after, actor, reason, dry in DegradationTransition.objects.filter(
            policy__deployment=deployment
        ).order_by("-at", "-id").values_list(
            "at", "policy__name", "from_level", "to_level", "actor", "reason", "dry_run"
        )[:limit]
    ]  # fmt: skip
    history += [
        DegradationEvent(
            at=at, kind="toggle", subject=key,
            change=("level " + str(level) + ": " if level is not None else
                    "on: " if enabled else "off: ") + json.dumps(value),
            actor=actor, reason=reason,
        )
        for at, key, enabled, value, level, actor, reason in ToggleChange.objects.filter(
            toggle__in=_applying_toggles(deployment)
        ).order_by("-at", "-id").values_list(
            "at", "toggle__key", "enabled", "value", "level", "actor", "reason"
        )[:limit]
    ]  # fmt: skip
    history.sort(key=lambda event: event.at, reverse=True)
    switch = DegradationSwitch.objects.filter(pk=1).values_list("automatic", flat=True).first()
    return DegradationSection(
        policies=policies,
        toggles=rows,
        history=history[:limit],
        automatic=switch is not False,
    )


def _has_state(policy: DegradationPolicy) -> bool:
    try:
        policy.state  # noqa: B018 - select_related filled it, or it raises
    except DegradationState.DoesNotExist:
        return False
    return True


def degradation_marks(
    *, deployment: Deployment, since: datetime, now: datetime
) -> tuple[dict[str, list[tuple[float, float]]], list[dict[str, Any]], int]:
    """What the deployment's charts show of degradation over [since, now]: the level of
    each policy as a step series, annotations (a level change, dry-run ones marked, or a
    toggle change) at their times, and the highest level its policies have. Three
    queries."""
    start, end = since.timestamp(), now.timestamp()
    annotations: list[dict[str, Any]] = []
    steps: dict[str, list[tuple[float, float]]] = {}
    current: dict[str, int | None] = {}
    top = 0
    for name, level, levels in DegradationPolicy.objects.filter(deployment=deployment).values_list(
        "name", "state__level", "levels"
    ):
        current[name] = level
        top = max(top, len(levels) if isinstance(levels, list) else 0, level or 0)
    transitions = list(
        DegradationTransition.objects.filter(policy__deployment=deployment, at__gte=since)
        .order_by("at", "id")
        .values_list("at", "policy__name", "from_level", "to_level", "dry_run")
    )
    for at, name, before, after, dry in transitions:
        t = at.timestamp()
        label = f"{name}: {before}→{after}" + (" (dry run)" if dry else "")
        annotations.append({"t": t, "label": label, "kind": "dry-run" if dry else "level"})
        if dry:
            continue
        points = steps.setdefault(name, [])
        if points:
            points.append((t - 1, points[-1][1]))
        else:
            points.append((start, float(before)))
            points.append((t - 1, float(before)))
        points.append((t, float(after)))
    for name, now_level in current.items():
        points = steps.setdefault(name, [(start, float(now_level or 0))])
        points.append((end, float(now_level or 0)))
    for at, key, enabled, changed_level in (
        ToggleChange.objects.filter(toggle__in=_applying_toggles(deployment), at__gte=since)
        .order_by("at", "id")
        .values_list("at", "toggle__key", "enabled", "level")
    ):
        state = (
            f"level {changed_level}" if changed_level is not None else ("on" if enabled else "off")
        )
        annotations.append({"t": at.timestamp(), "label": f"{key} {state}", "kind": "toggle"})
    annotations.sort(key=lambda a: a["t"])
    series = {f"level: {name}": points for name, points in sorted(steps.items())}
    return series, annotations, top


def _degradation_levels(deployment_ids: DeploymentIds) -> dict[int, int]:
    """deployment id → the highest current level over its degradation policies (0 when
    none is degraded); deployments without a policy are absent. One query."""
    return {
        deployment_id: level or 0
        for deployment_id, level in DegradationPolicy.objects.filter(
            deployment_id__in=deployment_ids
        )
        .order_by()
        .values("deployment_id")
        .annotate(top=Max("state__level"))
        .values_list("deployment_id", "top")
    }
