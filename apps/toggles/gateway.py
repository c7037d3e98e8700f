"""What gateways call to read toggles, with a gateway token (``Authorization: Bearer
lcpg_...``) whose team is the only team they read: nothing in a request chooses another.

- ``POST /ofrep/v1/evaluate/flags/{key}`` and ``POST /ofrep/v1/evaluate/flags``: the
  OpenFeature Remote Evaluation Protocol, so that any OpenFeature SDK's OFREP provider reads
  toggles. The body is ``{"context": {"targetingKey": ..., <attributes>}}``; the context
  attribute ``deployment`` (a deployment's name) evaluates that deployment's own toggles
  over the team-wide ones of the same key (without it: the team-wide toggles only). The
  bulk answer carries an ``ETag`` (team, version and the request body's hash) and answers
  ``If-None-Match`` with 304 before evaluating anything. Errors are OFREP's:
  ``{"errorCode", "errorDetails"}`` (with ``key`` for a flag's): 400 ``PARSE_ERROR``,
  ``INVALID_CONTEXT``, ``TARGETING_KEY_MISSING``, 404 ``FLAG_NOT_FOUND``, 401/429
  ``GENERAL``.
- ``GET /toggles/v1/snapshot[?deployment=<name>]``: the team's (or the deployment's) toggles,
  each with the value a caller that matches no rule gets, its degradation level, and its
  rules, with a strong ``ETag`` (team, version, scope); ``If-None-Match`` gives 304.
- ``GET /toggles/v1/changes?version=N[&wait=30][&deployment=<name>]``: the change stream as a
  long-poll. Answers the snapshot (200) as soon as the team's version is past ``N``, else 304
  once ``wait`` seconds passed. A waiting request holds a thread, not a process: the server
  runs gunicorn's threaded workers (deploy/gunicorn.conf.py), at most
  ``TOGGLES_CHANGES_WAITERS`` requests wait at once per process, and past that (or in a
  single-threaded server) the answer is 503 with ``Retry-After: 1``.
  Errors here are the project's ``{"detail": ...}``.

Plain Django views: the read path is the hot path of every gateway, and DRF's request and
renderer machinery would cost more than the work itself.
:class:`apps.core.middleware.TokenPathMiddleware` also spares them the middleware of browser
sessions. See :mod:`.readcache` for why it does not query the database when nothing changed.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, replace
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse
from django.utils.http import parse_etags
from django.views.decorators.csrf import csrf_exempt

from apps.accounts.authentication import (
    BearerTokenAuthentication,
    BearerTokenScheme,
    CredentialsRefused,
    TokenKind,
    TokenRefused,
    plain_view_authenticate,
)
from apps.accounts.services import last_used_touch, token_hash
from apps.accounts.throttling import FailureLimit

from .evaluation import TARGETING_KEY, FlagDefinition, Resolution, Rule, evaluate
from .models import GatewayToken
from .readcache import (
    change_wait,
    known_read,
    team_entry,
    team_toggles_at,
    team_version,
    token_remember,
    tokens_epoch,
)
from .selectors import TeamToggles, gateway_token_authenticate
from .services import gateway_token_touch

DEPLOYMENT_ATTRIBUTE = "deployment"
_SCOPE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")


# --------------------------------------------------------------------------- authentication


def gateway_token_limit() -> FailureLimit:
    return FailureLimit(
        "gateway-token", settings.API_TOKEN_FAILURE_LIMIT, settings.API_TOKEN_FAILURE_WINDOW_S
    )


def _gateway_token_resolve(scheme: str, credentials: str) -> tuple[AnonymousUser, GatewayToken]:
    secret = credentials.strip()
    epoch = tokens_epoch()  # before the lookup: a revocation after it changes the epoch
    token = gateway_token_authenticate(token=secret)
    if token is None:
        raise TokenRefused("Unknown or revoked gateway token.", keys=[f"prefix:{secret[:13]}"])
    last_used_touch(token)
    token_remember(digest=token_hash(secret), token_id=token.pk, team_id=token.team_id, epoch=epoch)
    return AnonymousUser(), token


# Guessing gateway tokens is slowed down like guessing API, ingest and receiver tokens.
GATEWAY_TOKEN = TokenKind(
    name="gateway token",
    realm="toggles",
    limit=gateway_token_limit,
    schemes=("bearer",),
    missing="Authentication credentials were not provided: send the team's gateway token as "
    "'Authorization: Bearer <token>'.",
    resolve=_gateway_token_resolve,
)


class GatewayTokenAuthentication(BearerTokenAuthentication):
    """A gateway token as ``Authorization: Bearer <token>``."""

    kind = GATEWAY_TOKEN


class GatewayTokenScheme(BearerTokenScheme):
    target_class = "apps.toggles.gateway.GatewayTokenAuthentication"
    name = "gatewayToken"
    description = (
        "A gateway token from POST /api/v1/toggles/gateway-tokens/, sent as "
        "`Authorization: Bearer <token>`."
    )


@dataclass(frozen=True)
class Reader:
    team_id: int
    version: int  # the team's current version


def gateway_reader(request: HttpRequest) -> Reader:
    """The team of the request's gateway token and its current toggle version. A token this
    process already knows costs one cache round trip; otherwise the shared authentication
    (failure counting, 401/429 as :class:`CredentialsRefused`) and the database."""
    scheme, _, secret = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() == "bearer" and secret:
        known = known_read(token_hash(secret.strip()))
        if known is not None:
            if known.touch:
                gateway_token_touch(token_id=known.token.token_id)
            return Reader(known.token.team_id, known.version)
    token = plain_view_authenticate(request, GatewayTokenAuthentication())
    return Reader(token.team_id, team_version(token.team_id))


# --------------------------------------------------------------------------- answers


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> HttpResponse:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    response = HttpResponse(body.encode(), status=status, content_type="application/json")
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _unchanged(etag: str | None = None) -> HttpResponse:
    response = HttpResponse(status=304)
    del response["Content-Type"]  # a 304 has no body, so no body type
    if etag:
        response["ETag"] = etag
    return response


def _not_modified(request: HttpRequest, etag: str) -> HttpResponse | None:
    header = request.META.get("HTTP_IF_NONE_MATCH")
    if not header:
        return None
    tags = parse_etags(header)
    # If-None-Match compares weakly (RFC 9110 13.1.2): W/"x" matches "x".
    if "*" in tags or etag in (tag.removeprefix("W/") for tag in tags):
        return _unchanged(etag)
    return None


def _method_not_allowed(allowed: str, body: dict[str, str]) -> HttpResponse:
    return _json(405, body, {"Allow": allowed})


# --------------------------------------------------------------------------- OFREP


class _BadEvaluationRequest(Exception):
    def __init__(self, code: str, details: str) -> None:
        self.code = code
        self.details = details
        super().__init__(details)


def _context_of(body: bytes) -> dict[str, Any]:
    """The evaluation context of an OFREP request body (none: an empty context)."""
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise _BadEvaluationRequest("PARSE_ERROR", f"The body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _BadEvaluationRequest(
            "PARSE_ERROR", 'The body must be a JSON object: {"context": {...}}.'
        )
    context = data.get("context")
    if context is None:
        return {}
    if not isinstance(context, dict):
        raise _BadEvaluationRequest("INVALID_CONTEXT", "'context' must be an object of attributes.")
    for name in (TARGETING_KEY, DEPLOYMENT_ATTRIBUTE):
        if name in context and not isinstance(context[name], str):
            raise _BadEvaluationRequest("INVALID_CONTEXT", f"'context.{name}' must be a string.")
    return context


def _ofrep_error(
    status: int,
    code: str,
    details: str,
    *,
    key: str | None = None,
    headers: dict[str, str] | None = None,
) -> HttpResponse:
    """OFREP's error body, with the project's ``detail`` (the same text) besides."""
    body = {"key": key} if key is not None else {}
    body.update(errorCode=code, errorDetails=details, detail=details)
    return _json(status, body, headers)


def _ofrep_refusal(exc: CredentialsRefused) -> HttpResponse:
    return _ofrep_error(exc.status, "GENERAL", exc.detail, headers=exc.headers)


def _resolution_json(resolution: Resolution) -> dict[str, Any]:
    if resolution.error_code is not None:
        return {
            "key": resolution.key,
            "errorCode": resolution.error_code.value,
            "errorDetails": resolution.error_details,
        }
    return {
        "key": resolution.key,
        "value": resolution.value,
        "reason": resolution.reason.value,
        "variant": resolution.variant,
        "metadata": resolution.metadata,
    }


def _flags_for(toggles: TeamToggles, context: dict[str, Any]) -> dict[str, FlagDefinition]:
    return toggles.for_deployment(context.get(DEPLOYMENT_ATTRIBUTE))


@csrf_exempt
def ofrep_evaluate_flag(request: HttpRequest, key: str) -> HttpResponse:
    """OFREP single-flag evaluation."""
    if request.method != "POST":
        return _ofrep_error(405, "GENERAL", "Use POST.", key=key, headers={"Allow": "POST"})
    try:
        reader = gateway_reader(request)
    except CredentialsRefused as exc:
        return _ofrep_refusal(exc)
    try:
        context = _context_of(request.body)
    except _BadEvaluationRequest as exc:
        return _ofrep_error(400, exc.code, exc.details, key=key)
    flag = _flags_for(team_toggles_at(reader.team_id, reader.version), context).get(key)
    if flag is None:
        where = context.get(DEPLOYMENT_ATTRIBUTE)
        scope = f"deployment {where!r} or its team" if where else "this team (team-wide)"
        return _ofrep_error(404, "FLAG_NOT_FOUND", f"No toggle {key!r} in {scope}.", key=key)
    resolution = evaluate(flag, context)
    if resolution.error_code is not None:
        return _ofrep_error(400, resolution.error_code.value, resolution.error_details, key=key)
    return _json(200, _resolution_json(resolution))


def _bulk_etag(team_id: int, version: int, body: bytes) -> str:
    return f'"{team_id}-{version}-{hashlib.blake2b(body, digest_size=8).hexdigest()}"'


@csrf_exempt
def ofrep_evaluate_flags(request: HttpRequest) -> HttpResponse:
    """OFREP bulk evaluation: every toggle of the team (and of the context's deployment).
    The answer is a function of the version and the request body, hence its ETag."""
    if request.method != "POST":
        return _ofrep_error(405, "GENERAL", "Use POST.", headers={"Allow": "POST"})
    try:
        reader = gateway_reader(request)
    except CredentialsRefused as exc:
        return _ofrep_refusal(exc)
    body = request.body
    unchanged = _not_modified(request, _bulk_etag(reader.team_id, reader.version, body))
    if unchanged is not None:
        return unchanged
    try:
        context = _context_of(body)
    except _BadEvaluationRequest as exc:
        return _ofrep_error(400, exc.code, exc.details)
    toggles = team_toggles_at(reader.team_id, reader.version)
    flags = _flags_for(toggles, context)
    results = [_resolution_json(evaluate(flags[key], context)) for key in sorted(flags)]
    etag = _bulk_etag(reader.team_id, toggles.version, body)
    return _json(200, {"flags": results}, {"ETag": etag})


# --------------------------------------------------------------------------- snapshot


def rule_json(rule: Rule) -> dict[str, Any]:
    """A rule in the form it is stored and edited in."""
    data: dict[str, Any] = {
        "conditions": [
            {"attribute": c.attribute, "op": c.op.value, "value": c.value} for c in rule.conditions
        ]
    }
    if rule.split:
        data["split"] = [
            {"variant": arm.variant, "value": arm.value, "weight": arm.weight} for arm in rule.split
        ]
    else:
        data["value"] = rule.value
    if rule.variant:
        data["variant"] = rule.variant
    if rule.salt:
        data["salt"] = rule.salt
    return data


def toggle_snapshot_json(flag: FlagDefinition) -> dict[str, Any]:
    """A toggle as a gateway caches it: what a caller matching no rule gets (``value``,
    ``variant``, ``reason``: the override of a degradation level, the off value, or the
    toggle's value), its level, and the rules to evaluate per request."""
    served = evaluate(replace(flag, rules=()), {})
    override = flag.override
    return {
        "key": flag.key,
        "type": flag.value_type.value,
        "preset": flag.metadata.get("preset", ""),
        "deployment": flag.metadata.get("deployment"),
        "enabled": flag.enabled,
        "value": served.value,
        "variant": served.variant,
        "reason": served.reason.value,
        "level": override.level if override is not None else None,
        "source": override.source if override is not None else None,
        "default": flag.value,
        "off_value": flag.off_value,
        "rules": [rule_json(rule) for rule in flag.rules],
    }


def snapshot_body(toggles: TeamToggles, scope: str) -> bytes:
    flags = toggles.for_deployment(scope or None)
    payload = {
        "team": toggles.team_id,
        "version": toggles.version,
        "deployment": scope or None,
        "toggles": [toggle_snapshot_json(flags[key]) for key in sorted(flags)],
    }
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _snapshot_etag(team_id: int, version: int, scope: str) -> str:
    return f'"{team_id}-{version}-{scope or "*"}"'


def _scope_of(request: HttpRequest) -> str:
    scope = request.GET.get("deployment", "")
    if scope and not _SCOPE_RE.match(scope):
        raise _BadParameter("'deployment' is a deployment's name (letters, digits, '.', '_', '-').")
    return scope


class _BadParameter(Exception):
    pass


def _snapshot_response(team_id: int, version: int, scope: str) -> HttpResponse:
    entry = team_entry(team_id, version)
    body = entry.rendered.get(scope)
    if body is None:
        body = entry.rendered[scope] = snapshot_body(entry.toggles, scope)
    response = HttpResponse(body, content_type="application/json")
    response["ETag"] = _snapshot_etag(team_id, entry.toggles.version, scope)
    return response


def _detail(status: int, detail: str, headers: dict[str, str] | None = None) -> HttpResponse:
    return _json(status, {"detail": detail}, headers)


@csrf_exempt
def toggles_snapshot(request: HttpRequest) -> HttpResponse:
    """The team's or a deployment's toggles, with a strong ETag; If-None-Match → 304."""
    if request.method not in ("GET", "HEAD"):
        return _method_not_allowed("GET, HEAD", {"detail": "Use GET."})
    try:
        reader = gateway_reader(request)
        scope = _scope_of(request)
    except CredentialsRefused as exc:
        return _detail(exc.status, exc.detail, exc.headers)
    except _BadParameter as exc:
        return _detail(400, str(exc))
    unchanged = _not_modified(request, _snapshot_etag(reader.team_id, reader.version, scope))
    return unchanged or _snapshot_response(reader.team_id, reader.version, scope)


def _number_param(request: HttpRequest, name: str, *, default: float | None) -> float:
    raw = request.GET.get(name)
    if raw is None or raw == "":
        if default is None:
            raise _BadParameter(f"'{name}' is required: the version the gateway holds.")
        return default
    try:
        value = float(raw)
    except ValueError:
        raise _BadParameter(f"'{name}' must be a number, not {raw[:40]!r}.") from None
    if not value >= 0 or value == float("inf"):
        raise _BadParameter(f"'{name}' must be a finite number >= 0.")
    return value


@csrf_exempt
def toggles_changes(request: HttpRequest) -> HttpResponse:
    """Long-poll: the snapshot as soon as the team's version passes ``version``, else 304
    after ``wait`` seconds (at most ``TOGGLES_CHANGES_MAX_WAIT_S``)."""
    if request.method != "GET":
        return _method_not_allowed("GET", {"detail": "Use GET."})
    try:
        reader = gateway_reader(request)
        scope = _scope_of(request)
        after = _number_param(request, "version", default=None)
        if not after.is_integer():
            raise _BadParameter("'version' is a whole number: the version of the snapshot held.")
        max_wait = float(settings.TOGGLES_CHANGES_MAX_WAIT_S)
        wait = _number_param(request, "wait", default=max_wait)
        if wait > max_wait:
            raise _BadParameter(f"'wait' is at most {settings.TOGGLES_CHANGES_MAX_WAIT_S} s.")
    except CredentialsRefused as exc:
        return _detail(exc.status, exc.detail, exc.headers)
    except _BadParameter as exc:
        return _detail(400, str(exc))
    version = reader.version
    if version <= after and wait > 0:
        threaded = bool(request.META.get("wsgi.multithread"))
        limit = settings.TOGGLES_CHANGES_WAITERS if threaded else 0
        waited = change_wait(team_id=reader.team_id, after=int(after), wait_s=wait, limit=limit)
        if waited is None:
            return _detail(
                503,
                "No change-stream slot is free on this server: retry after the Retry-After "
                "seconds, or poll the snapshot with If-None-Match.",
                {"Retry-After": "1"},
            )
        version = waited
    if version <= after:
        return _unchanged()
    return _snapshot_response(reader.team_id, version, scope)
