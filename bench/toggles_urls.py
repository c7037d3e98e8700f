"""The product's URLs plus the constant view ``bench/toggles.py`` compares the gateway read
path with: a plain Django view that answers a fixed JSON body, with no authentication,
cache or database, at two paths: under ``/toggles/v1/`` (the gateway paths' middleware, the
comparison the targets use) and ``/bench/constant`` (every other view's full middleware)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from controlplane.urls import urlpatterns as product_urlpatterns

CONSTANT_PATH = "toggles/v1/bench-constant"
FULL_STACK_CONSTANT_PATH = "bench/constant"
CONSTANT_BODY = b'{"status":"ok"}'


@csrf_exempt
def constant(request: HttpRequest) -> HttpResponse:
    return HttpResponse(CONSTANT_BODY, content_type="application/json")


urlpatterns = [
    path(CONSTANT_PATH, constant, name="bench-constant"),
    path(FULL_STACK_CONSTANT_PATH, constant, name="bench-constant-full-stack"),
    *product_urlpatterns,
]
