"""Writes of the logs app: ingest tokens, pushes into the store, and the store's upkeep
(partitions created ahead, each team's retention)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import structlog
from django.conf import settings
from prometheus_client import Counter

from apps.accounts.models import Team
from apps.accounts.services import last_used_touch
from apps.accounts.team_tokens import team_token_create, team_token_delete, team_token_revoke
from apps.core.ratelimit import Bucket, buckets_take

from .models import IngestToken, TeamLogSettings
from .selectors import IngestLimits, deployment_resolver
from .storage import log_store
from .storage.base import LogStore, WriteResult
from .wire import PushedStream, PushValidation, validate_push

logger = structlog.get_logger("controlplane.logs")

DAY_NS = 86_400 * 10**9


@runtime_checkable
class SharedPartitions(Protocol):
    """A store whose partitions hold every team's rows, and can drop those expired for all."""

    def drop_partitions_before(self, *, before_ns: int) -> int: ...


def log_retention_cutoffs(*, now_ns: int) -> dict[int, int]:
    """Team id → the time before which its entries are removed: now minus the team's
    ``retention_days``, or ``LOGS_RETENTION_DAYS`` when it has none."""
    chosen: dict[int, int] = {
        team_id: days
        for team_id, days in TeamLogSettings.objects.values_list("team_id", "retention_days")
        if days is not None
    }
    return {
        team_id: now_ns - chosen.get(team_id, settings.LOGS_RETENTION_DAYS) * DAY_NS
        for team_id in Team.objects.values_list("id", flat=True)
    }


def log_retention_apply(*, now_ns: int, store: LogStore) -> int:
    """Remove every team's expired entries; returns how many. Days that every team's
    retention has expired go first, as whole partitions where the store has them; the rest
    in bounded batches, team by team."""
    cutoffs = log_retention_cutoffs(now_ns=now_ns)
    if not cutoffs:
        return 0
    removed = 0
    if isinstance(store, SharedPartitions):
        removed += store.drop_partitions_before(before_ns=min(cutoffs.values()))
    for team_id, cutoff in sorted(cutoffs.items()):
        removed += store.delete_before(
            team_id=team_id, before_ns=cutoff, batch=settings.LOGS_RETENTION_BATCH
        )
    return removed


def log_storage_maintain(*, now_ns: int | None = None, store: LogStore | None = None) -> int:
    """Create the coming days' partitions, then apply retention (the periodic task's work).
    Returns the entries removed."""
    store = store or log_store()
    now_ns = time.time_ns() if now_ns is None else now_ns
    store.prepare(now_ns=now_ns, days_ahead=settings.LOGS_PARTITION_DAYS_AHEAD)
    removed = log_retention_apply(now_ns=now_ns, store=store)
    logger.info("logs-storage-maintained", backend=store.vendor, removed=removed)
    return removed


# --------------------------------------------------------------------------- ingest tokens

INGEST_TOKEN_PREFIX = "lcpl_"  # noqa: S105 - a public marker, not a secret


def ingest_token_create(*, team: Team, name: str, actor: Any) -> tuple[IngestToken, str]:
    """A new ingest token for the team; the secret is returned once and stored hashed."""
    return team_token_create(
        model=IngestToken, prefix=INGEST_TOKEN_PREFIX, team=team, name=name, actor=actor
    )


def ingest_token_revoke(*, token: IngestToken, actor: Any) -> IngestToken:
    """Revoke the token: the next push with it answers 401. The row stays, listed as
    revoked, so that what pushed with it can still be told."""
    return team_token_revoke(token=token, actor=actor)


def ingest_token_delete(*, token: IngestToken, actor: Any) -> None:
    """Revoke the token (so it stops working at once) and remove it; the audit log keeps
    the record."""
    team_token_delete(token=token, actor=actor)


def ingest_token_touch(*, token: IngestToken) -> None:
    last_used_touch(token)


# --------------------------------------------------------------------------- pushes

INGESTED_LINES = Counter(
    "controlplane_logs_ingested_lines_total",
    "Log lines pushed, by team and outcome: accepted (stored), duplicate (already stored or "
    "sent twice in one push), refused (broke a limit) or rate_limited.",
    ["team", "outcome"],
)
INGESTED_BYTES = Counter(
    "controlplane_logs_ingested_bytes_total",
    "Bytes of the log lines pushed (UTF-8), by team and outcome (as the lines' counter).",
    ["team", "outcome"],
)


class PushRateLimited(Exception):
    """The team is over its ingestion rate: nothing was stored; retry after ``wait_s``."""

    def __init__(self, wait_s: int) -> None:
        self.wait_s = wait_s
        super().__init__(f"ingestion rate limit exceeded: retry in {wait_s} s")


class PushNotStored(Exception):
    """The store failed: nothing may be assumed stored, and the shipper should retry (the
    store keeps one entry per stream, timestamp and line, so a retry duplicates nothing)."""


@dataclass(frozen=True)
class PushOutcome:
    validation: PushValidation
    written: WriteResult


def _count(team: Team, outcome: str, lines: int, size: int) -> None:
    if lines:
        INGESTED_LINES.labels(team=team.slug, outcome=outcome).inc(lines)
    if size:
        INGESTED_BYTES.labels(team=team.slug, outcome=outcome).inc(size)


def logs_push(
    *,
    team: Team,
    streams: Sequence[PushedStream],
    limits: IngestLimits,
    now_ns: int | None = None,
    store: LogStore | None = None,
) -> PushOutcome:
    """Validate a decoded push with Loki's limits, take its lines and bytes from the team's
    rate buckets, and store what was accepted (linked to the team's deployments). Returns
    once the accepted entries are durably stored, refusals listed in the outcome. Raises
    PushRateLimited (nothing stored) or PushNotStored."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    validation = validate_push(streams, limits=limits.wire, now_ns=now_ns)
    refused_bytes = sum(r.bytes for r in validation.refused)
    _count(team, "refused", validation.refused_lines, refused_bytes)
    lines = validation.accepted_lines
    size = validation.accepted_bytes
    wait = buckets_take(
        [
            Bucket(f"logs-lines:{team.pk}", limits.lines_per_s, limits.burst_s, lines),
            Bucket(f"logs-bytes:{team.pk}", limits.bytes_per_s, limits.burst_s, size),
        ],
        now=now_ns / 1e9,
    )
    if wait:
        _count(team, "rate_limited", lines, size)
        logger.info("logs-push-rate-limited", team=team.slug, lines=lines, retry_after_s=wait)
        raise PushRateLimited(wait)
    store = store or log_store()
    try:
        written = (
            store.write(
                team_id=team.pk,
                streams=validation.accepted,
                resolve=deployment_resolver(team_id=team.pk),
            )
            if validation.accepted
            else WriteResult(stored=0, duplicates=0, streams=0)
        )
    except Exception as error:
        logger.exception("logs-push-store-failed", team=team.slug, lines=lines)
        raise PushNotStored(str(error)) from error
    _count(team, "accepted", written.stored, written.bytes)
    _count(team, "duplicate", written.duplicates + validation.duplicates, size - written.bytes)
    return PushOutcome(validation=validation, written=written)
