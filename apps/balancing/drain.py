"""Drain before scale-down: take the replicas a scale-down removes out of every gateway
first, let the requests they serve finish, and only then remove them.

A scale-down of a deployment that gateways front (directly, or as the fallback of a
deployment they front) goes like this (:func:`drain_prepare`, :func:`drain_run`,
:func:`drain_settle`, :func:`drain_finish`; apps/autoscaling/actions.py drives them):

1. The members to remove are chosen in advance
   (:func:`apps.balancing.membership.members_to_remove`, with the load per pod the action
   reads and the removal order of the scale target kind) and written as
   :class:`~apps.balancing.models.DrainingMember` rows. From then on every rendering marks
   them ``draining``, so each gateway's next configuration leaves them out of every
   upstream (:func:`apps.balancing.selectors.draining_marked`).
2. The drain waits until every gateway that fetched its configuration within
   ``BALANCING_GATEWAY_STALE_S`` reports ``applied`` for the version it should serve now
   (:func:`~apps.balancing.selectors.gateway_config`, re-read on every poll, so a policy
   edited meanwhile is waited for too). Gateways not seen for longer are skipped: nothing
   can be learnt from them. Then it waits until the drained members serve no request:
   simulated deployments are read from the simulator's ``/metrics`` (exact and current),
   others from Prometheus (:func:`apps.metrics.services.pod_load_read`); a member whose
   count is unknown has not finished. The whole wait ends at ``BALANCING_DRAIN_TIMEOUT_S``
   whatever is left (the scale-down still happens, and the record says what was left).
3. The actuator removes exactly those members; the rows are deleted when the action ends:
   after a removal once the platform lists them as leaving (:func:`drain_settle`, so no
   gateway puts them back for a moment), after a failure at once (they return to the
   upstreams).

The waiting itself (:func:`drain_wait`) is a loop over two injected reads, a clock and a
sleep, so its logic is tested without servers or time passing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import requests
import structlog
from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from apps.inventory.models import Deployment

from . import membership
from .members import Member
from .models import DrainingMember, Gateway, GatewayDeployment, ReportResult
from .selectors import deployment_degradation, gateway_config

__all__ = [
    "Drain",
    "DrainWait",
    "GatewayState",
    "drain_finish",
    "drain_prepare",
    "drain_run",
    "drain_settle",
    "drain_wait",
    "fleetsim_in_flight",
    "gateway_states",
    "gateways_rendering",
    "members_in_flight",
]

logger = structlog.get_logger("controlplane.balancing.drain")

# Rows outlive the drain's own timeout by this much: long enough for the removal after
# it, short enough that a worker that died mid-drain does not keep members out for long.
EXPIRY_MARGIN_S = 120.0
IN_FLIGHT_SERIES = ("vllm:num_requests_running", "vllm:num_requests_waiting")


# ------------------------------------------------------------------ the wait (pure)


@dataclass(frozen=True, slots=True)
class GatewayState:
    """One gateway during a drain: the ``version`` it should serve now (empty when its
    configuration does not render: nothing to wait for) and its last applied one."""

    name: str
    version: str
    applied_version: str = ""
    applied_at: datetime | None = None

    @property
    def current(self) -> bool:
        return bool(self.version) and self.applied_version == self.version


@dataclass(frozen=True, slots=True)
class DrainWait:
    """How a drain's wait ended. ``applied_after_s``: seconds until every gateway applied
    (None: not before the timeout); ``in_flight_done_after_s``: until the drained members
    served nothing (None: not before the timeout); ``in_flight_left``: the last counts read
    when it timed out (None: unknown)."""

    applied_after_s: float | None
    in_flight_done_after_s: float | None
    timed_out: bool
    gateways: tuple[GatewayState, ...] = ()
    in_flight_left: dict[str, float | None] = field(default_factory=dict)


def _finished(counts: Mapping[str, float | None]) -> bool:
    return all(count is not None and count <= 0 for count in counts.values())


def drain_wait(
    *,
    gateways: Callable[[], Sequence[GatewayState]],
    in_flight: Callable[[], Mapping[str, float | None]],
    timeout_s: float,
    poll_s: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> DrainWait:
    """Poll ``gateways`` until each is current, then ``in_flight`` until every count is
    0, each at most every ``poll_s`` and both within ``timeout_s`` of the start."""
    start = clock()
    deadline = start + max(timeout_s, 0.0)

    def pause() -> bool:
        """Sleep until the next poll; False when the deadline has passed."""
        left = deadline - clock()
        if left <= 0:
            return False
        sleep(min(poll_s, left))
        return True

    states = tuple(gateways())
    while not all(s.current for s in states if s.version):
        if not pause():
            return DrainWait(None, None, True, states)
        states = tuple(gateways())
    applied_after = clock() - start
    counts = dict(in_flight())
    while not _finished(counts):
        if not pause():
            return DrainWait(applied_after, None, True, states, counts)
        counts = dict(in_flight())
    return DrainWait(applied_after, clock() - start, False, states)


# ------------------------------------------------------------------ reads


def gateways_rendering(*, deployment: Deployment) -> list[Gateway]:
    """The gateways whose configuration contains ``deployment``'s members: those fronting
    it, and those fronting a deployment of its team whose fallback it is."""
    links = GatewayDeployment.objects.filter(gateway__team_id=deployment.team_id)
    names = dict(links.values_list("deployment_id", "deployment__name").distinct())
    fallback_of = {
        pk
        for pk, name in names.items()
        if pk != deployment.pk
        and deployment_degradation(team_id=deployment.team_id, deployment_name=name).fallback
        == deployment.name
    }
    ids = set(
        links.filter(Q(deployment=deployment) | Q(deployment_id__in=fallback_of)).values_list(
            "gateway_id", flat=True
        )
    )
    return list(Gateway.objects.filter(pk__in=ids).order_by("name"))


def _last_applied(gateway: Gateway) -> tuple[str, datetime | None]:
    report = (
        gateway.reports.filter(result=ReportResult.APPLIED).order_by("-received_at", "-pk").first()
    )
    return (report.version, report.applied_at) if report is not None else ("", None)


def gateway_states(*, gateways: Iterable[Gateway]) -> list[GatewayState]:
    """Each gateway's current version (rendered now) and its last applied report."""
    states = []
    for gateway in gateways:
        rendered = gateway_config(gateway=gateway)
        version, applied_at = _last_applied(gateway)
        states.append(
            GatewayState(
                name=gateway.name,
                version=rendered.sha256 if rendered.ok else "",
                applied_version=version,
                applied_at=applied_at,
            )
        )
    return states


def fleetsim_in_flight(
    *,
    base_url: str,
    namespace: str,
    name: str,
    pods: Sequence[str],
    session: requests.Session | None = None,
    timeout_s: float = 5.0,
) -> dict[str, float | None]:
    """Requests running and waiting on each of ``pods`` of simulated deployment
    ``namespace/name``, from the simulator's ``/metrics``; None for a pod it does not
    list (no longer ready) and for every pod when it cannot be read."""
    unknown: dict[str, float | None] = dict.fromkeys(pods)
    url = f"{base_url.rstrip('/')}/metrics"
    try:
        response = (session or requests).get(url, timeout=timeout_s)
        response.raise_for_status()
        families = list(text_string_to_metric_families(response.text))
    except (requests.RequestException, ValueError) as exc:
        logger.warning("drain-in-flight-unreadable", url=url, error=str(exc))
        return unknown
    counts: dict[str, float | None] = dict(unknown)
    for family in families:
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name not in IN_FLIGHT_SERIES
                or labels.get("namespace") != namespace
                or labels.get("deployment") != name
                or labels.get("pod") not in counts
            ):
                continue
            pod = labels["pod"]
            counts[pod] = (counts[pod] or 0.0) + float(sample.value)
    return counts


def members_in_flight(*, deployment: Deployment, names: Sequence[str]) -> dict[str, float | None]:
    """Requests in flight on the named members (None: unknown)."""
    if deployment.target_kind == "simulated":
        return fleetsim_in_flight(
            base_url=settings.FLEETSIM_URL or "http://127.0.0.1:9400",
            namespace=deployment.scale_target_namespace,
            name=deployment.scale_target_name,
            pods=names,
        )
    from apps.metrics.services import pod_load_read

    load = pod_load_read(deployment=deployment) or {}
    return {n: (v if (v := load.get(n)) is not None and not math.isnan(v) else None) for n in names}


# ------------------------------------------------------------------ begin and end


@dataclass
class Drain:
    """A drain under way: the members being drained and what the record says so far."""

    deployment: Deployment
    action_id: int
    members: list[Member]
    waited: list[Gateway]
    record: dict[str, Any]

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.members]


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


def drain_prepare(
    *,
    deployment: Deployment,
    action_id: int,
    members: Sequence[Member],
    gateways: Sequence[Gateway],
    budget_s: float,
    now: datetime | None = None,
) -> Drain:
    """Mark ``members`` draining (rows replacing any left by an earlier action) and split
    ``gateways`` into those to wait for and those not seen recently (skipped)."""
    now = now or timezone.now()
    expires_at = now + timedelta(seconds=budget_s + EXPIRY_MARGIN_S)
    names = [m.name for m in members]
    DrainingMember.objects.filter(deployment=deployment, name__in=names).delete()
    DrainingMember.objects.bulk_create(
        DrainingMember(
            deployment=deployment,
            name=m.name,
            endpoint=m.endpoint,
            scale_action_id=action_id,
            expires_at=expires_at,
        )
        for m in members
    )
    fresh_after = now - timedelta(seconds=settings.BALANCING_GATEWAY_STALE_S)
    waited, skipped = [], []
    for gateway in gateways:
        seen = gateway.last_seen_at
        if seen is not None and seen >= fresh_after:
            waited.append(gateway)
            continue
        reason = (
            "its agent never fetched a configuration"
            if seen is None
            else f"not seen since {seen.isoformat()}"
        )
        skipped.append({"name": gateway.name, "reason": reason, "last_seen_at": _iso(seen)})
    record: dict[str, Any] = {
        "members": [{"name": m.name, "endpoint": m.endpoint, "state": m.state} for m in members],
        "started_at": now.isoformat(),
        "budget_s": round(budget_s, 3),
        "gateways": [],
        "skipped": skipped,
    }
    logger.info(
        "drain-started",
        deployment_id=deployment.pk,
        action=action_id,
        members=names,
        gateways=[g.name for g in waited],
        skipped=[s["name"] for s in skipped],
    )
    return Drain(deployment, action_id, list(members), waited, record)


def drain_run(
    drain: Drain,
    *,
    timeout_s: float,
    poll_s: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    in_flight: Callable[[], Mapping[str, float | None]] | None = None,
) -> DrainWait:
    """Wait for the gateways of ``drain`` and the in-flight requests of its members,
    adding the outcome to its record."""

    def read_in_flight() -> Mapping[str, float | None]:
        return members_in_flight(deployment=drain.deployment, names=drain.names)

    ids = [g.pk for g in drain.waited]

    def read_gateways() -> Sequence[GatewayState]:
        # Re-read: a gateway renamed or re-ported meanwhile renders differently.
        return gateway_states(gateways=Gateway.objects.filter(pk__in=ids).order_by("name"))

    outcome = drain_wait(
        gateways=read_gateways,
        in_flight=in_flight or read_in_flight,
        timeout_s=timeout_s,
        poll_s=poll_s,
        clock=clock,
        sleep=sleep,
    )
    drain.record.update(
        gateways=[
            {
                "name": s.name,
                "version": s.version,
                "applied": s.current,
                "applied_at": _iso(s.applied_at) if s.current else None,
            }
            for s in outcome.gateways
        ],
        applied_after_s=_rounded(outcome.applied_after_s),
        in_flight_done_after_s=_rounded(outcome.in_flight_done_after_s),
        timed_out=outcome.timed_out,
        in_flight_left=outcome.in_flight_left,
    )
    unrendered = [s.name for s in outcome.gateways if not s.version]
    if unrendered:
        drain.record["unrendered"] = unrendered
    log = logger.bind(deployment_id=drain.deployment.pk, action=drain.action_id)
    if outcome.timed_out:
        log.warning(
            "drain-timed-out",
            pending=[s.name for s in outcome.gateways if s.version and not s.current],
            in_flight_left=outcome.in_flight_left,
        )
    else:
        log.info(
            "drain-finished",
            applied_after_s=drain.record["applied_after_s"],
            in_flight_done_after_s=drain.record["in_flight_done_after_s"],
        )
    return outcome


def _rounded(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None


def drain_settle(
    drain: Drain,
    *,
    timeout_s: float,
    poll_s: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """After the removal: wait (at most ``timeout_s``) until the platform no longer lists a
    drained member as serving or loading (a Kubernetes pod turns terminating once the
    ReplicaSet controller deletes it, an instance Terminating), so that deleting the rows
    does not put it back in an upstream for a moment. Best effort: a failed read ends it."""
    start = clock()
    deadline = start + max(timeout_s, 0.0)
    names = set(drain.names)
    while True:
        try:
            listed = membership.members_of(deployment=drain.deployment)
        except membership.MembershipError:
            drain.record["left_after_s"] = None
            return
        if not any(m.name in names and m.state in ("serving", "loading") for m in listed):
            drain.record["left_after_s"] = _rounded(clock() - start)
            return
        left = deadline - clock()
        if left <= 0:
            drain.record["left_after_s"] = None
            return
        sleep(min(poll_s, left))


def drain_finish(drain: Drain, *, removed: bool, error: str = "") -> dict[str, Any]:
    """End ``drain``: its rows go (removed members are gone; members of a failed removal
    return to the upstreams). Returns the record to keep."""
    DrainingMember.objects.filter(
        deployment=drain.deployment, scale_action_id=drain.action_id
    ).delete()
    drain.record["outcome"] = "removed" if removed else "returned"
    if error:
        drain.record["error"] = error[:1000]
    logger.info(
        "drain-ended",
        deployment_id=drain.deployment.pk,
        action=drain.action_id,
        outcome=drain.record["outcome"],
    )
    return drain.record
