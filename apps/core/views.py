from __future__ import annotations

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import observability, selectors


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Checks nothing else, so a database outage does not get
    every web pod restarted."""
    return JsonResponse({"status": "ok"})


@require_GET
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: database reachable, broker reachable, a worker heartbeat recent enough."""
    checks = {}
    for name, check in (
        ("database", selectors.database_check),
        ("broker", selectors.broker_check),
        ("worker", selectors.worker_alive),
    ):
        try:
            ok, detail = check()
        except DatabaseError as exc:  # the worker heartbeat is read from the database
            ok, detail = False, f"database unavailable ({type(exc).__name__})"
        checks[name] = {"ok": ok, "detail": detail}
    ready = all(c["ok"] for c in checks.values())
    try:
        age, _ = selectors.worker_heartbeat_age()
    except DatabaseError:
        age = None
    body = {
        "status": "ready" if ready else "not ready",
        "checks": checks,
        "worker_heartbeat_age_seconds": None if age is None else round(age, 1),
        "worker_heartbeat_max_age_seconds": settings.WORKER_HEARTBEAT_MAX_AGE_S,
    }
    return JsonResponse(body, status=200 if ready else 503)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format; under gunicorn, the figures of all workers together."""
    registry = observability.scrape_registry()
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def index(request: HttpRequest) -> HttpResponse:
    """The root opens the console (which asks for a login first)."""
    return HttpResponseRedirect("/console/")
