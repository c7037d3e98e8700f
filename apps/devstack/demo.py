"""The demo created by the run command: a team, a model, simulated deployments, and their
SLOs, alert rules, autoscaling policies, degradation toggles and a degradation policy,
balancing policies and a gateway."""

from __future__ import annotations

import os
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from django.db import models, transaction

from apps.accounts.models import Team
from apps.alerts.models import AlertRule
from apps.audit.models import AuditAction
from apps.audit.services import audit_record, model_snapshot
from apps.autoscaling.models import AutoscalingPolicy
from apps.balancing.models import BalancingPolicy, Gateway, GatewayDeployment
from apps.golive.models import Stage
from apps.golive.services import stage_seed
from apps.inventory.models import (
    Deployment,
    DeploymentStatus,
    GpuType,
    LLMModel,
    ScaleTargetKind,
    ServingFramework,
)
from apps.logs.models import IngestToken
from apps.logs.selectors import ingest_token_authenticate
from apps.logs.services import ingest_token_create
from apps.slos.models import LatencyMetric, SliKind, Slo
from apps.toggles.models import DegradationPolicy, GatewayToken, Toggle
from apps.toggles.selectors import gateway_token_authenticate
from apps.toggles.services import gateway_token_create, policy_clean, toggle_create

DEMO_NAMESPACE = "demo"
DEMO_OVERRIDE_REASON = "Demo seed: simulated deployments start in production unchecked."


@dataclass(frozen=True)
class DemoDeployment:
    name: str
    gpu_type: str
    min_replicas: int
    max_replicas: int
    initial_replicas: int
    base_rate_rps: float


DEMO_DEPLOYMENTS = (
    DemoDeployment("chat-llama-8b", GpuType.A100_80GB, 2, 8, 2, 5.0),
    DemoDeployment("code-qwen-7b", GpuType.H100_80GB, 1, 6, 1, 3.0),
    DemoDeployment("batch-mistral-7b", GpuType.L4, 1, 10, 1, 1.0),
)


M = TypeVar("M", bound=models.Model)


def _ensure(model: type[M], *, defaults: dict[str, Any] | None = None, **lookup: Any) -> M:
    """``get_or_create``, and what it creates recorded in the audit log (by "system"), as
    any other creation is: the demo's objects have a history from the start."""
    instance, created = model._default_manager.get_or_create(defaults=defaults, **lookup)
    if created:
        audit_record(
            actor=None,
            action=AuditAction.CREATE,
            instance=instance,
            after=model_snapshot(instance),
            verb="demo",
        )
    return instance


@transaction.atomic
def demo_inventory_ensure() -> list[Deployment]:
    team = _ensure(
        Team, slug="demo", defaults={"name": "Demo", "description": "Simulated fleet for the demo."}
    )
    model = _ensure(
        LLMModel,
        team=team,
        name="meta-llama/Llama-3.1-8B-Instruct",
        version="v1",
        defaults={"parameter_count": 8_030_000_000},
    )
    deployments = []
    for spec in DEMO_DEPLOYMENTS:
        deployment = _ensure(
            Deployment,
            team=team,
            name=spec.name,
            defaults={
                "model": model,
                "framework": ServingFramework.VLLM,
                "target_kind": ScaleTargetKind.SIMULATED,
                "target_namespace": DEMO_NAMESPACE,
                "gpu_type": spec.gpu_type,
                "min_replicas": spec.min_replicas,
                "max_replicas": spec.max_replicas,
                "prometheus_selector": (
                    f'{{namespace="{DEMO_NAMESPACE}", deployment="{spec.name}"}}'
                ),
                "status": DeploymentStatus.ACTIVE,
                # Mean request rate the fleet simulator drives it with.
                "labels": {"env": "demo", "sim.rate-rps": f"{spec.base_rate_rps:g}"},
            },
        )
        deployments.append(deployment)
        # Created active, as the gate cannot check a simulated fleet before it runs: the
        # stage is set with a recorded system override, which the checklist shows.
        stage_seed(deployment=deployment, stage=Stage.PRODUCTION, reason=DEMO_OVERRIDE_REASON)
        _demo_policy(deployment)
    _demo_alert_rules(team)
    _demo_slos(team, deployments)
    _demo_degradation(team, deployments)
    _demo_balancing(team, deployments)
    return deployments


DEMO_GATEWAY = "demo-edge"


def demo_gateway_port() -> int:
    """Where the demo gateway's nginx listens (on 127.0.0.1): ``DEMO_GATEWAY_PORT``, 8081."""
    return int(os.environ.get("DEMO_GATEWAY_PORT", "8081"))


def _demo_balancing(team: Team, deployments: list[Deployment]) -> None:
    """The chat deployment balanced by consistent hashing on a session header (a
    conversation keeps the replica holding its prefix cache), the others by least
    connections, all behind one gateway on loopback: ``make run`` starts its nginx and agent
    when the simulator serves HTTP replicas."""
    for deployment in deployments:
        _ensure(
            BalancingPolicy,
            deployment=deployment,
            defaults=(
                {"algorithm": "consistent_hash", "hash_key": "X-Session-Id"}
                if deployment.name == "chat-llama-8b"
                else {"algorithm": "least_conn"}
            ),
        )
    gateway = _ensure(
        Gateway,
        team=team,
        name=DEMO_GATEWAY,
        defaults={"listen_address": "127.0.0.1", "listen_port": demo_gateway_port()},
    )
    if not GatewayDeployment.objects.filter(gateway=gateway).exists():
        GatewayDeployment.objects.bulk_create(
            GatewayDeployment(gateway=gateway, deployment=deployment, position=index)
            for index, deployment in enumerate(deployments)
        )


# name suffix -> defaults of the SLO each demo deployment gets.
_DEMO_SLOS: dict[str, dict[str, object]] = {
    "ttft": {
        "description": "99 % of requests get their first token within 1 s.",
        "sli_kind": SliKind.LATENCY,
        "latency_metric": LatencyMetric.TTFT,
        "threshold_seconds": 1.0,
        "objective_percent": Decimal("99.0"),
    },
    "errors": {
        "description": "99.9 % of requests finish without error.",
        "sli_kind": SliKind.ERROR_RATIO,
        "objective_percent": Decimal("99.9"),
    },
}


def _demo_slos(team: Team, deployments: list[Deployment]) -> None:
    """A TTFT and an error-ratio SLO per deployment: SLO status, burn rates and SLO alerts
    show up in the demo (the SLO boost can use them too)."""
    for deployment in deployments:
        for suffix, defaults in _DEMO_SLOS.items():
            _ensure(
                Slo,
                team=team,
                deployment=deployment,
                name=f"{deployment.name}-{suffix}",
                defaults=defaults,
            )


# rule name -> defaults of the demo team's threshold rules.
_DEMO_ALERT_RULES: dict[str, dict[str, object]] = {
    "QueueBacklog": {
        "signal": "queue_length",
        "comparison": ">",
        "threshold": 10,
        "for_s": 60,
        "severity": "warning",
        "summary": "{value} requests waiting (over {threshold} for a minute)",
    },
    "HighTimeToFirstToken": {
        "signal": "ttft_p95",
        "comparison": ">",
        "threshold": 2.0,
        "for_s": 120,
        "severity": "critical",
        "summary": "TTFT p95 is {value} s (objective {threshold} s)",
    },
}


# LogQL rules on the simulated replicas' own log lines (shipped by the fleet simulator).
_DEMO_LOG_RULES: dict[str, dict[str, object]] = {
    "RequestsPilingUpInLogs": {
        "logql": 'sum by (deployment) (count_over_time({namespace="demo", container="vllm"} '
        '|~ "Pending: [0-9]{2,} reqs" [2m]))',
        "comparison": ">",
        "threshold": 0,
        "for_s": 0,
        "severity": "warning",
        "summary": "{value} throughput lines in 2 minutes report 10 or more requests pending",
    },
    "CudaOutOfMemory": {
        "logql": 'sum by (deployment, pod) (count_over_time({namespace="demo"} '
        '|= "CUDA out of memory" [5m]))',
        "comparison": ">",
        "threshold": 0,
        "for_s": 0,
        "severity": "critical",
        "summary": "{value} CUDA out-of-memory errors in 5 minutes",
    },
}
DEMO_INGEST_TOKEN_NAME = "demo fleet simulator"  # noqa: S105 - a name, not a secret
DEMO_GATEWAY_TOKEN_NAME = "demo-gateway"  # noqa: S105 - a name, not a secret


def _demo_token(
    *,
    saved: Path,
    model: type[models.Model],
    name: str,
    authenticate: Any,
    create: Any,
) -> str:
    """A demo team token of ``model``: the one saved in ``saved`` while it is still valid,
    else a new one (saved there, readable by this user only)."""
    team = Team.objects.get(slug="demo")
    if saved.exists():
        secret = saved.read_text(encoding="utf-8").strip()
        token = authenticate(token=secret)
        if token is not None and token.team_id == team.pk:
            return secret
    # The old one's secret is lost with the file: replace it.
    model.objects.filter(team=team, name=name).delete()  # type: ignore[attr-defined]
    _, secret = create(team=team, name=name, actor=None)
    saved.write_text(secret + "\n", encoding="utf-8")
    saved.chmod(0o600)
    return secret


def demo_ingest_token(*, saved: Path) -> str:
    """The demo fleet simulator's ingest token (see :func:`_demo_token`)."""
    return _demo_token(
        saved=saved,
        model=IngestToken,
        name=DEMO_INGEST_TOKEN_NAME,
        authenticate=ingest_token_authenticate,
        create=ingest_token_create,
    )


def demo_gateway_token(*, saved: Path) -> str:
    """A gateway token of the demo team, to try the toggle read API (see
    :func:`_demo_token`)."""
    return _demo_token(
        saved=saved,
        model=GatewayToken,
        name=DEMO_GATEWAY_TOKEN_NAME,
        authenticate=gateway_token_authenticate,
        create=gateway_token_create,
    )


def _demo_alert_rules(team: Team) -> None:
    """Threshold rules on the team's deployments, so the demo shows alerts firing and
    resolving (visible under Alerts; add a channel and a route to get them in chat)."""
    for name, defaults in {**_DEMO_ALERT_RULES, **_DEMO_LOG_RULES}.items():
        _ensure(AlertRule, team=team, name=name, defaults=defaults)


def _demo_policy(deployment: Deployment) -> None:
    """Enforce a queue- and KV-cache-based policy, so the demo shows the loop acting."""
    _ensure(
        AutoscalingPolicy,
        deployment=deployment,
        defaults={
            "mode": "enforce",
            "targets": [
                {"signal": "queue_length", "value": 4, "kind": "per_replica_average"},
                {"signal": "kv_cache_usage", "value": 0.7, "kind": "utilization"},
            ],
            # The simulator's replicas load in 90-120 s, like a real 8B model.
            "cold_start_s": 120.0,
        },
    )


# key -> description of the degradation toggles each demo deployment gets (preset = key);
# they serve their off values (no cap, nothing shed) until a policy or an operator acts.
_DEMO_TOGGLES = {
    "max_output_tokens": "Cap on max_tokens per request while degraded (0: no cap).",
    "shed_fraction": "Share of requests refused per priority class while degraded.",
}
DEMO_DEGRADED_DEPLOYMENT = "chat-llama-8b"


def _demo_degradation(team: Team, deployments: list[Deployment]) -> None:
    """Two preset toggles per deployment, and on the chat deployment a policy: its TTFT SLO
    paging caps output tokens; if it keeps paging, 20 % of low-priority traffic is shed."""
    for deployment in deployments:
        for key, description in _DEMO_TOGGLES.items():
            # Created through the service (validated, audited, versioned, in the history).
            if not Toggle.objects.filter(team=team, deployment=deployment, key=key).exists():
                toggle_create(team=team, deployment=deployment, key=key, preset=key,
                              description=description, actor=None, reason="demo")  # fmt: skip
    deployment = next(d for d in deployments if d.name == DEMO_DEGRADED_DEPLOYMENT)
    slo = Slo.objects.get(team=team, name=f"{deployment.name}-ttft")
    triggers = [{"kind": "slo_state", "slo": slo.pk, "states": ["page"]}]
    levels = [
        {"name": "cap output tokens", "set": {"max_output_tokens": 512}},
        {"name": "shed 20 % low priority", "set": {"shed_fraction": {"low": 0.2}}},
    ]
    policy_clean(team=team, deployment=deployment, triggers=triggers, levels=levels)
    _ensure(
        DegradationPolicy,
        team=team,
        name=f"{deployment.name}-degrade",
        defaults={
            "deployment": deployment,
            "triggers": triggers,
            "levels": levels,
            "min_hold_s": 120,
            "clear_for_s": 300,
            "max_duration_s": 3600,
        },
    )
