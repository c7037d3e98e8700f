"""Assertions shared by tests of many apps.

``nothing_stored`` is for refusals: a request answered 4xx must leave no row behind, in its
own table or any other (an audit entry, a half-created child), so it compares the row count
of every model of the project before and after. ``stored_text`` reads a column as the
database holds it (an encrypted field's ciphertext), to check that a refusal left it as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.apps import apps
from django.db import connection, models


def _row_counts() -> dict[str, int]:
    return {
        model._meta.label: model._default_manager.count()
        for model in apps.get_models()
        if model.__module__.startswith("apps.")
    }


@contextmanager
def nothing_stored() -> Iterator[None]:
    """Fails if the block added or removed a row in any table of the project's models."""
    before = _row_counts()
    yield
    after = _row_counts()
    changed = {label: (before[label], n) for label, n in after.items() if n != before[label]}
    assert not changed, f"rows changed (before, after): {changed}"


def stored_text(instance: models.Model, column: str) -> str:
    """``column`` of ``instance``'s row as stored, bypassing the field's decoding."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {column} FROM {instance._meta.db_table} WHERE id = %s",  # noqa: S608
            [instance.pk],
        )
        return str(cursor.fetchone()[0])
