"""Upkeep of the log store: partitions created ahead, and each team's retention."""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

import structlog
from django.conf import settings

from apps.accounts.models import Team

from .models import TeamLogSettings
from .storage import log_store
from .storage.base import LogStore

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
