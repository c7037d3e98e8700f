"""Recording changes: :func:`audited` wraps a change and records its entry, from the shared
API viewset, the admin mixin and the services that change the world; never from model
signals (STYLE: no side effects in save hooks)."""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import models

from apps.core import context
from apps.core.fields import EncryptedJSONField

from .models import AuditAction, AuditEntry

# Fields whose values never enter the audit log, on any model.
SECRET_FIELDS = {
    "key_hash",
    "token_hash",
    "password",
    "secret",
    "encrypted_secret",
    "secret_ciphertext",
}


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def model_snapshot(instance: models.Model) -> dict[str, Any]:
    """Concrete field values keyed by field name; relations by primary key.

    ``auto_now`` timestamps are left out: they change on every save, so they would make
    every update look like a change.
    """
    snapshot: dict[str, Any] = {}
    for field in instance._meta.concrete_fields:
        if field.name in SECRET_FIELDS or getattr(field, "auto_now", False):
            continue
        if isinstance(field, EncryptedJSONField):
            snapshot[field.name] = "(encrypted)"
            continue
        value = getattr(instance, field.attname)
        snapshot[field.name] = _jsonable(value)
    for field in instance._meta.many_to_many:
        if instance.pk is not None:
            snapshot[field.name] = sorted(
                getattr(instance, field.name).values_list("pk", flat=True)
            )
    return snapshot


def snapshot_diff(
    before: dict[str, Any] | None, after: dict[str, Any] | None
) -> dict[str, list[Any]]:
    before = before or {}
    after = after or {}
    diff: dict[str, list[Any]] = {}
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old != new:
            diff[key] = [old, new]
    return diff


def _team_id_of(instance: models.Model) -> int | None:
    team_id = getattr(instance, "audit_team_id", None)
    if team_id is None and hasattr(instance, "team_id"):
        team_id = instance.team_id
    if team_id is None and instance._meta.label_lower == "accounts.team":
        team_id = instance.pk
    return team_id


def audit_record(
    *,
    actor: AbstractBaseUser | AnonymousUser | None,
    action: str,
    instance: models.Model,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    verb: str = "",
    extra: dict[str, Any] | None = None,
) -> AuditEntry | None:
    """Store one entry. An update that changed nothing is not recorded."""
    changes = snapshot_diff(before, after)
    if extra:
        changes.update({k: _jsonable(v) for k, v in extra.items()})
    if action == AuditAction.UPDATE and not changes:
        return None
    ctx = context.current()
    user = actor if actor is not None and actor.is_authenticated else None
    object_id = instance.pk if instance.pk is not None else (before or {}).get("id")
    return AuditEntry.objects.create(
        actor=user,  # type: ignore[misc]
        actor_repr=user.get_username() if user is not None else "system",
        team_id=_team_id_of(instance),
        action=action,
        verb=verb,
        object_type=instance._meta.label_lower,
        object_id=str(object_id),
        object_repr=str(instance)[:200],
        changes=changes,
        source=ctx.source,
        source_ip=ctx.source_ip,
        request_id=ctx.request_id,
    )


@dataclass
class AuditedChange:
    """The change an :func:`audited` block makes: set ``instance`` in the block when it is
    only known there (the object a create saved)."""

    instance: models.Model | None
    before: dict[str, Any] | None


@contextmanager
def audited(
    *,
    actor: AbstractBaseUser | AnonymousUser | None,
    action: str,
    instance: models.Model | None = None,
    verb: str = "",
    extra: dict[str, Any] | None = None,
    snapshots: bool = True,
) -> Iterator[AuditedChange]:
    """Records one audit entry for the change the ``with`` block makes to ``instance``.

    The entry holds the field diff of ``instance`` before and after the block (creates
    have no "before", deletes no "after") plus ``extra``; ``snapshots=False`` records only
    ``extra``. Nothing is recorded when the block raises. A delete is recorded before the
    block runs, while the row the entry names still exists: run it in a transaction so
    that a failed delete leaves no entry.
    """
    before = (
        model_snapshot(instance)
        if snapshots and instance is not None and action != AuditAction.CREATE
        else None
    )
    change = AuditedChange(instance=instance, before=before)
    if action == AuditAction.DELETE:
        assert instance is not None, "a delete names the object it deletes"
        audit_record(
            actor=actor, action=action, instance=instance, before=before, verb=verb, extra=extra
        )
        yield change
        return
    yield change
    assert change.instance is not None, "set the created object on the audited change"
    audit_record(
        actor=actor,
        action=action,
        instance=change.instance,
        before=change.before,
        after=model_snapshot(change.instance) if snapshots else None,
        verb=verb,
        extra=extra,
    )
