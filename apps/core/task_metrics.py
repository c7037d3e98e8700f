"""Counts Celery task outcomes into the database (see TaskCounter) and logs failures."""

from __future__ import annotations

from typing import Any

import structlog
from celery import signals

logger = structlog.get_logger("controlplane.tasks")

_connected = False


def _record(task_name: str | None, outcome: str) -> None:
    if not task_name:
        return
    from .services import task_counter_increment

    try:
        task_counter_increment(task_name=task_name, outcome=outcome)
    except Exception:  # noqa: BLE001 - bookkeeping must never fail the task itself
        logger.warning("task-counter-write-failed", task=task_name, outcome=outcome)


def _on_success(sender: Any = None, **_: Any) -> None:
    _record(getattr(sender, "name", None), "succeeded")


def _on_failure(sender: Any = None, exception: BaseException | None = None, **_: Any) -> None:
    logger.error("task-failed", task=getattr(sender, "name", None), error=repr(exception))
    _record(getattr(sender, "name", None), "failed")


def _on_retry(sender: Any = None, reason: Any = None, **_: Any) -> None:
    logger.warning("task-retried", task=getattr(sender, "name", None), reason=str(reason))
    _record(getattr(sender, "name", None), "retried")


def connect() -> None:
    global _connected
    if _connected:
        return
    signals.task_success.connect(_on_success, weak=False)
    signals.task_failure.connect(_on_failure, weak=False)
    signals.task_retry.connect(_on_retry, weak=False)
    _connected = True
