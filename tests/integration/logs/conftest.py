"""The log stores under test.

``log_store`` is parametrized by backend id: each id names the fixture that builds that
backend's store for one test (and empties it afterwards), so the contract tests run once per
backend and adding a backend is one line in ``STORE_FIXTURES`` plus its fixture.

Modules that set ``POSTGRESQL_ONLY = True`` test the PostgreSQL layout: on another database
they are skipped with the reason, except under ``CI=true``, where a skip fails the run and
they are deselected instead, since CI also runs the suite on PostgreSQL, where they run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection

from apps.logs.storage.base import LogStore
from apps.logs.storage.clickhouse import ClickHouseLogStore
from apps.logs.storage.sql import ENTRY_TABLE, MINUTE_TABLE, SqlLogStore

CI = os.environ.get("CI", "").lower() == "true"

STORE_FIXTURES = {
    "sql": "sql_log_store",
    "clickhouse": "clickhouse_log_store",
}

POSTGRESQL_ONLY_REASON = (
    "tests the PostgreSQL layout (partitions, COPY, pg_trgm); the suite runs on "
    f"{connection.vendor}: set DATABASE_URL=postgres://... to run them"
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if connection.vendor == "postgresql":
        return
    here = [i for i in items if getattr(getattr(i, "module", None), "POSTGRESQL_ONLY", False)]
    if not here:
        return
    if CI:
        config.hook.pytest_deselected(items=here)
        items[:] = [i for i in items if i not in here]
        return
    for item in here:
        item.add_marker(pytest.mark.skip(reason=POSTGRESQL_ONLY_REASON))


@pytest.fixture(params=sorted(STORE_FIXTURES))
def log_store(request: pytest.FixtureRequest) -> LogStore:
    store: LogStore = request.getfixturevalue(STORE_FIXTURES[request.param])
    return store


@pytest.fixture
def sql_log_store(db: None) -> Iterator[SqlLogStore]:
    store = SqlLogStore.from_settings()
    yield store
    # A transactional test commits, and Django's flush knows no entry table: empty it (and
    # drop the day partitions) here. In a rolled-back test this changes nothing.
    with connection.cursor() as cursor:
        for partition in store.partitions():
            cursor.execute(f"DROP TABLE {partition.name}")
        cursor.execute(f"DELETE FROM {ENTRY_TABLE}")  # noqa: S608
        if connection.vendor == "postgresql":
            cursor.execute(f"DELETE FROM {MINUTE_TABLE}")  # noqa: S608


@pytest.fixture
def clickhouse_log_store(clickhouse_url: str) -> Iterator[ClickHouseLogStore]:
    """A store on an empty database of a private clickhouse-server (``clickhouse_url``)."""
    store = ClickHouseLogStore(clickhouse_url)
    store.prepare(now_ns=time.time_ns())
    yield store
    store.close()


@pytest.fixture
def served_log_store(
    log_store: LogStore, settings: Any, request: pytest.FixtureRequest
) -> Iterator[LogStore]:
    """``log_store``, also made the one the HTTP APIs read (``apps.logs.storage.log_store``)
    through the settings that choose it."""
    from apps.logs.storage import log_store as configured

    if log_store.vendor == "clickhouse":
        settings.LOGS_BACKEND = "clickhouse"
        settings.LOGS_CLICKHOUSE_URL = request.getfixturevalue("clickhouse_url")
    else:
        settings.LOGS_BACKEND = "sql"
    configured.cache_clear()
    yield log_store
    configured.cache_clear()


@pytest.fixture
def readers(db: None) -> dict[str, Any]:
    """Two teams with a viewer each, and each viewer's API client (an API token as
    ``Authorization: Bearer``): ``team``/``user``/``client`` and ``other``/``stranger``."""
    from rest_framework.test import APIClient

    from apps.accounts.services import api_token_create
    from tests.factories.accounts import MembershipFactory, TeamFactory, UserFactory

    def client(user: Any) -> APIClient:
        api = APIClient()
        secret = api_token_create(user=user, name="reader").secret
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        return api

    team, other = TeamFactory(), TeamFactory()
    user, stranger = UserFactory(), UserFactory()
    MembershipFactory(user=user, team=team)
    MembershipFactory(user=stranger, team=other)
    return {
        "team": team,
        "other": other,
        "user": user,
        "client": client(user),
        "stranger": client(stranger),
    }
