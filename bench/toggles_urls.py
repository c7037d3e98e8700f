"""The product's URLs plus the constant view ``bench/toggles.py`` compares the gateway read
path with: a plain Django view behind the same middleware that answers a fixed JSON body,
with no authentication, cache or database."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from controlplane.urls import urlpatterns as product_urlpatterns

CONSTANT_PATH = "bench/constant"
CONSTANT_BODY = b'{"status":"ok"}'


@csrf_exempt
def constant(request: HttpRequest) -> HttpResponse:
    return HttpResponse(CONSTANT_BODY, content_type="application/json")


urlpatterns = [path(CONSTANT_PATH, constant, name="bench-constant"), *product_urlpatterns]
