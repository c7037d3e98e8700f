"""Prometheus recording and alerting rules equivalent to the control plane's evaluation.

Per SLO and window the rules record the error ratio and the event count:

    llmcp_slo:error_ratio{slo="team/name", window="1h"}   = 1 - good / total
    llmcp_slo:events{slo="team/name", window="1h"}        = total

(``window`` names the workbook window; the range used is scaled to the SLO period as in
apps.slos.burn), and one alert per multi-window condition with the minimum-traffic guard.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from apps.inventory.models import Deployment
from apps.metrics.collection import group_targets
from apps.metrics.services import targets_for

from .burn import CONDITIONS, promql_duration, scaled_windows
from .models import SliKind, Slo
from .sli import SliSpec, count_queries


def slo_label(slo: Slo) -> str:
    return f"{slo.team.slug}/{slo.name}"


def _counts_expr(slo: Slo, deployments: Sequence[Deployment], duration: str) -> tuple[str, str]:
    """(good, total) as label-less vectors summed over the SLO's deployments."""
    if slo.sli_kind == SliKind.CUSTOM_RATIO:
        return (
            f"sum({slo.good_query.replace('$window', duration)})",
            f"sum({slo.total_query.replace('$window', duration)})",
        )
    spec = (
        SliSpec("latency", slo.latency_metric, float(slo.threshold_seconds or 0))
        if slo.sli_kind == SliKind.LATENCY
        else SliSpec(slo.sli_kind)
    )
    goods, totals = [], []
    for group in group_targets(targets_for(list(deployments))):
        good, total = count_queries(spec, group.framework, sel=group.sel, by="", window=duration)
        goods.append(f"sum({good})")
        totals.append(f"sum({total})")
    if not goods:
        raise ValueError(f"SLO {slo_label(slo)} covers no deployment")
    return " + ".join(goods), " + ".join(totals)


def slo_rule_groups(
    slo: Slo, deployments: Sequence[Deployment], *, compression: float = 1.0
) -> list[dict[str, Any]]:
    label = slo_label(slo)
    windows = scaled_windows(slo.window, compression=compression)
    rules: list[dict[str, Any]] = []
    for name, seconds in windows.items():
        good, total = _counts_expr(slo, deployments, promql_duration(seconds))
        labels = {"slo": label, "window": name}
        rules.append(
            {
                "record": "llmcp_slo:error_ratio",
                "expr": f"1 - ({good}) / ({total})",
                "labels": labels,
            }
        )
        rules.append({"record": "llmcp_slo:events", "expr": total, "labels": labels})
    budget = 1.0 - slo.objective
    for cond in CONDITIONS:
        threshold = cond.burn_rate * budget
        sel_long = f'{{slo="{label}", window="{cond.long}"}}'
        sel_short = f'{{slo="{label}", window="{cond.short}"}}'
        rules.append(
            {
                "alert": f"SLOBurnRate{cond.severity.title()}",
                "expr": (
                    f"llmcp_slo:error_ratio{sel_long} >= {threshold:.6g}"
                    f" and on (slo) llmcp_slo:error_ratio{sel_short} >= {threshold:.6g}"
                    f" and on (slo) llmcp_slo:events{sel_long} >= {slo.min_requests}"
                ),
                "labels": {
                    "severity": cond.severity,
                    "slo": label,
                    "team": slo.team.slug,
                    "burn_window": f"{cond.long}/{cond.short}",
                },
                "annotations": {
                    "summary": f"SLO {label} burns its error budget {cond.burn_rate:g}x too fast",
                    "description": (
                        f"Error ratio over {cond.long} and {cond.short} is at least "
                        f"{cond.burn_rate:g} times the budget of {budget:.4%} "
                        f"(objective {slo.objective:.4%}, {slo.window} window)."
                    ),
                },
            }
        )
    return [{"name": f"slo-{slo.team.slug}-{slo.name}", "interval": "30s", "rules": rules}]


def rule_file(groups: list[dict[str, Any]]) -> str:
    return yaml.safe_dump({"groups": groups}, sort_keys=False, width=1000)


def prometheus_rule_manifest(groups: list[dict[str, Any]], *, name: str, namespace: str) -> str:
    manifest = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "llm-controlplane"},
        },
        "spec": {"groups": groups},
    }
    return yaml.safe_dump(manifest, sort_keys=False, width=1000)
