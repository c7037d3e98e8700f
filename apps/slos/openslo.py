"""OpenSLO v1 (https://github.com/OpenSLO/OpenSLO, `apiVersion: openslo/v1`, `kind: SLO`).

Export writes a ratio indicator (good and total Prometheus queries) and keeps the native
definition in annotations, so that a round trip restores exactly the same SLO.

Import accepts:
- documents this exporter wrote (annotations present): restored natively;
- any other `ratioMetric` with Prometheus sources: a custom ratio SLI. With `counter: true`
  the queries are counters and the SLI takes their increase over each window; otherwise
  they are rates or gauges and the SLI sums them over the window;
- `thresholdMetric` with Prometheus source and an objective `op`/`value`: a time-slice
  custom ratio, good = minutes in which the metric met the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml

from .models import SliKind, Slo

ANNOTATION = "llm-controlplane/"
_DURATIONS = {"7d", "28d", "30d", "1w", "4w"}
_OPS = {"lte": "<=", "lt": "<", "gte": ">=", "gt": ">"}


class OpenSloError(ValueError):
    """The document is not an OpenSLO v1 SLO we can import; the message says where."""


def export_slo(slo: Slo, *, good: str, total: str) -> str:
    annotations = {
        f"{ANNOTATION}sli-kind": slo.sli_kind,
        f"{ANNOTATION}min-requests": str(slo.min_requests),
    }
    if slo.deployment is not None:
        annotations[f"{ANNOTATION}deployment"] = slo.deployment.name
    if slo.deployment_labels:
        annotations[f"{ANNOTATION}deployment-labels"] = ",".join(
            f"{k}={v}" for k, v in sorted(slo.deployment_labels.items())
        )
    if slo.sli_kind == SliKind.LATENCY:
        annotations[f"{ANNOTATION}latency-metric"] = slo.latency_metric
        annotations[f"{ANNOTATION}threshold-seconds"] = f"{slo.threshold_seconds:g}"
    doc = {
        "apiVersion": "openslo/v1",
        "kind": "SLO",
        "metadata": {"name": slo.name, "displayName": slo.name, "annotations": annotations},
        "spec": {
            "description": slo.description,
            "service": slo.deployment.name if slo.deployment is not None else slo.team.slug,
            "indicator": {
                "metadata": {"name": f"{slo.name}-sli"},
                "spec": {
                    "ratioMetric": {
                        "counter": False,
                        "good": {"metricSource": {"type": "Prometheus", "spec": {"query": good}}},
                        "total": {"metricSource": {"type": "Prometheus", "spec": {"query": total}}},
                    }
                },
            },
            "timeWindow": [{"duration": slo.window, "isRolling": True}],
            "budgetingMethod": "Occurrences",
            "objectives": [{"displayName": slo.name, "target": float(slo.objective)}],
        },
    }
    return yaml.safe_dump(doc, sort_keys=False, width=1000)


@dataclass
class ImportedSlo:
    """Field values for a new Slo (the caller resolves team and deployment)."""

    fields: dict[str, Any]
    deployment_name: str | None


def _get(node: Any, path: str) -> Any:
    current = node
    for part in path.split("."):
        if not isinstance(current, dict) or part not in current:
            raise OpenSloError(f"missing {path}")
        current = current[part]
    return current


def _query(node: Any, where: str) -> str:
    source = _get(node, "metricSource")
    if str(source.get("type", "")).lower() != "prometheus":
        raise OpenSloError(f"{where}.metricSource.type must be Prometheus")
    query = _get(source, "spec.query")
    if not isinstance(query, str) or not query.strip():
        raise OpenSloError(f"{where}.metricSource.spec.query must be a PromQL string")
    return query.strip()


def import_slo(text: str) -> ImportedSlo:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise OpenSloError(f"not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise OpenSloError("expected one YAML mapping (an OpenSLO document)")
    if doc.get("apiVersion") != "openslo/v1":
        raise OpenSloError("apiVersion must be openslo/v1")
    if doc.get("kind") != "SLO":
        raise OpenSloError("kind must be SLO")
    name = _get(doc, "metadata.name")
    spec = _get(doc, "spec")
    windows = spec.get("timeWindow") or []
    if not isinstance(windows, list) or len(windows) != 1 or not isinstance(windows[0], dict):
        raise OpenSloError("spec.timeWindow must hold exactly one window")
    duration = str(windows[0].get("duration", ""))
    if duration not in _DURATIONS:
        raise OpenSloError(f"spec.timeWindow[0].duration {duration!r}: use 7d, 28d or 30d")
    if windows[0].get("isRolling") is False:
        raise OpenSloError("calendar-aligned windows are not supported; use isRolling: true")
    window = {"1w": "7d", "4w": "28d"}.get(duration, duration)
    objectives = spec.get("objectives")
    if not isinstance(objectives, list) or len(objectives) != 1:
        raise OpenSloError("spec.objectives must hold exactly one objective")
    objective = objectives[0]
    try:
        target = Decimal(str(objective["target"]))
    except (KeyError, InvalidOperation, TypeError):
        raise OpenSloError("spec.objectives[0].target must be a number such as 0.995") from None
    if not Decimal(0) < target < Decimal(1):
        raise OpenSloError("spec.objectives[0].target must be strictly between 0 and 1")
    if spec.get("budgetingMethod", "Occurrences") not in ("Occurrences", "Timeslices"):
        raise OpenSloError("budgetingMethod must be Occurrences or Timeslices")

    annotations = (doc.get("metadata") or {}).get("annotations") or {}
    fields: dict[str, Any] = {
        "name": str(name),
        "description": str(spec.get("description") or ""),
        "objective_percent": (target * 100).quantize(Decimal("0.0001")),
        "window": window,
    }
    native = annotations.get(f"{ANNOTATION}sli-kind")
    if native:
        fields["sli_kind"] = native
        if f"{ANNOTATION}min-requests" in annotations:
            fields["min_requests"] = int(annotations[f"{ANNOTATION}min-requests"])
        if native == SliKind.LATENCY:
            fields["latency_metric"] = annotations.get(f"{ANNOTATION}latency-metric", "")
            fields["threshold_seconds"] = float(
                annotations.get(f"{ANNOTATION}threshold-seconds", "0")
            )
        labels = annotations.get(f"{ANNOTATION}deployment-labels")
        if labels:
            fields["deployment_labels"] = dict(
                pair.split("=", 1) for pair in labels.split(",") if "=" in pair
            )
        if native == SliKind.CUSTOM_RATIO:
            indicator = _get(spec, "indicator.spec.ratioMetric")
            fields["good_query"] = _query(indicator.get("good"), "ratioMetric.good")
            fields["total_query"] = _query(indicator.get("total"), "ratioMetric.total")
        return ImportedSlo(fields, annotations.get(f"{ANNOTATION}deployment"))

    indicator = _get(spec, "indicator.spec")
    if "ratioMetric" in indicator:
        ratio = indicator["ratioMetric"]
        good = _query(ratio.get("good"), "ratioMetric.good")
        total = _query(ratio.get("total"), "ratioMetric.total")
        if ratio.get("counter", True):
            wrap = "sum(increase(({q})[$window:1m]))"
        else:
            wrap = "sum(sum_over_time(({q})[$window:1m]))"
        fields.update(
            sli_kind=SliKind.CUSTOM_RATIO,
            good_query=wrap.format(q=good),
            total_query=wrap.format(q=total),
        )
    elif "thresholdMetric" in indicator:
        query = _query(indicator["thresholdMetric"], "thresholdMetric")
        op = _OPS.get(str(objective.get("op", "")))
        if op is None or "value" not in objective:
            raise OpenSloError("a thresholdMetric objective needs op (lte, lt, gte, gt) and value")
        try:
            value = float(objective["value"])
        except (TypeError, ValueError):
            raise OpenSloError("spec.objectives[0].value must be a number") from None
        fields.update(
            sli_kind=SliKind.CUSTOM_RATIO,
            good_query=f"sum(sum_over_time((({query}) {op} bool {value:g})[$window:1m]))",
            total_query=f"sum(count_over_time(({query})[$window:1m]))",
        )
    else:
        raise OpenSloError("spec.indicator.spec needs ratioMetric or thresholdMetric")
    return ImportedSlo(fields, str(spec.get("service") or "") or None)
