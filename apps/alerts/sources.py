"""Alerts the control plane raises itself, reconciled every ``ALERTS_RULES_INTERVAL_S``.

Each pass works out which alerts *should* be firing now from:

- SLOs: a page (fast burn) or ticket (slow burn) state → ``SLOErrorBudgetBurn``;
- the control loop: the latest decision of each autoscaled deployment held on missing
  metrics (``AutoscalerMetricsMissing``), found a replica count changed by hand
  (``AutoscalerDrift``) or could not read its scale target (``AutoscalerTargetUnreadable``);
  its latest scale action failed (``ScaleActionFailed``); it sits at max replicas while an
  SLO pages (``AtMaxReplicasWhileSloBurns``);
- threshold rules on a catalogue signal (from the latest collected observations), on
  PromQL or on a LogQL metric query over the team's logs, once the condition has held for
  the rule's ``for``.

Alerts of these sources that fire but are no longer wanted are resolved. A rule whose data
is unavailable keeps its alerts as they are: missing data neither fires nor resolves.
"""

from __future__ import annotations

import operator
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from apps.accounts.models import Team
from apps.autoscaling.models import ActionStatus, DecisionRecord, Mode, ScaleAction
from apps.integrations.prometheus import PrometheusClient, PrometheusError
from apps.inventory.models import Deployment
from apps.metrics.selectors import Observation, latest_observations
from apps.slos.models import Slo, SloState

from .labels import fingerprint
from .models import Alert, AlertRule, AlertSource, AlertStatus
from .payloads import IncomingAlert
from .services import alerts_ingest

logger = structlog.get_logger("controlplane.alerts")

SOURCES = (AlertSource.SLO, AlertSource.AUTOSCALING, AlertSource.RULE)
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


@dataclass
class Wanted:
    # (team id, fingerprint) -> (source, labels, annotations): alerts are per team.
    alerts: dict[tuple[int, str], tuple[str, dict[str, str], dict[str, str]]] = field(
        default_factory=dict
    )
    keep: set[tuple[int, str]] = field(default_factory=set)  # firing, held as they are

    def add(
        self, source: str, team_id: int, labels: Mapping[str, str], annotations: Mapping[str, str]
    ) -> None:
        clean = _alert_labels(labels)
        self.alerts[(team_id, fingerprint(clean))] = (source, clean, dict(annotations))


def _alert_labels(labels: Mapping[str, object]) -> dict[str, str]:
    """An alert's label set: empty labels are absent labels (as in Prometheus)."""
    return {k: str(v) for k, v in labels.items() if v not in (None, "")}


def _deployment_labels(dep: Deployment) -> dict[str, str]:
    return {"deployment": dep.name, "namespace": dep.target_namespace or ""}


def _slo_alerts(wanted: Wanted) -> dict[int, bool]:
    """Returns deployment id → an SLO of it pages now."""
    paging: dict[int, bool] = defaultdict(bool)
    for slo in Slo.objects.filter(enabled=True).select_related("status", "deployment", "team"):
        status = getattr(slo, "status", None)
        if status is None or status.state not in (SloState.PAGE, SloState.TICKET):
            continue
        labels = {
            "alertname": "SLOErrorBudgetBurn",
            "slo": slo.name,
            "team": slo.team.slug,
            "severity": "critical" if status.state == SloState.PAGE else "warning",
        }
        if slo.deployment is not None:
            labels.update(_deployment_labels(slo.deployment))
            paging[slo.deployment.pk] |= status.state == SloState.PAGE
        wanted.add(
            AlertSource.SLO,
            slo.team_id,
            labels,
            {"summary": f"SLO {slo.name}: {status.reason}"[:500], "description": status.reason},
        )
    return paging


def _loop_alerts(wanted: Wanted, paging: Mapping[int, bool]) -> None:
    latest_ids = (
        DecisionRecord.objects.filter(deployment__autoscaling_policy__isnull=False)
        .exclude(deployment__autoscaling_policy__mode=Mode.OFF)
        .values("deployment")
        .annotate(last=Max("id"))
        .values_list("last", flat=True)
    )
    for record in DecisionRecord.objects.filter(pk__in=list(latest_ids)).select_related(
        "deployment", "deployment__team"
    ):
        dep = record.deployment
        kinds = {e.get("kind"): e.get("message", "") for e in record.events or []}
        if "metrics_missing" in kinds:
            _loop_alert(
                wanted,
                dep,
                "AutoscalerMetricsMissing",
                "warning",
                f"{dep.name}: scaling holds, metrics missing",
                kinds["metrics_missing"],
            )
        if "drift_detected" in kinds:
            _loop_alert(
                wanted,
                dep,
                "AutoscalerDrift",
                "info",
                f"{dep.name}: replicas changed outside the control plane",
                kinds["drift_detected"],
            )
        if record.rule == "hold:target_unreadable":
            _loop_alert(
                wanted,
                dep,
                "AutoscalerTargetUnreadable",
                "warning",
                f"{dep.name}: cannot read the scale target",
                record.reason,
            )
        # Only once the maximum is actually serving: while replicas still load, the burn
        # is the cold start's, and the capacity asked for is on its way.
        ready = ((record.inputs or {}).get("replicas") or {}).get("ready")
        at_max = record.desired_replicas >= dep.max_replicas and (ready or 0) >= dep.max_replicas
        if at_max and paging.get(dep.pk):
            _loop_alert(
                wanted,
                dep,
                "AtMaxReplicasWhileSloBurns",
                "critical",
                f"{dep.name} is at its maximum of {dep.max_replicas} replicas "
                "while its SLO burns fast: raise max_replicas or shed load",
            )
    last_actions = (
        ScaleAction.objects.exclude(status__in=[ActionStatus.PENDING, ActionStatus.RUNNING])
        .exclude(status=ActionStatus.SUPERSEDED)
        .values("deployment")
        .annotate(last=Max("id"))
        .values_list("last", flat=True)
    )
    for action in ScaleAction.objects.filter(
        pk__in=list(last_actions), status=ActionStatus.FAILED
    ).select_related("deployment", "deployment__team"):
        _loop_alert(
            wanted,
            action.deployment,
            "ScaleActionFailed",
            "critical",
            f"{action.deployment.name}: scaling {action.from_replicas}→{action.to_replicas} failed",
            action.error[:1000],
        )


def _loop_alert(
    wanted: Wanted,
    dep: Deployment,
    name: str,
    severity: str,
    summary: str,
    description: str | None = None,
) -> None:
    labels = {
        **_deployment_labels(dep),
        "team": dep.team.slug,
        "alertname": name,
        "severity": severity,
    }
    annotations = {"summary": summary}
    if description is not None:
        annotations["description"] = description
    wanted.add(AlertSource.AUTOSCALING, dep.team_id, labels, annotations)


def _held(rule: AlertRule, key: str, holds: bool, now: float, state: dict[str, float]) -> bool:
    """Track the pending-since time of one series; True once it held for ``for_s``."""
    if not holds:
        state.pop(key, None)
        return False
    since = state.setdefault(key, now)
    return now - since >= rule.for_s


def _rule_alerts(
    wanted: Wanted, now: float, client_factory: Callable[[str], PrometheusClient]
) -> None:
    # A rule's firing alerts are its team's alerts carrying its id (another team's alert
    # with a copied rule_id label is not this rule's).
    firing_by_rule: dict[tuple[int | None, str], set[tuple[int, str]]] = defaultdict(set)
    for team_id, fp, labels in Alert.objects.filter(
        source=AlertSource.RULE, status=AlertStatus.FIRING, team__isnull=False
    ).values_list("team_id", "fingerprint", "labels"):
        firing_by_rule[(team_id, labels.get("rule_id", ""))].add((team_id, fp))
    observations: dict[int, dict[str, Observation]] = {}
    signal_rules = AlertRule.objects.filter(enabled=True).exclude(signal="")
    if signal_rules.exists():
        observations = latest_observations(deployment_ids=None)
    for rule in AlertRule.objects.filter(enabled=True).select_related("team", "deployment"):
        state: dict[str, float] = dict(rule.state or {})
        base = {
            "alertname": rule.name,
            "severity": rule.severity,
            "team": rule.team.slug,
            "rule_id": str(rule.pk),
            **(rule.labels or {}),
        }
        compare = _COMPARE[rule.comparison]
        seen: set[str] = set()
        if rule.signal:
            deployments = (
                [rule.deployment]
                if rule.deployment
                else list(Deployment.objects.filter(team=rule.team).exclude(status="retired"))
            )
            for dep in deployments:
                if dep is None:
                    continue
                key = str(dep.pk)
                seen.add(key)
                obs = observations.get(dep.pk, {}).get(rule.signal)
                value = obs.ok_value if obs is not None else None
                labels = {**base, **_deployment_labels(dep)}
                if value is None:
                    # Unknown: hold whatever this series was doing.
                    held = (rule.team_id, fingerprint(_alert_labels(labels)))
                    if held in firing_by_rule[(rule.team_id, str(rule.pk))]:
                        wanted.keep.add(held)
                    continue
                if _held(rule, key, compare(value, rule.threshold), now, state):
                    wanted.add(
                        AlertSource.RULE, rule.team_id, labels, _rule_annotations(rule, value)
                    )
        else:
            try:
                samples = (
                    _logql_samples(rule, now)
                    if rule.logql.strip()
                    else _promql_samples(rule, client_factory)
                )
            except (PrometheusError, LogsUnavailable) as exc:
                # Unknown: the rule's alerts stay as they are.
                logger.warning("alert-rule-query-failed", rule=rule.pk, error=str(exc))
                wanted.keep |= firing_by_rule[(rule.team_id, str(rule.pk))]
                continue
            for sample in samples:
                series = {k: v for k, v in sample.labels.items() if k != "__name__"}
                labels = {**series, **base}
                key = fingerprint(series)
                seen.add(key)
                if _held(rule, key, compare(sample.value, rule.threshold), now, state):
                    wanted.add(
                        AlertSource.RULE,
                        rule.team_id,
                        labels,
                        _rule_annotations(rule, sample.value),
                    )
        state = {k: v for k, v in state.items() if k in seen}
        if state != (rule.state or {}):
            AlertRule.objects.filter(pk=rule.pk).update(state=state)


class LogsUnavailable(Exception):
    """A LogQL rule could not be evaluated (store unreachable, query too large)."""


@dataclass(frozen=True)
class _Sample:
    labels: Mapping[str, str]
    value: float


def _promql_samples(
    rule: AlertRule, client_factory: Callable[[str], PrometheusClient]
) -> list[_Sample]:
    url = settings.PROMETHEUS_URL or ""
    if not url:
        raise PrometheusError("no Prometheus configured", retryable=False)
    return [_Sample(s.labels, s.value) for s in client_factory(url).query(rule.promql)]


def _logql_samples(rule: AlertRule, now: float) -> list[_Sample]:
    """The rule's LogQL metric query at ``now`` over its team's logs (and its deployment's
    only, when it names one)."""
    from apps.logs.query import LogQLError, LogsQueryError, Scope, parse_query, query_instant
    from apps.logs.storage import log_store

    try:
        samples = query_instant(
            log_store(),
            parse_query(rule.logql),
            Scope(rule.team_id, rule.deployment_id),
            at_ns=int(now * 1e9),
        )
    except (LogQLError, LogsQueryError) as exc:
        raise LogsUnavailable(str(exc)) from exc
    except Exception as exc:
        raise LogsUnavailable(f"log store: {type(exc).__name__}: {exc}") from exc
    return [_Sample(s.labels, s.value) for s in samples]


def _rule_annotations(rule: AlertRule, value: float) -> dict[str, str]:
    text = rule.summary or "{name}: {value} {comparison} {threshold}"
    try:
        summary = text.format(
            value=f"{value:.4g}",
            threshold=f"{rule.threshold:g}",
            name=rule.name,
            comparison=rule.comparison,
        )
    except (KeyError, IndexError, ValueError):
        summary = text
    return {"summary": summary[:500], "value": f"{value:.6g}"}


def alert_sources_evaluate(
    *,
    now: datetime | None = None,
    client_factory: Callable[[str], PrometheusClient] | None = None,
) -> dict[str, int]:
    """One reconciliation pass; returns counts (firing wanted, resolved)."""
    now = now or timezone.now()
    factory = client_factory or (
        lambda url: PrometheusClient(url, timeout_s=settings.METRICS_QUERY_TIMEOUT_S)
    )
    wanted = Wanted()
    paging = _slo_alerts(wanted)
    _loop_alerts(wanted, paging)
    _rule_alerts(wanted, now.timestamp() if now else time.time(), factory)

    by_team: dict[tuple[str, int], list[IncomingAlert]] = defaultdict(list)
    current: dict[tuple[int, str], Alert] = {
        (a.team_id or 0, a.fingerprint): a
        for a in Alert.objects.filter(
            source__in=SOURCES, status=AlertStatus.FIRING, team__isnull=False
        ).only("fingerprint", "starts_at", "annotations", "team_id", "labels", "source")
    }
    for (team_id, fp), (source, labels, notes) in wanted.alerts.items():
        existing = current.get((team_id, fp))
        if existing is not None and existing.annotations == notes:
            continue  # already firing as it is
        by_team[(source, team_id)].append(
            IncomingAlert(
                labels, notes, "firing", existing.starts_at if existing else now, None, "", fp
            )
        )
    for key, alert in current.items():
        if key in wanted.alerts or key in wanted.keep:
            continue
        by_team[(alert.source, key[0])].append(
            IncomingAlert(
                alert.labels, alert.annotations, "resolved", alert.starts_at, now, "", key[1]
            )
        )
    teams = {t.pk: t for t in Team.objects.filter(pk__in={k[1] for k in by_team})}
    resolved = 0
    for (source, team_id), items in by_team.items():
        report = alerts_ingest(alerts=items, source=source, team=teams.get(team_id), now=now)
        resolved += report.resolved
    return {
        "wanted": len(wanted.alerts),
        "changed": sum(map(len, by_team.values())),
        "resolved": resolved,
    }
