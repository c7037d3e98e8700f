from __future__ import annotations

from typing import Any, NoReturn

import structlog
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from apps.core.middleware import client_ip

from .models import ApiToken
from .selectors import team_roles_prime, team_roles_subquery
from .services import TOKEN_PREFIX, api_token_touch, token_hash
from .throttling import FailureLimit, api_token_limit, failure_record, failures_blocked

logger = structlog.get_logger("controlplane.auth")


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <token>`` (``Token <token>`` is accepted too).

    Failed attempts are counted per client address and per token prefix; past
    ``API_TOKEN_FAILURE_LIMIT`` in a window the answer is 429 with Retry-After, and an
    address over the limit is refused before its token is even looked up.
    """

    keywords = ("bearer", "token")

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0].lower() not in self.keywords:
            return None
        rule = api_token_limit()
        address = f"ip:{client_ip(request._request) or '-'}"
        wait = failures_blocked(rule=rule, keys=[address])
        if wait:
            raise self._throttled(wait)
        if len(header) != 2:
            self._fail(
                rule, [address], "Malformed Authorization header: expected 'Bearer <token>'."
            )
        prefix = f"prefix:{header[1][: len(TOKEN_PREFIX) + 8]}"
        # The user's team roles come with the token: nearly every API view needs them.
        token = (
            ApiToken.objects.select_related("user")
            .annotate(team_roles=team_roles_subquery(user_field="user_id"))
            .filter(key_hash=token_hash(header[1]))
            .first()
        )
        if token is None:
            self._fail(rule, [address, prefix], "Invalid API token.")
        elif token.revoked_at is not None:
            self._fail(rule, [address, prefix], "This API token has been revoked.")
        elif token.is_expired:
            self._fail(rule, [address, prefix], "This API token has expired.")
        elif not token.user.is_active:
            self._fail(rule, [address, prefix], "The token's user is inactive.")
        api_token_touch(token=token)
        team_roles_prime(user=token.user, pairs_json=token.team_roles)
        return token.user, token

    @staticmethod
    def _throttled(wait: int) -> exceptions.Throttled:
        return exceptions.Throttled(
            wait=wait, detail="Too many failed API token attempts from this client."
        )

    def _fail(self, rule: FailureLimit, keys: list[str], message: str) -> NoReturn:
        wait = failure_record(rule=rule, keys=keys)
        if wait:
            logger.warning("api-token-throttled", client=keys[0], retry_after_s=wait)
            raise self._throttled(wait)
        raise exceptions.AuthenticationFailed(message)

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) to unauthenticated requests.
        return 'Bearer realm="api"'


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "apps.accounts.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token from POST /api/v1/tokens/, sent as "
            "`Authorization: Bearer <token>`.",
        }
