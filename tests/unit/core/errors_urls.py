"""The real routes plus two views that fail the way only Django itself can make a route
fail: an unhandled exception (500) and a CSRF refusal (403 from CsrfViewMiddleware)."""

from django.http import HttpRequest, HttpResponse
from django.urls import path

from controlplane import urls as real_urls


def crash(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("boom: an unexpected failure")


def plain_post(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


urlpatterns = [
    path("api/test-only/crash/", crash),
    path("admin-test-only/crash/", crash),
    path("api/test-only/plain-post/", plain_post),
    *real_urls.urlpatterns,
]

# The project's own error handlers (Django's defaults where it declares none).
handler400 = getattr(real_urls, "handler400", "django.views.defaults.bad_request")
handler403 = getattr(real_urls, "handler403", "django.views.defaults.permission_denied")
handler404 = getattr(real_urls, "handler404", "django.views.defaults.page_not_found")
handler500 = getattr(real_urls, "handler500", "django.views.defaults.server_error")
