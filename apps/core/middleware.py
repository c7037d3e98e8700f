from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable

import structlog
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

from . import context, observability

logger = structlog.get_logger("controlplane.http")

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}\Z")


def client_ip(request: HttpRequest) -> str | None:
    """The caller's address; X-Forwarded-For is trusted only behind TRUSTED_PROXY_COUNT proxies."""
    hops = settings.TRUSTED_PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if hops and forwarded:
        chain = [part.strip() for part in forwarded.split(",") if part.strip()]
        if len(chain) >= hops:
            return chain[-hops]
    return request.META.get("REMOTE_ADDR") or None


def _source_of(path: str) -> str:
    if path.startswith("/api/"):
        return "api"
    if path.startswith("/admin/"):
        return "admin"
    return "console"


class RequestContextMiddleware:
    """Gives every request an id (kept from X-Request-ID when well formed), binds it to the
    log context and the audit context, echoes it back, and counts the request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        token = context.set_current(
            context.RequestContext(
                request_id=request_id, source_ip=client_ip(request), source=_source_of(request.path)
            )
        )
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        observability.HTTP_IN_PROGRESS.inc()
        try:
            response = self.get_response(request)
        finally:
            observability.HTTP_IN_PROGRESS.dec()
            structlog.contextvars.unbind_contextvars("request_id")
            context.reset(token)
        elapsed = time.perf_counter() - started
        response["X-Request-ID"] = request_id
        match = getattr(request, "resolver_match", None)
        observability.observe_request(
            method=request.method,
            route=match.route if match is not None else None,
            status=response.status_code,
            seconds=elapsed,
        )
        if request.path not in ("/healthz", "/metrics"):
            logger.info(
                "http-request",
                method=request.method,
                path=request.path,
                status=response.status_code,
                duration_ms=round(elapsed * 1000, 2),
                request_id=request_id,
            )
        return response


# Paths authenticated by a token in the request, which set no cookie and render no page:
# the gateways' toggle reads and the log shippers' pushes.
TOKEN_PATH_PREFIXES = (
    "/ofrep/v1/",
    "/toggles/v1/",
    "/loki/api/v1/push",
    "/v1/logs",
    "/otlp/v1/logs",
)


class TokenPathMiddleware:
    """Calls the views of :data:`TOKEN_PATH_PREFIXES` straight after the request context
    (request id, log line, metrics) and the JSON errors, skipping the middleware of browser
    sessions (static files, sessions, CSRF, user, messages, htmx, frame options): those
    paths authenticate with a token, set no cookie and render no page, and that middleware
    costs more than answering a gateway's 304 or a part of storing a shipper's push. The
    host is still checked against ``ALLOWED_HOSTS`` and answers carry
    ``X-Content-Type-Options: nosniff``, as the full stack would give them."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path_info.startswith(TOKEN_PATH_PREFIXES):
            return self.get_response(request)
        request.get_host()  # DisallowedHost: a 400, as CommonMiddleware would answer
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return self.get_response(request)
        request.resolver_match = match
        response: HttpResponse = match.func(request, *match.args, **match.kwargs)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if (
            response.status_code != 304
            and not response.streaming
            and "Content-Length" not in response
        ):
            # As CommonMiddleware does: without it gunicorn answers chunked.
            response["Content-Length"] = str(len(response.content))
        return response
