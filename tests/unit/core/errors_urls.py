"""The real routes plus two views that fail the way only Django itself can make a route
fail: an unhandled exception (500) and a CSRF refusal (403 from CsrfViewMiddleware)."""

from django.http import HttpRequest, HttpResponse
from django.urls import path

from controlplane.urls import urlpatterns as real_urlpatterns


def crash(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("boom: an unexpected failure")


def plain_post(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


urlpatterns = [
    path("api/test-only/crash/", crash),
    path("admin-test-only/crash/", crash),
    path("api/test-only/plain-post/", plain_post),
    *real_urlpatterns,
]

handler400 = "apps.core.errors.bad_request"
handler403 = "apps.core.errors.permission_denied"
handler404 = "apps.core.errors.page_not_found"
handler500 = "apps.core.errors.server_error"
