"""The go-live checks as pure functions: each takes what was observed (gathered by
:mod:`.runner`) and says pass, fail or unknown, with what it saw and expected and one
sentence of why. No I/O and no Django here, so they are tested on their own.

``unknown`` means the check could not look (Prometheus down, the endpoint unreachable, no
data of the kind it needs yet): it never passes the gate, and it is not a regression.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["pass", "fail", "unknown"]
PASS: Status = "pass"  # noqa: S105 - a check status, not a password
FAIL: Status = "fail"
UNKNOWN: Status = "unknown"

SHA256_HEX = re.compile(r"^[0-9a-f]{64}\Z")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}\Z")


@dataclass(frozen=True)
class CheckSpec:
    key: str
    group: str
    title: str
    required: bool = True


@dataclass(frozen=True)
class Outcome:
    status: Status
    message: str
    observed: dict[str, Any] = field(default_factory=dict)


CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec("model.served_version", "model", "Served model name and version"),
    CheckSpec("model.artifacts", "model", "Artifact digests match the model checksum"),
    CheckSpec("environment.gpu", "environment", "GPU type and count seen in DCGM metrics"),
    CheckSpec("environment.framework", "environment", "Serving framework seen in its metrics"),
    CheckSpec("configuration.scaling_policy", "configuration", "Scaling policy valid and sane"),
    CheckSpec("configuration.balancing", "configuration", "Balancing policy applied by gateways"),
    CheckSpec("configuration.credentials", "configuration", "Cluster credentials by reference"),
    CheckSpec("configuration.tls", "configuration", "Endpoint served over TLS where required"),
    CheckSpec("tests.functional", "tests", "Functional load test passed recently"),
    CheckSpec("tests.performance", "tests", "Performance load test passed recently"),
    CheckSpec("tests.stress", "tests", "Stress load test measured capacity recently"),
    CheckSpec("monitoring.signals", "monitoring", "Every catalogue signal fresh"),
    CheckSpec("monitoring.slo", "monitoring", "At least one SLO"),
    CheckSpec("monitoring.alert_routing", "monitoring", "Alerts routed to a tested channel"),
    CheckSpec("monitoring.logs", "monitoring", "Logs arriving for the deployment"),
)
CHECKS_BY_KEY: dict[str, CheckSpec] = {c.key: c for c in CHECKS}


# --------------------------------------------------------------------------- model


def served_version(
    listed: Sequence[Mapping[str, Any]] | None,
    *,
    expected_name: str,
    expected_version: str,
    error: str = "",
) -> Outcome:
    """``listed``: the ``data`` of the endpoint's ``/v1/models``. The inventory name must be
    served; a version is compared when the server exposes one (a ``version`` field, or an
    id of the form ``name:version`` / ``name@version``)."""
    expected = {"name": expected_name, "version": expected_version}
    if listed is None:
        return Outcome(UNKNOWN, f"Could not read /v1/models: {error}", {"expected": expected})
    ids = [str(m.get("id", "")) for m in listed if isinstance(m, Mapping)]
    observed: dict[str, Any] = {"served": ids, "expected": expected}
    for entry in listed:
        if not isinstance(entry, Mapping):
            continue
        model_id = str(entry.get("id", ""))
        for sep in (":", "@"):
            if model_id == f"{expected_name}{sep}{expected_version}":
                observed["version_seen"] = expected_version
                return Outcome(PASS, f"Serves {model_id}.", observed)
        if model_id != expected_name:
            continue
        version = entry.get("version")
        if version is None:
            observed["version_seen"] = None
            return Outcome(
                PASS, f"Serves {expected_name} (the server exposes no version).", observed
            )
        observed["version_seen"] = str(version)
        if str(version) == expected_version:
            return Outcome(PASS, f"Serves {expected_name} version {version}.", observed)
        return Outcome(
            FAIL,
            f"Serves {expected_name} version {version}, the inventory says {expected_version}.",
            observed,
        )
    served = ", ".join(ids) or "nothing"
    return Outcome(FAIL, f"Serves {served}, not {expected_name}.", observed)


def manifest_digest(files: Iterable[Mapping[str, str]]) -> str:
    """The digest of a set of files: sha256 of their ``sha256sum`` listing (``<hex>  <path>``
    lines sorted by path, each ending in a newline). A pipeline records it as the model's
    checksum and reports the files; the check recomputes it."""
    lines = sorted((str(f["path"]), str(f["sha256"])) for f in files)
    text = "".join(f"{digest}  {path}\n" for path, digest in lines)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def artifacts(
    report: Mapping[str, Any] | None, *, checksum: str, report_id: int | None = None
) -> Outcome:
    """``report``: the latest report's ``files`` and ``digest``. Its overall digest, or the
    digest of its file list, must equal the model's recorded checksum."""
    observed: dict[str, Any] = {"expected": checksum or None, "report": report_id}
    if not checksum:
        return Outcome(FAIL, "The model has no recorded sha256 checksum to compare with.", observed)
    if report is None:
        return Outcome(FAIL, "The deploy pipeline reported no artifact digests.", observed)
    files = list(report.get("files") or [])
    digest = str(report.get("digest") or "")
    seen = digest or manifest_digest(files)
    observed.update(seen=seen, files=len(files), from_files=not digest)
    if seen == checksum:
        return Outcome(PASS, "The reported artifacts match the model's checksum.", observed)
    return Outcome(FAIL, f"Reported {seen}, the model's checksum is {checksum}.", observed)


# --------------------------------------------------------------------------- environment

# Inventory GPU type -> the tokens DCGM's modelName must contain (split on non-alphanumerics,
# lower case): "NVIDIA A100-SXM4-80GB" -> {nvidia, a100, sxm4, 80gb}.
GPU_TOKENS: dict[str, frozenset[str]] = {
    "a10g": frozenset({"a10g"}),
    "l4": frozenset({"l4"}),
    "l40s": frozenset({"l40s"}),
    "a100-40gb": frozenset({"a100", "40gb"}),
    "a100-80gb": frozenset({"a100", "80gb"}),
    "h100-80gb": frozenset({"h100"}),
    "h200": frozenset({"h200"}),
    "b200": frozenset({"b200"}),
    "mi300x": frozenset({"mi300x"}),
}


def gpu_tokens(product_name: str) -> frozenset[str]:
    return frozenset(t for t in re.split(r"[^a-z0-9]+", product_name.lower()) if t)


def gpu_matches(gpu_type: str, product_name: str) -> bool | None:
    """Whether a DCGM modelName is the inventory's GPU type (None: a type with no mapping)."""
    wanted = GPU_TOKENS.get(gpu_type)
    if wanted is None:
        return None
    return wanted <= gpu_tokens(product_name)


def gpu_environment(
    gpus_by_pod: Mapping[str, Sequence[str]] | None,
    *,
    gpu_type: str,
    gpus_per_replica: int,
    replicas: int | None,
    error: str = "",
) -> Outcome:
    """``gpus_by_pod``: pod -> the modelName of each GPU DCGM reports for it. Every GPU must
    be the inventory's type, every pod must have ``gpus_per_replica`` of them, and (when the
    running replica count is known) there must be that many pods."""
    expected = {
        "gpu_type": gpu_type,
        "gpus_per_replica": gpus_per_replica,
        "replicas": replicas,
        "gpus": None if replicas is None else replicas * gpus_per_replica,
    }
    if gpus_by_pod is None:
        return Outcome(UNKNOWN, f"Could not read DCGM metrics: {error}", {"expected": expected})
    names = sorted({name for gpus in gpus_by_pod.values() for name in gpus})
    observed: dict[str, Any] = {
        "expected": expected,
        "pods": len(gpus_by_pod),
        "gpus": sum(len(g) for g in gpus_by_pod.values()),
        "models": names,
        "per_pod": {pod: len(gpus) for pod, gpus in sorted(gpus_by_pod.items())},
    }
    if gpu_type == "cpu":
        if not gpus_by_pod:
            return Outcome(PASS, "CPU only, and DCGM reports no GPU.", observed)
        return Outcome(FAIL, f"CPU only in the inventory, but DCGM reports {names}.", observed)
    if not gpus_by_pod:
        return Outcome(FAIL, "No DCGM series for the deployment.", observed)
    wrong = [name for name in names if gpu_matches(gpu_type, name) is False]
    if gpu_type not in GPU_TOKENS:
        return Outcome(
            UNKNOWN, f"GPU type {gpu_type!r} has no DCGM model name to compare with.", observed
        )
    if wrong:
        return Outcome(FAIL, f"DCGM reports {', '.join(wrong)}, not a {gpu_type}.", observed)
    short = {pod: len(g) for pod, g in gpus_by_pod.items() if len(g) != gpus_per_replica}
    if short:
        return Outcome(
            FAIL,
            f"{len(short)} pod(s) do not have {gpus_per_replica} GPU(s): "
            + ", ".join(f"{pod} has {n}" for pod, n in sorted(short.items())),
            observed,
        )
    if replicas is not None and len(gpus_by_pod) != replicas:
        return Outcome(
            FAIL, f"DCGM reports GPUs in {len(gpus_by_pod)} pod(s), {replicas} are running.",
            observed,
        )  # fmt: skip
    return Outcome(
        PASS,
        f"{observed['gpus']} {names[0]} GPU(s), {gpus_per_replica} in each of "
        f"{len(gpus_by_pod)} pod(s).",
        observed,
    )


def framework(
    series_seen: int | None,
    *,
    framework: str,
    freshness_metric: str | None,
    version: str | None,
    error: str = "",
) -> Outcome:
    """``series_seen``: how many series of the framework's own freshness metric the
    deployment exposes. The version is reported when the framework exposes one."""
    observed: dict[str, Any] = {
        "framework": framework,
        "metric": freshness_metric,
        "series": series_seen,
        "version": version,
    }
    if freshness_metric is None:
        return Outcome(UNKNOWN, f"No metric of {framework} is in the catalogue.", observed)
    if series_seen is None:
        return Outcome(UNKNOWN, f"Could not read the metrics: {error}", observed)
    if series_seen == 0:
        return Outcome(
            FAIL, f"No {freshness_metric} series: {framework} is not what serves it.", observed
        )
    shown = f" {version}" if version else " (version not exposed in its metrics)"
    return Outcome(PASS, f"{framework}{shown} exposes {freshness_metric}.", observed)


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class DecisionSeen:
    """A recorded decision: what it wanted, the deployment's bounds, the load it saw."""

    desired: int
    max_replicas: int
    load: float | None  # request rate + queue length; None: not observed


def scaling_policy(
    *, exists: bool, mode: str, invalid: str, decisions: Sequence[DecisionSeen]
) -> Outcome:
    """The policy must validate, and no recorded decision may ask for the maximum while
    the deployment saw no load (a target or a rate limit gone wrong)."""
    observed: dict[str, Any] = {"mode": mode or None, "decisions": len(decisions)}
    if not exists:
        return Outcome(FAIL, "The deployment has no scaling policy.", observed)
    if invalid:
        return Outcome(FAIL, f"The scaling policy does not validate: {invalid}", observed)
    if not decisions:
        return Outcome(UNKNOWN, "No decision recorded yet to judge the policy by.", observed)
    insane = [d for d in decisions if d.desired >= d.max_replicas and d.load == 0]
    observed["at_max_without_load"] = len(insane)
    if insane:
        return Outcome(
            FAIL,
            f"{len(insane)} of {len(decisions)} decisions asked for the maximum "
            f"({insane[0].max_replicas}) with no load.",
            observed,
        )
    return Outcome(PASS, f"Valid; {len(decisions)} recent decisions look sane.", observed)


@dataclass(frozen=True)
class GatewaySeen:
    name: str
    current: bool | None  # applied the version it would be served now (None: unknown)
    error: str = ""


def balancing(*, policy_exists: bool, gateways: Sequence[GatewaySeen]) -> Outcome:
    """A balancing policy must exist, and every gateway seen recently must have applied the
    configuration it would be served now."""
    observed: dict[str, Any] = {
        "policy": policy_exists,
        "gateways": [{"name": g.name, "current": g.current, "error": g.error} for g in gateways],
    }
    if not policy_exists:
        return Outcome(FAIL, "The deployment has no balancing policy.", observed)
    stale = [g.name for g in gateways if g.current is False]
    if stale:
        return Outcome(
            FAIL, f"Gateway(s) {', '.join(stale)} have not applied the current version.", observed
        )
    unknown = [g for g in gateways if g.current is None]
    if unknown:
        why = "; ".join(f"{g.name}: {g.error or 'nothing to compare'}" for g in unknown)
        return Outcome(UNKNOWN, f"Cannot tell what every gateway applied ({why}).", observed)
    if not gateways:
        return Outcome(PASS, "A balancing policy exists; no live gateway fronts it.", observed)
    return Outcome(
        PASS, f"Every live gateway ({len(gateways)}) applied the current version.", observed
    )


def credentials(
    *, cluster: str | None, stored_secrets: Sequence[str], reference: str, problem: str = ""
) -> Outcome:
    """A cluster's credentials must be a reference (a kubeconfig path, the in-cluster
    service account, an AWS role or profile, the default chain), not a secret stored inline
    in the control plane. ``stored_secrets``: the names of the inline secrets it keeps."""
    observed: dict[str, Any] = {
        "cluster": cluster,
        "inline": list(stored_secrets),
        "reference": reference,
    }
    if cluster is None:
        return Outcome(PASS, "No cluster: a simulated target needs no credentials.", observed)
    if problem:
        return Outcome(FAIL, f"Credentials of {cluster} are unusable: {problem}", observed)
    if stored_secrets:
        return Outcome(
            FAIL,
            f"Cluster {cluster} stores {', '.join(stored_secrets)} inline; "
            "reference them instead (kubeconfig path, role, service account).",
            observed,
        )
    return Outcome(PASS, f"Cluster {cluster} uses {reference}.", observed)


def tls(*, endpoint_url: str, require_tls: bool) -> Outcome:
    observed = {"endpoint_url": endpoint_url, "require_tls": require_tls}
    scheme = endpoint_url.split(":", 1)[0].lower() if endpoint_url else ""
    if not require_tls:
        return Outcome(PASS, "TLS is not required for this deployment.", observed)
    if scheme == "https":
        return Outcome(PASS, "The endpoint is served over https.", observed)
    if not endpoint_url:
        return Outcome(FAIL, "TLS is required but the deployment has no endpoint URL.", observed)
    return Outcome(FAIL, "TLS is required but the endpoint is not https.", observed)


# --------------------------------------------------------------------------- tests


@dataclass(frozen=True)
class LoadTestSeen:
    run_id: int
    status: str
    passed: bool | None
    age_s: float
    capacity: float | None = None
    error: str = ""


def load_test(mode: str, latest: LoadTestSeen | None, *, max_age_s: float) -> Outcome:
    """The latest finished load test of the mode must have passed and be recent."""
    observed: dict[str, Any] = {"mode": mode, "max_age_s": max_age_s}
    if latest is None:
        return Outcome(FAIL, f"No {mode} load test has run.", observed)
    observed.update(
        run=latest.run_id,
        status=latest.status,
        passed=latest.passed,
        age_s=round(latest.age_s, 1),
        capacity_rps_per_replica=latest.capacity,
    )
    if latest.status != "done":
        return Outcome(
            FAIL, f"The latest {mode} load test {latest.status}: {latest.error}".rstrip(": "),
            observed,
        )  # fmt: skip
    if not latest.passed:
        return Outcome(FAIL, f"The latest {mode} load test did not pass.", observed)
    if latest.age_s > max_age_s:
        return Outcome(
            FAIL,
            f"The latest passing {mode} load test is {latest.age_s / 3600:.1f} h old "
            f"(at most {max_age_s / 3600:.1f} h).",
            observed,
        )
    extra = (
        f" measured {latest.capacity:.2f} req/s per replica"
        if mode == "stress" and latest.capacity
        else ""
    )
    return Outcome(PASS, f"The latest {mode} load test passed{extra}.", observed)


# --------------------------------------------------------------------------- monitoring


@dataclass(frozen=True)
class SignalSeen:
    status: str  # ok | missing | stale | unsupported | unavailable
    age_s: float | None


def signals(
    seen: Mapping[str, SignalSeen] | None,
    *,
    expected: Sequence[str],
    max_age_s: float,
    collection_error: str = "",
) -> Outcome:
    """Every signal the catalogue has for the framework must have a fresh value.
    ``seen`` None: never collected; a collection that could not reach Prometheus is unknown."""
    observed: dict[str, Any] = {"expected": list(expected), "max_age_s": max_age_s}
    if collection_error:
        return Outcome(UNKNOWN, f"Metrics could not be collected: {collection_error}", observed)
    if seen is None:
        return Outcome(FAIL, "No metrics were ever collected for the deployment.", observed)
    missing = []
    for signal in expected:
        item = seen.get(signal)
        if item is None or item.status != "ok" or item.age_s is None or item.age_s > max_age_s:
            missing.append(signal)
    observed["missing"] = missing
    observed["fresh"] = len(expected) - len(missing)
    if missing:
        return Outcome(
            FAIL,
            f"{len(missing)} of {len(expected)} signals missing or stale: {', '.join(missing)}.",
            observed,
        )
    return Outcome(PASS, f"All {len(expected)} catalogue signals are fresh.", observed)


def slos(*, names: Sequence[str]) -> Outcome:
    observed = {"slos": list(names)}
    if not names:
        return Outcome(FAIL, "The deployment has no SLO.", observed)
    return Outcome(PASS, f"{len(names)} SLO(s): {', '.join(names)}.", observed)


@dataclass(frozen=True)
class ChannelSeen:
    name: str
    routed: bool  # an enabled route of the team sends to it
    test_delivered: bool  # its latest test message was delivered


def alert_routing(*, rules: int, slos: int, channels: Sequence[ChannelSeen]) -> Outcome:
    """Something must raise alerts for the deployment (a rule or an SLO), and an enabled
    route must send them to a channel whose latest test message was delivered."""
    observed: dict[str, Any] = {
        "rules": rules,
        "slos": slos,
        "channels": [
            {"name": c.name, "routed": c.routed, "test_delivered": c.test_delivered}
            for c in channels
        ],
    }
    if rules + slos == 0:
        return Outcome(FAIL, "No alert rule or SLO raises alerts for the deployment.", observed)
    routed = [c for c in channels if c.routed]
    if not routed:
        return Outcome(FAIL, "No enabled route sends the team's alerts to a channel.", observed)
    good = [c.name for c in routed if c.test_delivered]
    if not good:
        return Outcome(
            FAIL,
            "No routed channel has delivered a test message: send one from the alerts page.",
            observed,
        )
    return Outcome(PASS, f"Alerts route to {', '.join(good)} (test delivered).", observed)


def logs(*, last_line_age_s: float | None, max_age_s: float, error: str = "") -> Outcome:
    observed = {"last_line_age_s": last_line_age_s, "max_age_s": max_age_s}
    if error:
        return Outcome(UNKNOWN, f"Could not read the log store: {error}", observed)
    if last_line_age_s is None:
        return Outcome(FAIL, "No log line of the deployment in the window.", observed)
    if last_line_age_s > max_age_s:
        return Outcome(
            FAIL, f"The last log line is {last_line_age_s:.0f} s old.", observed
        )  # fmt: skip
    return Outcome(PASS, f"The last log line arrived {last_line_age_s:.0f} s ago.", observed)


# --------------------------------------------------------------------------- gate


def gate_failures(latest: Mapping[str, str]) -> list[dict[str, str]]:
    """The required checks not passing, given the latest status per check key (a check
    never run counts as unknown)."""
    return [
        {"key": spec.key, "status": latest.get(spec.key, UNKNOWN)}
        for spec in CHECKS
        if spec.required and latest.get(spec.key, UNKNOWN) != PASS
    ]


def regressions(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """Required checks that went from pass to fail."""
    return [
        spec.key
        for spec in CHECKS
        if spec.required and before.get(spec.key) == PASS and after.get(spec.key) == FAIL
    ]


def recoveries(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """Required checks that pass now and did not before (their alert, if any, resolves)."""
    return [
        spec.key
        for spec in CHECKS
        if spec.required and before.get(spec.key) != PASS and after.get(spec.key) == PASS
    ]
