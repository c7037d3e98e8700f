"""Gathering the evidence each check needs and running the checks: one function per check
reads what the control plane sees (the endpoint's ``/v1/models`` through the outbound
guard, Prometheus, stored metrics, policies, gateways, alerts, logs) and hands it to the
pure evaluation in :mod:`.checks`. A check whose evidence cannot be read is ``unknown``;
an error in one never stops the others (:func:`checks_evaluate`)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import requests
import structlog
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from apps.alerts.models import AlertRule, Channel, Delivery, DeliveryStatus, Route
from apps.autoscaling.models import AutoscalingPolicy, DecisionRecord
from apps.balancing.models import BalancingPolicy, Gateway, GatewayReport, ReportResult
from apps.balancing.selectors import gateway_config
from apps.core.fields import secret_problem
from apps.core.netguard import guarded_session, refusal_in
from apps.integrations.prometheus import PrometheusClient, PrometheusError
from apps.inventory.label_matchers import MatcherError, parse_matchers, render_selector
from apps.inventory.models import AWS_SECRET_KEYS, Deployment
from apps.logs.storage import log_store
from apps.logs.storage.base import LogSelect
from apps.metrics.catalogue import FRESHNESS_METRIC, Signal, template_for
from apps.metrics.models import DeploymentMetrics
from apps.slos.models import Slo

from . import checks
from .checks import CheckSpec, Outcome
from .models import ArtifactReport, DeploymentStage, LoadTestMode, LoadTestRun, LoadTestStatus

logger = structlog.get_logger("controlplane.golive")

MODELS_TIMEOUT_S = 5.0
DECISIONS_JUDGED = 200


@dataclass(frozen=True)
class Evaluated:
    spec: CheckSpec
    outcome: Outcome
    evidence_url: str


def _prometheus(deployment: Deployment) -> PrometheusClient | None:
    cluster = deployment.cluster if deployment.cluster_id else None
    url = (cluster.prometheus_url if cluster is not None else "") or (settings.PROMETHEUS_URL or "")
    return PrometheusClient(url, timeout_s=settings.METRICS_QUERY_TIMEOUT_S) if url else None


def _matchers(deployment: Deployment) -> str:
    """The deployment's label matchers without braces, to put inside a series selector."""
    try:
        matchers = parse_matchers(deployment.prometheus_selector, check_regex=False)
    except MatcherError:
        return 'deployment="' + deployment.name + '"'
    return render_selector([m for m in matchers if m.name != "__name__"])[1:-1]


def _promql_link(client: PrometheusClient | None, expr: str) -> str:
    if client is None:
        return "promql:" + expr
    return f"{client.url}/graph?{urlencode({'g0.expr': expr, 'g0.tab': '1'})}"


NO_PROMETHEUS = "no Prometheus configured (PROMETHEUS_URL or the cluster's prometheus_url)"


# --------------------------------------------------------------------------- model


def check_served_version(deployment: Deployment, stage: DeploymentStage) -> tuple[Outcome, str]:
    url = deployment.endpoint_url.rstrip("/")
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    expected = {
        "expected_name": deployment.model.name,
        "expected_version": deployment.model.version,
    }
    if not url:
        return checks.served_version(
            None, error="the deployment has no endpoint URL", **expected
        ), ""
    link = f"{url}/v1/models"
    try:
        with guarded_session() as session:
            response = session.get(link, timeout=MODELS_TIMEOUT_S, allow_redirects=False)
        if response.status_code != 200:
            return checks.served_version(
                None, error=f"HTTP {response.status_code} from {link}", **expected
            ), link
        body = response.json()
        listed = body.get("data") if isinstance(body, dict) else None
        if not isinstance(listed, list):
            return checks.served_version(None, error="no data list in the answer", **expected), link
    except (requests.RequestException, ValueError) as exc:
        reason = refusal_in(exc)
        why = f"refused by the outbound guard ({reason})" if reason else type(exc).__name__
        return checks.served_version(None, error=why, **expected), link
    return checks.served_version(listed, **expected), link


def check_artifacts(deployment: Deployment, stage: DeploymentStage) -> tuple[Outcome, str]:
    report = ArtifactReport.objects.filter(deployment=deployment).first()
    link = f"/api/v1/golive/deployments/{deployment.pk}/artifacts/"
    data = None if report is None else {"files": report.files, "digest": report.digest}
    return checks.artifacts(
        data, checksum=deployment.model.checksum, report_id=report.pk if report else None
    ), link


# --------------------------------------------------------------------------- environment


def check_gpu(deployment: Deployment, stage: DeploymentStage) -> tuple[Outcome, str]:
    client = _prometheus(deployment)
    sel = _matchers(deployment)
    expr = f"DCGM_FI_DEV_GPU_UTIL{{{sel}}}"
    link = _promql_link(client, expr)
    kwargs: dict[str, Any] = {
        "gpu_type": deployment.gpu_type,
        "gpus_per_replica": deployment.gpus_per_replica,
    }
    if client is None:
        return checks.gpu_environment(None, replicas=None, error=NO_PROMETHEUS, **kwargs), link
    try:
        gpus = client.query(expr)
        spec = client.query(f"kube_deployment_spec_replicas{{{sel}}}")
    except PrometheusError as exc:
        return checks.gpu_environment(None, replicas=None, error=str(exc), **kwargs), link
    by_pod: dict[str, dict[str, str]] = defaultdict(dict)
    for sample in gpus:
        pod = sample.labels.get("pod") or sample.labels.get("Hostname") or "?"
        uuid = sample.labels.get("UUID") or sample.labels.get("gpu") or str(len(by_pod[pod]))
        by_pod[pod][uuid] = sample.labels.get("modelName", "")
    replicas = int(sum(s.value for s in spec)) if spec else None
    seen = {pod: list(gpus.values()) for pod, gpus in by_pod.items()}
    return checks.gpu_environment(seen, replicas=replicas, **kwargs), link


def check_framework(deployment: Deployment, stage: DeploymentStage) -> tuple[Outcome, str]:
    metric = FRESHNESS_METRIC.get(deployment.framework)
    client = _prometheus(deployment)
    sel = _matchers(deployment)
    expr = f'{{__name__="{metric}", {sel}}}' if metric else ""
    link = _promql_link(client, expr) if metric else ""
    kwargs: dict[str, Any] = {"framework": deployment.framework, "freshness_metric": metric}
    if metric is None:
        return checks.framework(None, version=None, **kwargs), link
    if client is None:
        return checks.framework(None, version=None, error=NO_PROMETHEUS, **kwargs), link
    try:
        series = client.query(expr)
        builds = client.query(f'{{__name__=~".+_build_info", {sel}}}')
    except PrometheusError as exc:
        return checks.framework(None, version=None, error=str(exc), **kwargs), link
    versions = sorted({s.labels["version"] for s in builds if s.labels.get("version")})
    return checks.framework(len(series), version=", ".join(versions) or None, **kwargs), link


# --------------------------------------------------------------------------- configuration


def _load(inputs: Any) -> float | None:
    observations = inputs.get("observations") if isinstance(inputs, dict) else None
    if not isinstance(observations, dict):
        return None
    total = 0.0
    for signal in (Signal.REQUEST_RATE, Signal.QUEUE_LENGTH):
        item = observations.get(str(signal))
        if not isinstance(item, dict) or item.get("status") != "ok" or item.get("value") is None:
            return None
        total += float(item["value"])
    return total


def check_scaling_policy(deployment: Deployment, stage: DeploymentStage) -> tuple[Outcome, str]:
    link = f"/api/v1/autoscaling/decisions/?deployment={deployment.pk}"
    policy = AutoscalingPolicy.objects.filter(deployment=deployment).first()
    if policy is None:
        return checks.scaling_policy(exists=False, mode="", invalid="", decisions=[]), link
    policy.deployment = deployment
    try:
        policy.to_engine()
        invalid = ""
    except ValueError as exc:
        invalid = str(exc)
    rows = DecisionRecord.objects.filter(deployment=deployment).order_by("-at")[:DECISIONS_JUDGED]
    decisions = [
        checks.DecisionSeen(
            desired=r.desired_replicas, max_replicas=deployment.max_replicas, load=_load(r.inputs)
        )
        for r in rows
    ]
    return checks.scaling_policy(
        exists=True, mode=policy.mode, invalid=invalid, decisions=decisions
    ), link


def check_balancing(deployment: Deployment, stage: DeploymentStage) -> tuple[Outcome, str]:
    link = f"/console/deployments/{deployment.pk}/"
    live_since = timezone.now() - timedelta(seconds=settings.BALANCING_GATEWAY_STALE_S)
    seen = []
    for gateway in Gateway.objects.filter(deployments=deployment, last_seen_at__gte=live_since):
        applied = (
            GatewayReport.objects.filter(gateway=gateway, result=ReportResult.APPLIED)
            .order_by("-received_at", "-pk")
            .first()
        )
        rendered = gateway_config(gateway=gateway)
        if not rendered.sha256:
            seen.append(checks.GatewaySeen(gateway.name, None, "; ".join(rendered.errors)))
        else:
            current = applied is not None and applied.version == rendered.sha256
            seen.append(checks.GatewaySeen(gateway.name, current))
    exists = BalancingPolicy.objects.filter(deployment=deployment).exists()
    return checks.balancing(policy_exists=exists, gateways=seen), link


def check_credentials(deployment: Deployment, stage: DeploymentStage) -> tuple[Outcome, str]:
    cluster = deployment.cluster if deployment.cluster_id else None
    if cluster is None:
        return checks.credentials(cluster=None, stored_secrets=[], reference=""), ""
    link = f"/api/v1/clusters/{cluster.pk}/"
    problem = secret_problem(cluster.credentials)
    stored = {} if problem else dict(cluster.credentials or {})
    inline = sorted(name for name in ("kubeconfig", *AWS_SECRET_KEYS) if stored.get(name))
    if cluster.in_cluster:
        reference = "the in-cluster service account"
    elif cluster.kubeconfig_path:
        reference = f"the kubeconfig file {cluster.kubeconfig_path}"
    elif cluster.aws_credentials_source:
        reference = f"AWS credentials from {cluster.aws_credentials_source}"
    else:
        reference = "no credentials"
    return checks.credentials(
        cluster=cluster.name, stored_secrets=inline, reference=reference, problem=problem
    ), link


def check_tls(deployment: Deployment, stage: DeploymentStage) -> tuple[Outcome, str]:
    return checks.tls(endpoint_url=deployment.endpoint_url, require_tls=stage.require_tls), (
        deployment.endpoint_url
    )


# --------------------------------------------------------------------------- tests


def _load_test_check(mode: str) -> Callable[[Deployment, DeploymentStage], tuple[Outcome, str]]:
    def check(deployment: Deployment, stage: DeploymentStage) -> tuple[Outcome, str]:
        run = (
            LoadTestRun.objects.filter(
                deployment=deployment,
                mode=mode,
                status__in=[LoadTestStatus.DONE, LoadTestStatus.FAILED],
            )
            .order_by("-finished_at", "-pk")
            .first()
        )
        link = f"/api/v1/golive/loadtests/?deployment={deployment.pk}&mode={mode}"
        if run is None:
            return checks.load_test(mode, None, max_age_s=settings.GOLIVE_LOADTEST_MAX_AGE_S), link
        finished = run.finished_at or run.created_at
        seen = checks.LoadTestSeen(
            run_id=run.pk,
            status=run.status,
            passed=run.passed,
            age_s=(timezone.now() - finished).total_seconds(),
            capacity=run.capacity_rps_per_replica,
            error=run.error,
        )
        return checks.load_test(
            mode, seen, max_age_s=settings.GOLIVE_LOADTEST_MAX_AGE_S
        ), f"/api/v1/golive/loadtests/{run.pk}/"

    return check


# --------------------------------------------------------------------------- monitoring


def check_signals(deployment: Deployment, stage: DeploymentStage) -> tuple[Outcome, str]:
    link = f"/api/v1/metrics/deployments/{deployment.pk}/"
    expected = [str(s) for s in Signal if template_for(deployment.framework, str(s)) is not None]
    state = DeploymentMetrics.objects.filter(deployment=deployment).first()
    max_age = settings.METRICS_STALENESS_S
    if state is None:
        return checks.signals(None, expected=expected, max_age_s=max_age), link
    stored = [item for item in (state.observations or {}).values() if isinstance(item, dict)]
    if stored and all(item.get("status") == "unavailable" for item in stored):
        # Every query failed (Prometheus down or refusing): the control plane cannot look.
        # Series that are simply not there read "missing", which fails.
        return checks.signals(
            None, expected=expected, max_age_s=max_age, collection_error=state.reason
        ), link
    now = time.time()
    seen = {}
    for signal, item in (state.observations or {}).items():
        if isinstance(item, dict):
            ts = item.get("ts")
            seen[signal] = checks.SignalSeen(
                status=str(item.get("status", "missing")),
                age_s=None if ts is None else max(0.0, now - float(ts)),
            )
    return checks.signals(seen, expected=expected, max_age_s=max_age), link


def check_slo(deployment: Deployment, stage: DeploymentStage) -> tuple[Outcome, str]:
    names = list(Slo.objects.filter(deployment=deployment).values_list("name", flat=True))
    return checks.slos(names=names), f"/console/slos/?deployment={deployment.pk}"


def check_alert_routing(deployment: Deployment, stage: DeploymentStage) -> tuple[Outcome, str]:
    team_id = deployment.team_id
    rules = (
        AlertRule.objects.filter(team_id=team_id, enabled=True)
        .filter(Q(deployment=deployment) | Q(deployment__isnull=True))
        .count()
    )
    slo_count = Slo.objects.filter(deployment=deployment).count()
    routed = set(
        Route.objects.filter(team_id=team_id, enabled=True).values_list("channels", flat=True)
    )
    channels = []
    for channel in Channel.objects.filter(team_id=team_id, enabled=True).order_by("name"):
        latest_test = (
            Delivery.objects.filter(
                channel=channel, idempotency_key__startswith=f"test-c{channel.pk}-"
            )
            .order_by("-created_at", "-pk")
            .values_list("status", flat=True)
            .first()
        )
        channels.append(
            checks.ChannelSeen(
                name=channel.name,
                routed=channel.pk in routed,
                test_delivered=latest_test == DeliveryStatus.SUCCEEDED,
            )
        )
    return checks.alert_routing(rules=rules, slos=slo_count, channels=channels), "/console/alerts/"


def check_logs(deployment: Deployment, stage: DeploymentStage) -> tuple[Outcome, str]:
    max_age = settings.GOLIVE_LOGS_MAX_AGE_S
    now_ns = time.time_ns()
    link = f"/console/logs/?{urlencode({'deployment': deployment.pk})}"
    try:
        page = log_store().select(
            LogSelect(
                team_id=deployment.team_id,
                start_ns=now_ns - int(max_age * 1e9),
                end_ns=now_ns + 1,
                deployment_id=deployment.pk,
            ),
            limit=1,
        )
    except Exception as exc:  # noqa: BLE001 - a store backend down (ClickHouse) is unknown
        return checks.logs(last_line_age_s=None, max_age_s=max_age, error=type(exc).__name__), link
    age = (now_ns - page.entries[0].timestamp_ns) / 1e9 if page.entries else None
    return checks.logs(last_line_age_s=None if age is None else max(0.0, age), max_age_s=max_age), (
        link
    )


GATHERERS: dict[str, Callable[[Deployment, DeploymentStage], tuple[Outcome, str]]] = {
    "model.served_version": check_served_version,
    "model.artifacts": check_artifacts,
    "environment.gpu": check_gpu,
    "environment.framework": check_framework,
    "configuration.scaling_policy": check_scaling_policy,
    "configuration.balancing": check_balancing,
    "configuration.credentials": check_credentials,
    "configuration.tls": check_tls,
    "tests.functional": _load_test_check(LoadTestMode.FUNCTIONAL),
    "tests.performance": _load_test_check(LoadTestMode.PERFORMANCE),
    "tests.stress": _load_test_check(LoadTestMode.STRESS),
    "monitoring.signals": check_signals,
    "monitoring.slo": check_slo,
    "monitoring.alert_routing": check_alert_routing,
    "monitoring.logs": check_logs,
}


def checks_evaluate(
    *, deployment: Deployment, stage: DeploymentStage, keys: list[str] | None = None
) -> list[Evaluated]:
    """Every check (or those of ``keys``) of the deployment. A check that raises is
    recorded as unknown with the error's type, and the others still run."""
    results = []
    for spec in checks.CHECKS:
        if keys is not None and spec.key not in keys:
            continue
        try:
            outcome, link = GATHERERS[spec.key](deployment, stage)
        except Exception as exc:
            logger.exception("golive-check-error", check=spec.key, deployment_id=deployment.pk)
            outcome, link = (
                Outcome(
                    checks.UNKNOWN, f"The check could not run: {type(exc).__name__}: {exc}"[:500]
                ),
                "",
            )
        results.append(Evaluated(spec=spec, outcome=outcome, evidence_url=link[:2000]))
    return results
