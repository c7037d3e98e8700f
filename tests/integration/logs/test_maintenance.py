"""The periodic upkeep of the log store: partitions ahead and per-team retention, through
whichever backend is configured."""

from __future__ import annotations

import pytest

from apps.core.locks import cache_lock
from apps.logs import tasks
from apps.logs.models import TeamLogSettings
from apps.logs.services import log_retention_cutoffs, log_storage_maintain
from apps.logs.storage import log_store as configured_store
from apps.logs.storage.base import LogSelect
from tests.factories.accounts import TeamFactory

from .pushes import DAY, T0, no_deployment, stream

pytestmark = pytest.mark.integration


def kept(store, team_id):
    page = store.select(LogSelect(team_id=team_id, start_ns=0, end_ns=T0 + DAY), limit=100)
    return sorted(e.line for e in page.entries)


def write_ages(store, team_id, *days_old):
    store.write(
        team_id=team_id,
        streams=[stream({"app": "api"}, *((T0 - d * DAY, f"{d} days old") for d in days_old))],
        resolve=no_deployment,
    )


def test_retention_cutoffs__team_setting_else_global(db, settings):
    settings.LOGS_RETENTION_DAYS = 7
    own, default = TeamFactory(), TeamFactory()
    TeamLogSettings.objects.create(team=own, retention_days=2)
    TeamLogSettings.objects.create(team=TeamFactory(), retention_days=None)

    cutoffs = log_retention_cutoffs(now_ns=T0)

    assert cutoffs[own.pk] == T0 - 2 * DAY
    assert cutoffs[default.pk] == T0 - 7 * DAY
    assert len(cutoffs) == 3


def test_maintain__each_team_keeps_its_retention(db, log_store, settings):
    settings.LOGS_RETENTION_DAYS = 7
    short, default, long = TeamFactory(), TeamFactory(), TeamFactory()
    TeamLogSettings.objects.create(team=short, retention_days=2)
    TeamLogSettings.objects.create(team=long, retention_days=30)
    for team in (short, default, long):
        write_ages(log_store, team.pk, 1, 3, 10, 40)

    removed = log_storage_maintain(now_ns=T0, store=log_store)

    assert removed == 3 + 2 + 1
    assert kept(log_store, short.pk) == ["1 days old"]
    assert kept(log_store, default.pk) == ["1 days old", "3 days old"]
    assert kept(log_store, long.pk) == ["1 days old", "10 days old", "3 days old"]
    assert log_storage_maintain(now_ns=T0, store=log_store) == 0


def test_maintain_task__runs_the_configured_store__and_not_twice_at_once(sql_log_store, settings):
    settings.LOGS_RETENTION_DAYS = 1
    configured_store.cache_clear()
    team = TeamFactory()
    write_ages(sql_log_store, team.pk, 3000)  # far older than a day before now

    with cache_lock("logs:maintain-storage", ttl_s=60):
        assert tasks.maintain_storage.apply().get() is None
    assert kept(sql_log_store, team.pk) == ["3000 days old"]
    assert tasks.maintain_storage.apply().get() == 1
    assert kept(sql_log_store, team.pk) == []
