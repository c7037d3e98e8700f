"""Bearer-token authentication for the API: one class, parametrised by the kind of token
(API tokens here, the alert receivers' tokens in :mod:`apps.alerts.api`), so that every
kind counts failures and answers 401/429 the same way (see :mod:`.throttling`)."""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import structlog
from django.http import HttpRequest
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from apps.core.middleware import client_ip

from .models import ApiToken
from .selectors import team_roles_prime, team_roles_subquery
from .services import TOKEN_PREFIX, api_token_touch, token_hash
from .throttling import FailureLimit, api_token_limit, failure_record, failures_blocked

logger = structlog.get_logger("controlplane.auth")


class TokenRefused(exceptions.AuthenticationFailed):
    """A refused credential (401). ``keys`` are counted as failures too, besides the
    client address (the token's prefix, for instance)."""

    def __init__(self, detail: str, *, keys: Sequence[str] = ()) -> None:
        super().__init__(detail)
        self.keys = list(keys)


@dataclass(frozen=True)
class TokenKind:
    """What a kind of bearer token changes in :class:`BearerTokenAuthentication`."""

    name: str  # in the 429 detail and the log: "API token"
    realm: str  # of the WWW-Authenticate header that makes DRF answer 401, not 403
    limit: Callable[[], FailureLimit]
    # Authorization schemes read (lower case). With another scheme or none, the request
    # is left to other authentications when ``missing`` is empty, else refused with it.
    schemes: tuple[str, ...]
    missing: str
    # (scheme, credentials) -> (user, auth); raises TokenRefused.
    resolve: Callable[[str, str], tuple[Any, Any]]


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: <scheme> <credentials>`` checked by the class's token ``kind``.

    Failed attempts are counted per client address (and the keys a refusal names); past
    the kind's limit in a window the answer is 429 with Retry-After, and an address over
    the limit is refused before its token is even looked up.
    """

    kind: ClassVar[TokenKind]

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        kind = self.kind
        parts = authentication.get_authorization_header(request).decode("latin-1").split(None, 1)
        scheme = parts[0].lower() if parts else ""
        if scheme not in kind.schemes and not kind.missing:
            return None
        rule = kind.limit()
        address = f"ip:{client_ip(request._request) or '-'}"
        wait = failures_blocked(rule=rule, keys=[address])
        if wait:
            raise self._throttled(wait)
        try:
            if scheme not in kind.schemes:
                raise TokenRefused(kind.missing)
            return kind.resolve(scheme, parts[1] if len(parts) > 1 else "")
        except exceptions.AuthenticationFailed as exc:
            wait = failure_record(rule=rule, keys=[address, *getattr(exc, "keys", ())])
            if wait:
                # "api-token-throttled", "receiver-token-throttled"
                logger.warning(f"{rule.scope}-throttled", client=address, retry_after_s=wait)
                raise self._throttled(wait) from None
            raise

    def _throttled(self, wait: int) -> exceptions.Throttled:
        return exceptions.Throttled(
            wait=wait, detail=f"Too many failed {self.kind.name} attempts from this client."
        )

    def authenticate_header(self, request: Request) -> str:
        return f'Bearer realm="{self.kind.realm}"'


class CredentialsRefused(Exception):
    """A plain Django view's refusal of its caller's credentials: 401 or 429, with the
    headers that go with it (WWW-Authenticate, Retry-After)."""

    def __init__(self, status: int, detail: str, headers: dict[str, str]) -> None:
        self.status = status
        self.detail = detail
        self.headers = headers
        super().__init__(detail)


def plain_view_authenticate(request: HttpRequest, authentication: BearerTokenAuthentication) -> Any:
    """The token (``auth``) that ``authentication`` finds on the request of a view that does
    not go through DRF (push and evaluation endpoints), with the same failure counting;
    raises :class:`CredentialsRefused`."""
    drf_request = Request(request)
    challenge = {"WWW-Authenticate": authentication.authenticate_header(drf_request)}
    try:
        result = authentication.authenticate(drf_request)
    except exceptions.Throttled as exc:
        wait = math.ceil(getattr(exc, "wait", None) or 1)
        raise CredentialsRefused(429, str(exc.detail), {"Retry-After": str(wait)}) from None
    except exceptions.AuthenticationFailed as exc:
        raise CredentialsRefused(401, str(exc.detail), challenge) from None
    if result is None:
        detail = authentication.kind.missing or "Authentication credentials were not provided."
        raise CredentialsRefused(401, detail, challenge)
    return result[1]


def basic_credentials(credentials: str) -> tuple[str, str]:
    """(user, password) of the credentials of ``Authorization: Basic <credentials>``."""
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise TokenRefused("Malformed basic credentials.") from None
    user, _, password = decoded.partition(":")
    return user, password


def _api_token_resolve(scheme: str, credentials: str) -> tuple[Any, ApiToken]:
    words = credentials.split()
    if len(words) != 1:
        raise TokenRefused("Malformed Authorization header: expected 'Bearer <token>'.")
    keys = [f"prefix:{words[0][: len(TOKEN_PREFIX) + 8]}"]
    # The user's team roles come with the token: nearly every API view needs them.
    token = (
        ApiToken.objects.select_related("user")
        .annotate(team_roles=team_roles_subquery(user_field="user_id"))
        .filter(key_hash=token_hash(words[0]))
        .first()
    )
    if token is None:
        raise TokenRefused("Invalid API token.", keys=keys)
    if token.revoked_at is not None:
        raise TokenRefused("This API token has been revoked.", keys=keys)
    if token.is_expired:
        raise TokenRefused("This API token has expired.", keys=keys)
    if not token.user.is_active:
        raise TokenRefused("The token's user is inactive.", keys=keys)
    api_token_touch(token=token)
    team_roles_prime(user=token.user, pairs_json=token.team_roles)
    return token.user, token


API_TOKEN = TokenKind(
    name="API token",
    realm="api",
    limit=api_token_limit,
    schemes=("bearer", "token"),  # ``Token <token>`` is accepted too
    missing="",
    resolve=_api_token_resolve,
)


class ApiTokenAuthentication(BearerTokenAuthentication):
    """``Authorization: Bearer <token>`` with an API token (``Token <token>`` too)."""

    kind = API_TOKEN


def _basic_api_token_resolve(scheme: str, credentials: str) -> tuple[Any, ApiToken]:
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise TokenRefused("Malformed Basic credentials: expected base64 of user:token.") from None
    _, sep, password = decoded.partition(":")
    if not sep or not password:
        raise TokenRefused("Basic credentials need the API token as the password.")
    return _api_token_resolve("bearer", password)


BASIC_API_TOKEN = TokenKind(
    name="API token",
    realm="api",
    limit=api_token_limit,
    schemes=("basic",),
    missing="",
    resolve=_basic_api_token_resolve,
)


class BasicApiTokenAuthentication(BearerTokenAuthentication):
    """HTTP Basic with an API token as the password (any user name): for clients that
    only speak Basic, such as Grafana's Loki data source."""

    kind = BASIC_API_TOKEN


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """The OpenAPI security scheme of a :class:`BearerTokenAuthentication` subclass: a
    subclass names its ``target_class`` and says where the token comes from."""

    description: ClassVar[str]

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": self.description}


class ApiTokenScheme(BearerTokenScheme):
    target_class = "apps.accounts.authentication.ApiTokenAuthentication"
    name = "apiToken"
    description = "An API token from POST /api/v1/tokens/, sent as `Authorization: Bearer <token>`."
