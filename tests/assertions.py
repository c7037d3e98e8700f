"""Assertions shared by tests of many apps.

``nothing_stored`` is for refusals: a request answered 4xx must leave no row behind, in its
own table or any other (an audit entry, a half-created child), so it compares the row count
of every model of the project before and after.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.apps import apps


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
