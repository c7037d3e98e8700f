"""JSON errors for machine-facing paths, whatever raised them and whatever ``DEBUG`` says.

DRF renders the errors of its own views, but several answers come from Django itself: a
404 for a path no route matches, a 400 for a disallowed ``Host`` or an oversized form body
(raised by middleware or while reading the body, before any view runs), a CSRF 403, a 405
from a plain Django view, and the 500 page. With ``DEBUG`` on Django renders those as its
technical HTML pages and never calls ``handler400``/``handler404``/``handler500``, so the
handlers alone are not enough: :class:`ApiErrorMiddleware` rewrites whatever non-JSON error
reaches it on an API path, and the handlers give the precise message when ``DEBUG`` is off.
Other paths (the admin, the console) keep Django's HTML pages.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.core.exceptions import DisallowedHost, RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from django.views.csrf import csrf_failure as django_csrf_failure

# Path prefixes answered in JSON: the REST API, and the paths of the push/evaluation
# protocols other programs call (Loki push, OpenFeature remote evaluation and the toggle
# snapshots of gateways, OTLP).
API_PATH_PREFIXES: tuple[str, ...] = ("/api/", "/loki/", "/ofrep/", "/toggles/", "/v1/", "/otlp/")
# Paths whose views apply a body limit of their own (log pushes: LOGS_MAX_BODY_BYTES, larger
# than a form's), checked before they read the body: the middleware leaves their size alone.
OWN_BODY_LIMIT_PATHS: frozenset[str] = frozenset({"/loki/api/v1/push", "/v1/logs", "/otlp/v1/logs"})

_DETAILS = {
    400: "Bad request.",
    401: "Authentication credentials were not provided or are not valid.",
    403: "You do not have permission to perform this action.",
    404: "Not found.",
    405: "Method not allowed.",
    413: "The request body is too large.",
    500: "Server error: the failure is logged; retry later or report it with the request id.",
}


def body_limit_bytes() -> int:
    """The largest request body accepted (``DATA_UPLOAD_MAX_MEMORY_SIZE``), in bytes."""
    return int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


def too_large_detail(limit: int) -> str:
    return f"The request body is too large: at most {limit} bytes are accepted."


# Headers of the original answer that say something about the body it had.
_BODY_HEADERS = frozenset({"content-type", "content-length", "content-encoding", "etag"})


def is_api_path(path: str) -> bool:
    return path.startswith(API_PATH_PREFIXES)


def json_error(status: int, detail: str | None = None) -> JsonResponse:
    if detail is None:
        detail = _DETAILS.get(status) or f"{HTTPStatus(status).phrase}."
    return JsonResponse({"detail": detail}, status=status)


def _is_json(response: HttpResponse) -> bool:
    content_type = (response.get("Content-Type") or "").split(";")[0].strip().lower()
    return content_type == "application/json" or content_type.endswith("+json")


def _json_version(response: HttpResponse) -> JsonResponse:
    data = getattr(response, "data", None)  # a DRF Response rendered for a browser
    if isinstance(data, dict) and "detail" in data:
        replacement = JsonResponse(data, status=response.status_code)
    else:
        replacement = json_error(response.status_code)
    for header, value in response.items():
        if header.lower() not in _BODY_HEADERS:
            replacement[header] = value
    replacement.cookies = response.cookies
    return replacement


class ApiErrorMiddleware:
    """Answers API paths with JSON errors: refuses bodies over ``DATA_UPLOAD_MAX_MEMORY_SIZE``
    with a 413 before anything reads them, and turns any non-JSON error answer (Django's
    HTML pages, DEBUG's technical pages, the browsable API's) into ``{"detail": ...}`` with
    the same status and headers.

    Sits right after the request-context middleware, so that errors raised by every later
    middleware (a disallowed host in CommonMiddleware, CSRF) pass through it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not is_api_path(request.path_info):
            return self.get_response(request)
        limit = body_limit_bytes()
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return json_error(400, "Content-Length is not a number.")
        if declared > limit and request.path_info not in OWN_BODY_LIMIT_PATHS:
            return json_error(413, too_large_detail(limit))
        response = self.get_response(request)
        if response.status_code < 400 or response.streaming or _is_json(response):
            return response
        return _json_version(response)


# handler400/403/404/500 (controlplane/urls.py): used when DEBUG is off.


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not is_api_path(request.path_info):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        return json_error(413, too_large_detail(body_limit_bytes()))
    if isinstance(exception, DisallowedHost):
        return json_error(400, "The Host header names a host this server does not answer for.")
    return json_error(400)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not is_api_path(request.path_info):
        return defaults.permission_denied(request, exception)
    return json_error(403)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not is_api_path(request.path_info):
        return defaults.page_not_found(request, exception)
    return json_error(404, "Not found: no such path. The API is described at /api/schema/.")


def server_error(request: HttpRequest) -> HttpResponse:
    if not is_api_path(request.path_info):
        return defaults.server_error(request)
    return json_error(500)


def csrf_failure(request: HttpRequest, reason: str = "", **kwargs: Any) -> HttpResponse:
    """``CSRF_FAILURE_VIEW``: API clients get the reason as JSON."""
    if not is_api_path(request.path_info):
        return django_csrf_failure(request, reason=reason, **kwargs)
    return json_error(403, f"CSRF verification failed: {reason or 'no reason given'}.")
