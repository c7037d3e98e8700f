"""Secrets a team's programs authenticate with (log shippers' ingest tokens, gateways'
toggle-reading tokens): issued once, stored hashed, revoked, deleted, every step audited.

Each kind of token is a model with ``team``, ``name``, ``token_hash``, ``token_prefix``,
``created_by`` and ``revoked_at``; its app's services call these with the model and the
public prefix that tells its secrets apart."""

from __future__ import annotations

import secrets
from typing import Any, TypeVar

from django.db import models, transaction
from django.utils import timezone

from apps.audit.models import AuditAction
from apps.audit.services import audited

from .models import Team
from .services import token_hash

TokenModel = TypeVar("TokenModel", bound=models.Model)


def team_token_create(
    *, model: type[TokenModel], prefix: str, team: Team, name: str, actor: Any
) -> tuple[TokenModel, str]:
    """A new token of ``model`` for the team; the secret is returned once and stored hashed."""
    secret = prefix + secrets.token_urlsafe(32)
    with audited(
        actor=actor, action=AuditAction.CREATE, extra={"name": name}, snapshots=False
    ) as change:
        token = model._default_manager.create(
            team=team,
            name=name,
            token_hash=token_hash(secret),
            token_prefix=secret[: len(prefix) + 8],
            created_by=actor if getattr(actor, "pk", None) else None,
        )
        change.instance = token
    return token, secret


def team_token_revoke(*, token: TokenModel, actor: Any) -> TokenModel:
    """Revoke the token: the next request with it answers 401. The row stays, listed as
    revoked, so that what used it can still be told."""
    if getattr(token, "revoked_at", None) is None:
        with audited(actor=actor, action=AuditAction.UPDATE, instance=token, verb="revoke"):
            token.revoked_at = timezone.now()  # type: ignore[attr-defined]
            token.save(update_fields=["revoked_at"])
    return token


def team_token_delete(*, token: models.Model, actor: Any) -> None:
    """Revoke the token (so it stops working at once) and remove it; the audit log keeps
    the record."""
    with transaction.atomic():
        team_token_revoke(token=token, actor=actor)
        with audited(actor=actor, action=AuditAction.DELETE, instance=token):
            token.delete()
