"""Reads of the alerts app: routes an alert goes to, what mutes it, what is due to be sent."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from django.db.models import Q

from .labels import Matcher, matchers_load, matchers_match
from .models import (
    Alert,
    AlertStatus,
    Delivery,
    DeliveryStatus,
    InhibitRule,
    Receiver,
    Route,
    Silence,
)

# --------------------------------------------------------------------------- receivers


def receiver_token_hash(token: str) -> str:
    """What a receiver stores of its token: a fast hash is enough for 256 random bits."""
    return hashlib.sha256(token.encode()).hexdigest()


def receiver_authenticate(*, token: str, name: str | None = None) -> Receiver | None:
    """The active receiver for a bearer token, or for basic auth (``name`` + token)."""
    if not token:
        return None
    receiver = (
        Receiver.objects.select_related("team")
        .filter(token_hash=receiver_token_hash(token), revoked_at__isnull=True)
        .first()
    )
    if receiver is None or (name is not None and receiver.name != name):
        return None
    return receiver


# --------------------------------------------------------------------------- routes


def routes_for_teams(team_ids: Iterable[int]) -> dict[int, list[Route]]:
    routes: dict[int, list[Route]] = defaultdict(list)
    for route in Route.objects.filter(team_id__in=set(team_ids), enabled=True).order_by(
        "position", "id"
    ):
        routes[route.team_id].append(route)
    return routes


def route_matches(routes: Sequence[Route], labels: Mapping[str, str]) -> list[Route]:
    """Routes an alert goes to: the first match, and the next ones while ``continue``."""
    out = []
    for route in routes:
        if matchers_match(matchers_load(route.matchers), labels):
            out.append(route)
            if not route.continue_matching:
                break
    return out


# --------------------------------------------------------------------------- muting


def silences_active(*, team_ids: Iterable[int] | None, now: datetime) -> list[Silence]:
    """Silences in force now for these teams (and every team's); ``None``: all of them."""
    silences = Silence.objects.filter(starts_at__lte=now, ends_at__gt=now)
    if team_ids is not None:
        silences = silences.filter(Q(team_id__in=set(team_ids)) | Q(team__isnull=True))
    return list(silences)


SilenceMatchers = Sequence[tuple[Silence, Sequence[Matcher]]]


def silences_with_matchers(silences: Sequence[Silence]) -> list[tuple[Silence, list[Matcher]]]:
    """Each silence with its matchers loaded, to test many alerts against them."""
    return [(silence, matchers_load(silence.matchers)) for silence in silences]


def alert_silenced_by(
    alert: Alert, silences: Sequence[Silence], *, loaded: SilenceMatchers | None = None
) -> Silence | None:
    """The first of ``silences`` muting ``alert``; ``loaded``: the same silences with their
    matchers already loaded (``silences_with_matchers``), to list many alerts."""
    for silence, matchers in loaded if loaded is not None else silences_with_matchers(silences):
        if silence.team_id not in (None, alert.team_id):
            continue
        if matchers_match(matchers, alert.labels):
            return silence
    return None


def inhibited_fingerprints(*, team_id: int, candidates: Sequence[Alert]) -> set[str]:
    """Fingerprints among ``candidates`` muted by a firing source alert of an inhibit rule."""
    rules = list(
        InhibitRule.objects.filter(Q(team_id=team_id) | Q(team__isnull=True), enabled=True)
    )
    if not rules:
        return set()
    sources = list(
        Alert.objects.filter(team_id=team_id, status=AlertStatus.FIRING).only(
            "fingerprint", "labels"
        )
    )
    muted: set[str] = set()
    for rule in rules:
        source_m, target_m = (
            matchers_load(rule.source_matchers),
            matchers_load(rule.target_matchers),
        )
        active = {
            tuple(s.labels.get(name, "") for name in rule.equal): s.fingerprint
            for s in sources
            if matchers_match(source_m, s.labels)
        }
        if not active:
            continue
        for alert in candidates:
            if not matchers_match(target_m, alert.labels):
                continue
            source_fp = active.get(tuple(alert.labels.get(name, "") for name in rule.equal))
            # An alert matching both sides does not inhibit itself (as in Alertmanager).
            if source_fp is not None and source_fp != alert.fingerprint:
                muted.add(alert.fingerprint)
    return muted


# --------------------------------------------------------------------------- delivery


def channel_ids_with_due_deliveries(*, now: datetime) -> set[int]:
    """Channels with a pending delivery whose time has come."""
    return set(
        Delivery.objects.filter(
            status=DeliveryStatus.PENDING, next_attempt_at__lte=now
        ).values_list("channel_id", flat=True)
    )
