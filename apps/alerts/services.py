"""Writes: ingest alerts, group them, mute them, flush groups into deliveries.

Ingestion is batched (one query per table per payload, whatever its size) and runs in one
transaction: a webhook is answered 2xx only once everything is stored, so Alertmanager
retries on our failure and nothing is half-done.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import structlog
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from apps.accounts.models import Team
from apps.audit.models import AuditAction
from apps.audit.services import audited
from apps.inventory.models import Deployment

from . import grouping
from .labels import fingerprint
from .models import (
    Alert,
    AlertGroup,
    AlertSource,
    AlertStatus,
    Channel,
    Delivery,
    Receiver,
    Route,
    Silence,
)
from .payloads import IncomingAlert
from .selectors import (
    alert_silenced_by,
    inhibited_fingerprints,
    receiver_token_hash,
    route_matches,
    routes_for_teams,
    silences_active,
)

logger = structlog.get_logger("controlplane.alerts")

TOKEN_PREFIX = "lcpr_"  # noqa: S105 - a public marker, not a secret


# --------------------------------------------------------------------------- receivers


def receiver_create(*, team: Team, name: str, actor: Any) -> tuple[Receiver, str]:
    """A new inbound webhook credential; the token is returned once and stored hashed."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with audited(
        actor=actor, action=AuditAction.CREATE, extra={"name": name}, snapshots=False
    ) as change:
        receiver = change.instance = Receiver.objects.create(
            team=team,
            name=name,
            token_hash=receiver_token_hash(token),
            token_prefix=token[:12],
            created_by=actor if getattr(actor, "pk", None) else None,
        )
    return receiver, token


# --------------------------------------------------------------------------- ingest


@dataclass(frozen=True)
class IngestReport:
    received: int
    created: int
    updated: int
    resolved: int
    grouped: int


def _deployment_index(
    alerts: Iterable[tuple[int | None, IncomingAlert]],
) -> dict[tuple[int, str, str], Deployment]:
    """Deployments named by the alerts' ``deployment`` labels, looked up only within each
    alert's own team: (team id, name, namespace) → deployment, with namespace "" standing
    for "any namespace of the team"."""
    wanted: dict[int, set[str]] = defaultdict(set)
    for team_id, alert in alerts:
        name = alert.labels.get("deployment", "")
        if team_id is not None and name:
            wanted[team_id].add(name)
    if not wanted:
        return {}
    query = Q()
    for team_id, names in wanted.items():
        query |= Q(team_id=team_id, name__in=names)
    index: dict[tuple[int, str, str], Deployment] = {}
    for dep in Deployment.objects.filter(query).only("id", "name", "target_namespace", "team_id"):
        index[(dep.team_id, dep.name, dep.target_namespace)] = dep
        index.setdefault((dep.team_id, dep.name, ""), dep)
    return index


def _owners_by_deployment(alerts: Sequence[IncomingAlert]) -> dict[str, int]:
    """For alerts of no known team (internal callers only; a receiver always has one):
    fingerprint → the team of the deployment the labels name, when exactly one deployment
    of all teams has that name (and namespace, if given). An ambiguous name owns nothing."""
    names = {a.labels.get("deployment", "") for a in alerts} - {""}
    if not names:
        return {}
    candidates: dict[tuple[str, str], set[int]] = defaultdict(set)
    for name, namespace, team_id in Deployment.objects.filter(name__in=names).values_list(
        "name", "target_namespace", "team_id"
    ):
        candidates[(name, namespace)].add(team_id)
        candidates[(name, "")].add(team_id)
    owners: dict[str, int] = {}
    for item in alerts:
        key = (item.labels.get("deployment", ""), item.labels.get("namespace", ""))
        teams = candidates.get(key) or candidates.get((key[0], "")) or set()
        if len(teams) == 1:
            owners[item.fingerprint] = next(iter(teams))
    return owners


def _owned_by(keys: Iterable[tuple[int | None, str]]) -> Q:
    """Alerts with these (team id, fingerprint) identities."""
    by_team: dict[int | None, list[str]] = defaultdict(list)
    for team_id, fp in keys:
        by_team[team_id].append(fp)
    query = Q(pk__in=[])
    for team_id, fps in by_team.items():
        team_q = Q(team__isnull=True) if team_id is None else Q(team_id=team_id)
        query |= team_q & Q(fingerprint__in=fps)
    return query


def _locked(keys: Iterable[tuple[int | None, str]]) -> dict[tuple[int | None, str], Alert]:
    # A fixed lock order (by fingerprint) keeps two overlapping batches from deadlocking.
    return {
        (a.team_id, a.fingerprint): a
        for a in Alert.objects.select_for_update().filter(_owned_by(keys)).order_by("fingerprint")
    }


def alerts_ingest(
    *,
    alerts: Sequence[IncomingAlert],
    source: str,
    team: Team | None = None,
    now: datetime | None = None,
) -> IngestReport:
    """Store alerts and put the firing ones in their groups.

    An alert is identified by its team and fingerprint: with ``team`` (a receiver's, a
    rule's), everything is looked up and stored within that team only — the labels of
    another team's alert change nothing of that team's, and the counts returned are the
    same whether or not another team has an alert with the same labels. Without ``team``,
    the ``team`` label names the owner. The ``deployment`` label is resolved only among
    the owner's deployments.

    Safe to repeat and to run concurrently (an Alertmanager retrying a batch): rows are
    inserted with conflicts ignored, then locked and updated, so a batch stored twice
    leaves one row per team and fingerprint.
    """
    now = now or timezone.now()
    team_slugs = {a.labels.get("team", "") for a in alerts} - {""}
    teams_by_slug = (
        {t.slug: t.pk for t in Team.objects.filter(slug__in=team_slugs)}
        if team is None and team_slugs
        else {}
    )
    latest: dict[tuple[int | None, str], IncomingAlert] = {}
    unowned: list[IncomingAlert] = []
    for item in alerts:  # the same alert twice in one payload: the last one counts
        owner_id = team.pk if team is not None else teams_by_slug.get(item.labels.get("team", ""))
        if owner_id is None:
            unowned.append(item)
            continue
        latest[(owner_id, item.fingerprint)] = item
    owners = _owners_by_deployment(unowned) if unowned else {}
    for item in unowned:
        latest[(owners.get(item.fingerprint), item.fingerprint)] = item
    if not latest:
        return IngestReport(0, 0, 0, 0, 0)
    deployments = _deployment_index((key[0], item) for key, item in latest.items())
    created: list[Alert] = []
    changed: list[Alert] = []
    resolved = 0
    with transaction.atomic():
        existing = _locked(latest)
        missing = sorted((k for k in latest if k not in existing), key=lambda k: k[1])
        if missing:
            fresh = {
                key: _new_alert(key, latest[key], deployments, source=source, now=now)
                for key in missing
            }
            # Conflicts ignored: a concurrent delivery of the same batch may have inserted
            # some of them since (its rows are then locked and updated below like ours).
            Alert.objects.bulk_create(fresh.values(), batch_size=1000, ignore_conflicts=True)
            inserted = _locked(missing)
            if len(inserted) != len(missing):
                # Only a unique conflict may be ignored (SQLite's INSERT OR IGNORE would
                # also skip other violations): never lose an alert silently.
                raise IntegrityError(
                    f"{len(missing) - len(inserted)} of {len(missing)} new alerts were not stored"
                )
            for key, row in inserted.items():
                if _same_insert(row, fresh[key]):
                    created.append(row)
                    resolved += row.status == AlertStatus.RESOLVED
                else:
                    existing[key] = row
        for key, row in existing.items():
            item = latest[key]
            if (
                row.status == AlertStatus.RESOLVED
                and item.status == AlertStatus.FIRING
                and item.starts_at > (row.ends_at or row.starts_at)
            ):
                # A new occurrence of the same alert: the old acknowledgement does not carry.
                row.acknowledged_by, row.acknowledged_at, row.ack_comment = None, None, ""
                row.starts_at = item.starts_at
            elif item.starts_at < row.starts_at:
                row.starts_at = item.starts_at
            resolved += item.status == AlertStatus.RESOLVED and row.status != item.status
            row.status = item.status
            row.ends_at = item.ends_at
            row.annotations = item.annotations
            row.generator_url = item.generator_url
            row.received_at = now
            dep = _deployment_for(key[0], item, deployments)
            if row.deployment_id is None and dep is not None:
                row.deployment = dep
            changed.append(row)
        if changed:
            Alert.objects.bulk_update(
                changed,
                [
                    "status",
                    "starts_at",
                    "ends_at",
                    "annotations",
                    "generator_url",
                    "received_at",
                    "deployment",
                    "acknowledged_by",
                    "acknowledged_at",
                    "ack_comment",
                ],
                batch_size=1000,
            )
        firing = [a for a in (*created, *changed) if a.status == AlertStatus.FIRING]
        grouped = _group(firing, now) if firing else 0
    logger.info(
        "alerts-ingested",
        source=source,
        team=team.pk if team is not None else None,
        received=len(alerts),
        created=len(created),
        updated=len(changed),
        resolved=resolved,
    )
    return IngestReport(len(alerts), len(created), len(changed), resolved, grouped)


def _deployment_for(
    team_id: int | None,
    item: IncomingAlert,
    deployments: Mapping[tuple[int, str, str], Deployment],
) -> Deployment | None:
    if team_id is None:
        return None
    name = item.labels.get("deployment", "")
    return deployments.get((team_id, name, item.labels.get("namespace", ""))) or deployments.get(
        (team_id, name, "")
    )


def _new_alert(
    key: tuple[int | None, str],
    item: IncomingAlert,
    deployments: Mapping[tuple[int, str, str], Deployment],
    *,
    source: str,
    now: datetime,
) -> Alert:
    return Alert(
        fingerprint=key[1],
        team_id=key[0],
        deployment=_deployment_for(key[0], item, deployments),
        source=source,
        name=item.labels.get("alertname", "")[:200],
        severity=item.labels.get("severity", "")[:32],
        labels=item.labels,
        annotations=item.annotations,
        status=item.status,
        starts_at=item.starts_at,
        ends_at=item.ends_at,
        generator_url=item.generator_url,
        received_at=now,
    )


def _same_insert(row: Alert, ours: Alert) -> bool:
    """Whether the locked row is the one this call inserted (rather than a concurrent
    call's insert of the same alert, which this call then updates)."""
    return (
        row.received_at == ours.received_at
        and row.source == ours.source
        and row.status == ours.status
        and row.annotations == ours.annotations
        and row.starts_at == ours.starts_at
    )


def _group(alerts: Sequence[Alert], now: datetime) -> int:
    """Add firing alerts to their routes' groups (creating groups, which then wait
    ``group_wait`` before their first notification)."""
    routes = routes_for_teams(a.team_id for a in alerts if a.team_id)
    wanted: dict[tuple[int, str], tuple[Route, dict[str, str]]] = {}
    members: list[tuple[tuple[int, str], int]] = []
    for alert in alerts:
        if not alert.team_id:
            continue
        for route in route_matches(routes.get(alert.team_id, []), alert.labels):
            labels = grouping.group_key(route.group_by or [], alert.labels)
            key = (route.pk, fingerprint(labels))
            wanted.setdefault(key, (route, labels))
            members.append((key, alert.pk))
    if not members:
        return 0
    AlertGroup.objects.bulk_create(
        [
            AlertGroup(
                route=route,
                key_hash=key[1],
                labels=labels,
                created_at=now,
                next_flush_at=now + timedelta(seconds=route.group_wait_s),
            )
            for key, (route, labels) in wanted.items()
        ],
        ignore_conflicts=True,
    )
    ids = {
        (g.route_id, g.key_hash): g.pk
        for g in AlertGroup.objects.filter(
            route_id__in={k[0] for k in wanted}, key_hash__in={k[1] for k in wanted}
        ).only("id", "route_id", "key_hash")
    }
    through = AlertGroup.alerts.through
    through.objects.bulk_create(
        [through(alertgroup_id=ids[key], alert_id=alert_id) for key, alert_id in members],
        ignore_conflicts=True,
        batch_size=2000,
    )
    return len(members)


def alert_raise(
    *,
    labels: Mapping[str, str],
    annotations: Mapping[str, str] | None = None,
    source: str,
    team: Team | None = None,
    firing: bool = True,
    now: datetime | None = None,
) -> None:
    """Raise (or resolve) one alert from inside the control plane. Resolving one that is
    not firing does nothing."""
    now = now or timezone.now()
    fp = fingerprint(dict(labels))
    owner_id = (
        team.pk
        if team is not None
        else Team.objects.filter(slug=labels.get("team") or "").values_list("pk", flat=True).first()
    )
    owned = Alert.objects.filter(_owned_by([(owner_id, fp)]))
    if not firing:
        current = owned.first()
        if current is None or current.status == AlertStatus.RESOLVED:
            return
        starts_at = current.starts_at
    else:
        current = owned.filter(status=AlertStatus.FIRING).first()
        starts_at = current.starts_at if current else now
    alerts_ingest(
        alerts=[
            IncomingAlert(
                labels=dict(labels),
                annotations=dict(annotations or {}),
                status=AlertStatus.FIRING if firing else AlertStatus.RESOLVED,
                starts_at=starts_at,
                ends_at=None if firing else now,
                generator_url="",
                fingerprint=fp,
            )
        ],
        source=source,
        team=team,
        now=now,
    )


# --------------------------------------------------------------------------- flush


@dataclass(frozen=True)
class FlushReport:
    groups: int
    notified: int
    deliveries: list[int]


def alert_groups_flush(
    *,
    now: datetime | None = None,
    limit: int = 500,
    enqueue: Callable[[int], object] | None = None,
) -> FlushReport:
    """Look at every group that is due; create the deliveries its notification needs.

    ``enqueue(channel_id)`` is called once a group's deliveries are committed, for each channel
    they go to (the task passes its sender task's ``delay``). Without it they wait for the
    ``deliver_due`` sweep."""
    now = now or timezone.now()
    due = list(
        AlertGroup.objects.filter(next_flush_at__lte=now)
        .order_by("next_flush_at")
        .values_list("pk", flat=True)[:limit]
    )
    notified = 0
    deliveries: list[int] = []
    for pk in due:
        with transaction.atomic():
            group = (
                AlertGroup.objects.select_for_update(skip_locked=True)
                .select_related("route", "route__team")
                .filter(pk=pk, next_flush_at__lte=now)
                .first()
            )
            if group is None:
                continue  # another worker has it
            created = _flush_group(group, now, enqueue)
            if created:
                notified += 1
                deliveries.extend(created)
    if deliveries:
        logger.info("alert-groups-flushed", groups=len(due), notified=notified)
    return FlushReport(len(due), notified, deliveries)


def _flush_group(
    group: AlertGroup, now: datetime, enqueue: Callable[[int], object] | None
) -> list[int]:
    from .notifications import notification_for_group

    route = group.route
    members = list(group.alerts.select_related("deployment").order_by("starts_at", "id"))
    silences = silences_active(team_ids=[route.team_id], now=now)
    muted = {a.fingerprint for a in members if alert_silenced_by(a, silences)}
    muted |= inhibited_fingerprints(team_id=route.team_id, candidates=members)
    firing = [a for a in members if a.status == AlertStatus.FIRING and a.fingerprint not in muted]
    resolved = [a for a in members if a.status == AlertStatus.RESOLVED]
    last_firing = None if group.last_firing is None else frozenset(group.last_firing)
    flush = grouping.needs_update(
        firing=frozenset(a.fingerprint for a in firing),
        resolved=frozenset(a.fingerprint for a in resolved),
        last_firing=last_firing,
        last_resolved=frozenset(group.last_resolved or ()),
        last_notified_s=group.last_notified_at.timestamp() if group.last_notified_at else None,
        now_s=now.timestamp(),
        timers=route.timers(),
        all_acknowledged=bool(firing) and all(a.acknowledged_at for a in firing),
        send_resolved=route.send_resolved,
    )
    created: list[int] = []
    channels: list[Channel] = []
    if flush.send:
        shown_resolved = [
            a
            for a in resolved
            if route.send_resolved and (last_firing is None or a.fingerprint in last_firing)
        ]
        group.flushes += 1
        # "All resolved" with send_resolved off has nothing to show: state moves on silently.
        channels = list(route.channels.filter(enabled=True)) if firing or shown_resolved else []
        for channel in channels:
            notification = notification_for_group(
                group=group,
                firing=firing,
                resolved=shown_resolved,
                language=channel.language,
            )
            delivery = Delivery.objects.create(
                channel=channel,
                group=group,
                idempotency_key=f"g{group.pk}-n{group.flushes}-c{channel.pk}",
                notification=notification.to_dict(),
                fingerprints=[a.fingerprint for a in (*firing, *shown_resolved)],
                next_attempt_at=now,
            )
            created.append(delivery.pk)
        group.last_firing = sorted(a.fingerprint for a in firing)
        group.last_resolved = sorted(a.fingerprint for a in resolved)
        group.last_notified_at = now
    # Resolved alerts leave the group once looked at (notified, or not wanted).
    if resolved:
        group.alerts.remove(*resolved)
    if len(members) == len(resolved) and (flush.send or group.last_firing is None):
        group.delete()
    else:
        group.next_flush_at = now + timedelta(seconds=route.group_interval_s)
        group.save()
    if created and enqueue is not None:
        for channel in channels:
            transaction.on_commit(partial(enqueue, channel.pk))
    return created


# --------------------------------------------------------------------------- operators


def alert_acknowledge(*, alert: Alert, actor: Any, comment: str = "") -> Alert:
    with audited(
        actor=actor,
        action=AuditAction.ACTION,
        verb="acknowledge",
        instance=alert,
        extra={"comment": comment},
        snapshots=False,
    ):
        alert.acknowledged_by = actor
        alert.acknowledged_at = timezone.now()
        alert.ack_comment = comment[:500]
        alert.save(update_fields=["acknowledged_by", "acknowledged_at", "ack_comment"])
    return alert


def silence_create(
    *,
    team: Team | None,
    matchers: Any,
    starts_at: datetime,
    ends_at: datetime,
    comment: str,
    actor: Any,
) -> Silence:
    """Store a silence of ``team`` (``None``: every team's alerts) after the model's checks
    (ValidationError per field: matchers, comment, ends_at). The caller has checked that
    ``actor`` may (operator of the team; superuser for every team)."""
    silence = Silence(
        team=team,
        matchers=matchers,
        starts_at=starts_at,
        ends_at=ends_at,
        comment=comment,
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    silence.full_clean()
    with transaction.atomic(), audited(actor=actor, action=AuditAction.CREATE) as change:
        silence.save()
        change.instance = silence
    return silence


def silence_expire(*, silence: Silence, actor: Any) -> Silence:
    now = timezone.now()
    if silence.ends_at > now:
        with audited(
            actor=actor, action=AuditAction.ACTION, verb="expire", instance=silence, snapshots=False
        ):
            silence.ends_at = max(now, silence.starts_at)
            silence.save(update_fields=["ends_at"])
    return silence


def alerts_from_source(
    *, source: str = AlertSource.API, team: Team | None, items: Sequence[IncomingAlert]
) -> IngestReport:
    return alerts_ingest(alerts=items, source=source, team=team)


def alerts_prune(*, older_than_days: int | None = None) -> int:
    """Forget resolved alerts and finished deliveries older than the retention."""
    from django.conf import settings

    from .models import DeliveryStatus

    cutoff = timezone.now() - timedelta(days=older_than_days or settings.ALERTS_RETENTION_DAYS)
    alerts, _ = Alert.objects.filter(status=AlertStatus.RESOLVED, ends_at__lt=cutoff).delete()
    deliveries, _ = (
        Delivery.objects.filter(created_at__lt=cutoff)
        .exclude(status__in=[DeliveryStatus.PENDING, DeliveryStatus.SENDING])
        .delete()
    )
    return alerts + deliveries
