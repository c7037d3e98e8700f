"""What every console page shares: the login decorator, :func:`render_page` (the whole page,
or its partial for htmx), the login and logout views and form-error text.

A console page is a view module here plus a template under ``templates/console/``: the
view reads through the console's selectors (team-scoped) and writes only through the
domain services, so the console validates and audits exactly as the API does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render

from apps.accounts.backends import login_refusal

LOGIN_URL = "console:login"


def console_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A console view: logged in (else the console's login form)."""
    return login_required(login_url=LOGIN_URL)(view)


def render_page(
    request: HttpRequest,
    *,
    template: str,
    partial: str,
    context: dict[str, Any],
    page_context: Callable[[], dict[str, Any]] | None = None,
) -> HttpResponse:
    """The whole page, or only ``partial`` when htmx asks for it (filters, ranges,
    auto-refresh). The page template includes the same partial, so both always agree;
    ``page_context`` adds what only the whole page needs, read only for it."""
    is_htmx = bool(getattr(request, "htmx", False)) and not request.htmx.boosted  # type: ignore[attr-defined]
    if not is_htmx and page_context is not None:
        context = {**context, **page_context()}
    response = render(request, partial if is_htmx else template, context)
    response["Vary"] = "HX-Request"
    return response


class LoginView(auth_views.LoginView):
    """Django's login with the console's template; a locked-out address or username gets
    429 with Retry-After (the authentication backend refuses it anyway; this says why)."""

    template_name = "console/login.html"
    redirect_authenticated_user = True
    next_page = "console:overview"

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return login_refusal(request) or super().post(request, *args, **kwargs)


class LogoutView(auth_views.LogoutView):
    next_page = "console:login"


def form_errors(form: Any) -> str:
    """A form's errors as one line for a message: ``field: error; field: error``."""
    return "; ".join(f"{name}: {' '.join(errs)}" for name, errs in form.errors.items())


def service_errors(exc: ValidationError) -> str:
    """A service's ValidationError (naming fields) as one line for a message."""
    return "; ".join(f"{name}: {' '.join(errs)}" for name, errs in exc.message_dict.items())


def action_done(request: HttpRequest, error: str | None, *, back_to: str) -> HttpResponse:
    """The end of a console POST: its error, or that it was done, as a message; then back
    to the page it came from."""
    if error:
        messages.error(request, error)
    else:
        messages.success(request, "Done; recorded in the audit log.")
    return HttpResponseRedirect(back_to)
