"""Log storage: one interface (:mod:`.base`), a backend per database, chosen by the
``LOGS_BACKEND`` setting and built once per process by :func:`log_store`."""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from .base import LogStore

BACKENDS = {
    "sql": "apps.logs.storage.sql.SqlLogStore",
    "clickhouse": "apps.logs.storage.clickhouse.ClickHouseLogStore",
}


@cache
def log_store() -> LogStore:
    """The configured backend (``LOGS_BACKEND``). Tests that change the setting call
    ``log_store.cache_clear()``."""
    backend: LogStore = import_string(BACKENDS[settings.LOGS_BACKEND]).from_settings()
    return backend
