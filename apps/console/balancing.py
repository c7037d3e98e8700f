"""What the deployment page's "Load balancing" section shows: the deployment's balancing
policy, its members as discovery reads them (with the drains under way), every gateway
fronting it with what that gateway last applied, compared with what it would be served now,
and the drains its latest scale-downs recorded.

Reading members asks the system the deployment runs in (the simulator, a cluster's API,
Auto Scaling), and each gateway's current version is rendered from the members of all the
deployments it fronts. One page view reads each deployment's members once (the reads are
shared between the members table and every gateway's rendering) and ``nginx -t`` runs once
per configuration version (:func:`apps.balancing.selectors.gateway_config` caches it), so
the cost of a view is one members read per deployment involved plus rendering. The page
loads the section on its own request, so a slow cluster API never holds up the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import OuterRef, Subquery
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.autoscaling.models import ScaleAction
from apps.balancing import selectors as balancing
from apps.balancing.members import MEMBER_STATES, Member, MemberState
from apps.balancing.membership import MembershipError
from apps.balancing.models import (
    Algorithm,
    BalancingPolicy,
    DrainingMember,
    Gateway,
    GatewayReport,
    ReportResult,
    ShedStatus,
)
from apps.balancing.render import member_is_backup, member_weight
from apps.balancing.selectors import MembersOf
from apps.balancing.spec import PolicySpec
from apps.inventory.models import Deployment

SHORT_SHA = 12


@dataclass(frozen=True)
class MemberRow:
    """One member as the section lists it. ``drain`` is the drain under way for it, if
    any; ``listed`` is False for a member being drained that discovery no longer lists
    (its replica is already going away)."""

    name: str
    endpoint: str
    state: MemberState
    zone: str = ""
    weight: int = 1
    backup: bool = False
    started_at: datetime | None = None
    drain: DrainingMember | None = None
    listed: bool = True


@dataclass(frozen=True)
class GatewayRow:
    """A gateway fronting the deployment. ``version`` is the configuration it would be
    served now ("" when it cannot be rendered: ``errors`` say why); ``current`` whether the
    last configuration it applied is that one (None: unknown, nothing to compare with)."""

    gateway: Gateway
    last_report: GatewayReport | None
    last_applied: GatewayReport | None
    version: str
    errors: list[str]
    current: bool | None

    @property
    def version_short(self) -> str:
        return self.version[:SHORT_SHA]


@dataclass(frozen=True)
class DrainRow:
    """A scale-down's drain as its action recorded it (``ScaleAction.drain``): the members
    it drained, the gateways it waited for (each with whether and when it applied the
    configuration without them) and those it skipped (not seen recently) with why, the
    seconds until every gateway applied and until the members' requests ended (None: not
    before the timeout), what was still in flight at a timeout, and how it ended
    (``removed``, ``returned`` to the upstreams, or "" while it runs)."""

    action: ScaleAction
    members: list[str]
    waited: list[dict[str, Any]]
    skipped: list[dict[str, Any]]
    applied_after_s: float | None
    in_flight_done_after_s: float | None
    timed_out: bool
    in_flight_left: dict[str, Any]
    outcome: str
    error: str


@dataclass(frozen=True)
class BalancingSection:
    """``policy`` is the deployment's own (None: none, the defaults apply); ``spec`` is
    what applies either way."""

    policy: BalancingPolicy | None
    spec: PolicySpec
    members: list[MemberRow] = field(default_factory=list)
    members_error: str = ""
    gateways: list[GatewayRow] = field(default_factory=list)
    drains: list[DrainRow] = field(default_factory=list)

    @property
    def algorithm_label(self) -> str:
        return str(Algorithm(self.spec.algorithm).label)

    @property
    def shed_label(self) -> str:
        return str(ShedStatus(self.spec.shed_status).label)

    @property
    def counts(self) -> dict[str, int]:
        """Members per state, every state listed (zeros included), in the usual order."""
        return {state: sum(m.state == state for m in self.members) for state in MEMBER_STATES}


class _SharedMembers:
    """``members_of`` reading each deployment once (errors too) for one page view."""

    def __init__(self, read: MembersOf) -> None:
        self._read = read
        self._seen: dict[int, Sequence[Member] | MembershipError] = {}

    def __call__(self, deployment: Deployment) -> Sequence[Member]:
        if deployment.pk not in self._seen:
            try:
                self._seen[deployment.pk] = list(self._read(deployment))
            except MembershipError as exc:
                self._seen[deployment.pk] = exc
        found = self._seen[deployment.pk]
        if isinstance(found, MembershipError):
            raise found
        return found


def membership_error_text(exc: MembershipError) -> str:
    """A members read that failed, for people: the message and whether retrying helps."""
    when = "retrying later may help" if exc.retryable else "retrying will not help"
    return f"{exc.message} ({when})"


def member_rows(
    *,
    members: Sequence[Member],
    drains: Sequence[DrainingMember],
    policy: PolicySpec,
) -> list[MemberRow]:
    """The members with their policy weight and backup flag, and each drain under way
    attached to its member (a member being drained reads ``draining`` unless discovery
    already says it is ``down``); drains of members discovery no longer lists follow."""
    by_name = {d.name: d for d in drains}
    rows = []
    for member in members:
        drain = by_name.pop(member.name, None)
        state: MemberState = member.state
        if drain is not None and state != "down":
            state = "draining"
        rows.append(
            MemberRow(
                name=member.name,
                endpoint=member.endpoint,
                state=state,
                zone=member.zone,
                weight=member_weight(member, policy),
                backup=member_is_backup(member, policy),
                started_at=member.started_at,
                drain=drain,
            )
        )
    for drain in sorted(by_name.values(), key=lambda d: d.name):
        rows.append(
            MemberRow(
                name=drain.name,
                endpoint=drain.endpoint,
                state="draining",
                drain=drain,
                listed=False,
            )
        )
    return rows


def gateway_row(
    *,
    gateway: Gateway,
    last_report: GatewayReport | None,
    last_applied: GatewayReport | None,
    members_of: MembersOf,
) -> GatewayRow:
    """The gateway with the version it would be served now and whether what it last
    applied is that version."""
    rendered = balancing.gateway_config(gateway=gateway, members_of=members_of)
    version = rendered.sha256
    current = None
    if version and last_applied is not None:
        current = last_applied.version == version
    elif version:
        current = False  # it never applied anything
    return GatewayRow(
        gateway=gateway,
        last_report=last_report,
        last_applied=last_applied,
        version=version,
        errors=list(rendered.errors),
        current=current,
    )


def deployment_gateways(
    *, deployment: Deployment
) -> list[tuple[Gateway, GatewayReport | None, GatewayReport | None]]:
    """The team's gateways fronting ``deployment``, by name, each with its last report and
    its last applied report, in two queries whatever their number."""
    reports = GatewayReport.objects.filter(gateway=OuterRef("pk")).order_by("-received_at", "-pk")
    applied = reports.filter(result=ReportResult.APPLIED)
    gateways = (
        Gateway.objects.filter(team_id=deployment.team_id, deployments=deployment)
        .annotate(
            last_report_id=Subquery(reports.values("pk")[:1]),
            last_applied_id=Subquery(applied.values("pk")[:1]),
        )
        .order_by("name")
    )
    rows = [(g, g.last_report_id, g.last_applied_id) for g in gateways]
    ids = {i for _, last, good in rows for i in (last, good) if i is not None}
    found = GatewayReport.objects.in_bulk(ids)
    return [(g, found.get(last), found.get(good)) for g, last, good in rows]


def _entries(record: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = record.get(key)
    return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []


def _seconds(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _datetime(value: Any) -> datetime | None:
    try:
        return parse_datetime(value) if isinstance(value, str) else None
    except ValueError:
        return None


def drain_row(action: ScaleAction) -> DrainRow:
    """The drain ``action`` recorded, read leniently: a record written by an older or
    newer version shows what it has."""
    record = action.drain if isinstance(action.drain, dict) else {}
    left = record.get("in_flight_left")
    return DrainRow(
        action=action,
        members=[str(m.get("name", "")) for m in _entries(record, "members")],
        waited=[
            {**g, "applied_at": _datetime(g.get("applied_at"))}
            for g in _entries(record, "gateways")
        ],
        skipped=_entries(record, "skipped"),
        applied_after_s=_seconds(record.get("applied_after_s")),
        in_flight_done_after_s=_seconds(record.get("in_flight_done_after_s")),
        timed_out=record.get("timed_out") is True,
        in_flight_left=left if isinstance(left, dict) else {},
        outcome=str(record.get("outcome") or ""),
        error=str(record.get("error") or ""),
    )


def deployment_drains(*, deployment: Deployment, limit: int = 5) -> list[DrainRow]:
    """The latest scale actions of ``deployment`` that drained members, newest first."""
    actions = ScaleAction.objects.filter(deployment=deployment, drain__isnull=False)
    return [drain_row(a) for a in actions.order_by("-created_at", "-pk")[:limit]]


def deployment_balancing(
    *,
    deployment: Deployment,
    members_of: MembersOf | None = None,
    now: datetime | None = None,
) -> BalancingSection:
    """The section's content. Members come from ``members_of`` (default:
    :func:`apps.balancing.selectors.deployment_members`); when they cannot be read the
    section says why (``members_error``) and still lists the drains and the gateways."""
    now = now or timezone.now()
    shared = _SharedMembers(members_of or balancing.deployment_members)
    policy = BalancingPolicy.objects.filter(deployment=deployment).first()
    spec = policy.spec() if policy is not None else PolicySpec()
    drains = list(
        DrainingMember.objects.filter(deployment=deployment, expires_at__gt=now).order_by("name")
    )
    members: Sequence[Member] = ()
    error = ""
    try:
        members = shared(deployment)
    except MembershipError as exc:
        error = membership_error_text(exc)
    gateways = [
        gateway_row(gateway=gateway, last_report=last, last_applied=good, members_of=shared)
        for gateway, last, good in deployment_gateways(deployment=deployment)
    ]
    return BalancingSection(
        policy=policy,
        spec=spec,
        members=member_rows(members=members, drains=drains, policy=spec),
        members_error=error,
        gateways=gateways,
        drains=deployment_drains(deployment=deployment),
    )
