"""What each trigger of a degradation policy says now: held, clear or unknown, read from what
the other apps stored (SLO statuses, firing alerts, autoscaler decisions, collected metrics).
Reads only. Data that is missing, or older than ``DEGRADATION_STALE_INTERVALS`` intervals of
the loop that writes it, is unknown: it never moves a level."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from apps.alerts.labels import matchers_match
from apps.alerts.models import Alert, AlertStatus
from apps.autoscaling.models import DecisionRecord
from apps.inventory.models import Deployment
from apps.metrics.models import DeploymentMetrics
from apps.metrics.selectors import Observation
from apps.slos.models import SloState, SloStatus

from .engine import Outcome, TriggerObservation
from .policy_spec import Trigger, TriggerKind

_SLO_CLEAR = (SloState.OK, SloState.LOW_TRAFFIC)
_SLO_BURNING = (SloState.PAGE, SloState.TICKET)


def _max_age(interval_s: float) -> timedelta:
    return timedelta(seconds=settings.DEGRADATION_STALE_INTERVALS * interval_s)


@dataclass(frozen=True)
class _SloReading:
    state: str | None  # None: unknown (no status, no data, unavailable or stale)
    detail: str


@dataclass
class _Inputs:
    """Everything the triggers of one policy read, fetched once per evaluation."""

    slos: dict[int, _SloReading]
    alerts: list[Alert]
    decision: DecisionRecord | None
    metrics: DeploymentMetrics | None


def _slo_readings(*, deployment: Deployment, now: datetime) -> dict[int, _SloReading]:
    oldest = now - _max_age(settings.SLO_EVALUATION_INTERVAL_S)
    readings: dict[int, _SloReading] = {
        slo_id: _SloReading(None, "never evaluated")
        for slo_id in deployment.slos.filter(enabled=True).values_list("pk", flat=True)
    }
    for status in SloStatus.objects.filter(slo_id__in=list(readings)):
        if status.evaluated_at < oldest:
            readings[status.slo_id] = _SloReading(
                None, f"status from {status.evaluated_at:%H:%M:%S} is stale"
            )
        elif status.state in (*_SLO_CLEAR, *_SLO_BURNING):
            readings[status.slo_id] = _SloReading(status.state, f"state {status.state}")
        else:
            readings[status.slo_id] = _SloReading(None, f"state {status.state}")
    return readings


def _inputs(*, deployment: Deployment, triggers: Sequence[Trigger], now: datetime) -> _Inputs:
    kinds = {t.kind for t in triggers}
    alerts: list[Alert] = []
    if TriggerKind.ALERT in kinds:
        alerts = list(
            Alert.objects.filter(team_id=deployment.team_id, status=AlertStatus.FIRING).only(
                "name", "labels"
            )
        )
    decision = None
    if TriggerKind.AUTOSCALER_AT_MAX in kinds:
        decision = (
            DecisionRecord.objects.filter(deployment=deployment).order_by("-at", "-id").first()
        )
    metrics = None
    if TriggerKind.SIGNAL in kinds:
        metrics = DeploymentMetrics.objects.filter(deployment=deployment).first()
    return _Inputs(
        slos=_slo_readings(deployment=deployment, now=now),
        alerts=alerts,
        decision=decision,
        metrics=metrics,
    )


def _slo_state(trigger: Trigger, inputs: _Inputs) -> tuple[Outcome, str]:
    reading = inputs.slos.get(trigger.slo or 0)
    if reading is None:
        return Outcome.UNKNOWN, "not an enabled SLO of the deployment"
    if reading.state is None:
        return Outcome.UNKNOWN, reading.detail
    return (Outcome.HELD if reading.state in trigger.states else Outcome.CLEAR), reading.detail


def _alert(trigger: Trigger, inputs: _Inputs) -> tuple[Outcome, str]:
    names = sorted({a.name for a in inputs.alerts if matchers_match(trigger.matchers, a.labels)})
    if names:
        return Outcome.HELD, "firing: " + ", ".join(names[:5])
    return Outcome.CLEAR, "none firing"


def _slos_burning(trigger: Trigger, inputs: _Inputs) -> tuple[Outcome, str]:
    """The SLO the trigger names, or any SLO of the deployment, in page/ticket."""
    readings = (
        {trigger.slo: inputs.slos.get(trigger.slo, _SloReading(None, "not an enabled SLO"))}
        if trigger.slo is not None
        else inputs.slos
    )
    burning = [f"SLO {pk} {r.state}" for pk, r in readings.items() if r.state in _SLO_BURNING]
    if burning:
        return Outcome.HELD, ", ".join(burning)
    if any(r.state is None for r in readings.values()):
        return Outcome.UNKNOWN, "; ".join(
            f"SLO {pk}: {r.detail}" for pk, r in readings.items() if r.state is None
        )
    return Outcome.CLEAR, "no SLO burning"


def _autoscaler_at_max(
    trigger: Trigger, inputs: _Inputs, deployment: Deployment, now: datetime
) -> tuple[Outcome, str]:
    decision = inputs.decision
    if decision is None:
        at_max: Outcome = Outcome.UNKNOWN
        detail = "no autoscaler decision"
    elif decision.at < now - _max_age(settings.AUTOSCALING_INTERVAL_S):
        at_max, detail = Outcome.UNKNOWN, f"last decision at {decision.at:%H:%M:%S} is stale"
    else:
        replicas = max(decision.current_replicas, decision.desired_replicas)
        at_max = Outcome.HELD if replicas >= deployment.max_replicas else Outcome.CLEAR
        detail = (
            f"{decision.current_replicas} -> {decision.desired_replicas} replicas "
            f"of max {deployment.max_replicas}"
        )
    if at_max is Outcome.CLEAR:
        return at_max, detail
    burning, why = _slos_burning(trigger, inputs)
    # Three-valued "and": known clear on either side is clear, both held is held.
    if burning is Outcome.CLEAR:
        return Outcome.CLEAR, f"{detail}; {why}"
    if at_max is Outcome.HELD and burning is Outcome.HELD:
        return Outcome.HELD, f"{detail}; {why}"
    return Outcome.UNKNOWN, f"{detail}; {why}"


def _signal(trigger: Trigger, inputs: _Inputs, now: datetime) -> tuple[Outcome, str]:
    metrics = inputs.metrics
    if metrics is None:
        return Outcome.UNKNOWN, "never collected"
    if metrics.collected_at < now - _max_age(settings.METRICS_COLLECT_INTERVAL_S):
        return Outcome.UNKNOWN, f"last collected at {metrics.collected_at:%H:%M:%S}: stale"
    stored = (metrics.observations or {}).get(trigger.signal)
    if not isinstance(stored, dict):
        return Outcome.UNKNOWN, "not collected"
    observation = Observation.from_dict(stored)
    value = observation.ok_value
    if value is None:
        return Outcome.UNKNOWN, f"{observation.status}: {observation.reason}".rstrip(": ")
    outcome = Outcome.HELD if trigger.op.holds(value, trigger.threshold) else Outcome.CLEAR
    return outcome, f"{trigger.signal} = {value:g}"


def triggers_observe(
    *, deployment: Deployment, triggers: Sequence[Trigger], now: datetime
) -> list[TriggerObservation]:
    """One observation per trigger, in the order given."""
    inputs = _inputs(deployment=deployment, triggers=triggers, now=now)
    out = []
    for trigger in triggers:
        if trigger.kind is TriggerKind.SLO_STATE:
            outcome, detail = _slo_state(trigger, inputs)
        elif trigger.kind is TriggerKind.ALERT:
            outcome, detail = _alert(trigger, inputs)
        elif trigger.kind is TriggerKind.AUTOSCALER_AT_MAX:
            outcome, detail = _autoscaler_at_max(trigger, inputs, deployment, now)
        else:
            outcome, detail = _signal(trigger, inputs, now)
        out.append(TriggerObservation(trigger.describe(), outcome, detail))
    return out
