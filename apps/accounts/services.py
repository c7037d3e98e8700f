from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from .models import ApiToken

TOKEN_PREFIX = "lcp_"  # noqa: S105 - a public marker, not a secret


def token_hash(raw: str) -> str:
    # The secret has 256 bits of entropy, so a fast hash is enough: there is nothing to
    # brute-force, and lookups stay one indexed equality per request.
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str


def api_token_create(
    *, user: AbstractBaseUser, name: str, expires_at: datetime | None = None
) -> IssuedToken:
    if expires_at is None and settings.API_TOKEN_DEFAULT_TTL_DAYS:
        expires_at = timezone.now() + timedelta(days=settings.API_TOKEN_DEFAULT_TTL_DAYS)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,  # type: ignore[misc]
        name=name,
        prefix=secret[: len(TOKEN_PREFIX) + 8],
        key_hash=token_hash(secret),
        expires_at=expires_at,
    )
    return IssuedToken(token=token, secret=secret)


def api_token_revoke(*, token: ApiToken) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def last_used_touch(credential: Any) -> None:
    """Record a credential's use (its ``last_used_at``) at most once a minute, so that
    authenticated calls do not all turn into writes."""
    now = timezone.now()
    if credential.last_used_at is None or now - credential.last_used_at > timedelta(minutes=1):
        type(credential)._default_manager.filter(pk=credential.pk).update(last_used_at=now)
        credential.last_used_at = now


def api_token_touch(*, token: ApiToken) -> None:
    last_used_touch(token)
