"""Password logins (the admin console) with failed attempts counted and throttled."""

from __future__ import annotations

from typing import Any

import structlog
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from apps.core.middleware import client_ip

from .throttling import failure_record, failures_blocked, login_limit

logger = structlog.get_logger("controlplane.auth")


def login_keys(*, request: HttpRequest | None, username: str | None) -> list[str]:
    """What failed logins are counted under: the client address and the username."""
    keys = []
    if request is not None:
        keys.append(f"ip:{client_ip(request) or '-'}")
    if username:
        keys.append(f"user:{username.strip().lower()}")
    return keys


def login_wait(*, request: HttpRequest | None, username: str | None) -> int:
    """Seconds until a login may be tried again from this address or for this user; 0: now."""
    return failures_blocked(rule=login_limit(), keys=login_keys(request=request, username=username))


def login_refusal(request: HttpRequest) -> HttpResponse | None:
    """For a login form's POST while its address or username is locked out: 429 with
    Retry-After, saying why (the backend refuses the attempt anyway); otherwise None."""
    if request.method != "POST":
        return None
    wait = login_wait(request=request, username=request.POST.get("username"))
    if not wait:
        return None
    response = HttpResponse(
        f"Too many failed logins. Try again in {wait} seconds.\n",
        status=429,
        content_type="text/plain; charset=utf-8",
    )
    response["Retry-After"] = str(wait)
    return response


class ThrottledModelBackend(ModelBackend):
    """Django's username/password backend, refusing every attempt (right or wrong) while
    the client address or the username is over ``LOGIN_FAILURE_LIMIT`` failures."""

    def authenticate(  # type: ignore[override]
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> AbstractBaseUser | None:
        keys = login_keys(request=request, username=username)
        if failures_blocked(rule=login_limit(), keys=keys):
            logger.warning("login-throttled", username=username)
            # Stops authenticate() here: no other backend gets to try either.
            raise PermissionDenied("too many failed logins")
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None and username is not None:
            failure_record(rule=login_limit(), keys=keys)
        return user
