"""The fleet overview: every visible deployment, one row each, filtered and auto-refreshed."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from .. import selectors
from ..forms import OverviewFilterForm
from .base import console_page, render_page


@require_GET
@console_page
def overview(request: HttpRequest) -> HttpResponse:
    form = OverviewFilterForm(request.GET or None, user=request.user)
    deployments = form.filter(selectors.deployments_visible(user=request.user))
    return render_page(
        request,
        template="console/overview.html",
        partial="console/overview/_table.html",
        context={
            "nav": "overview",
            "form": form,
            "rows": selectors.overview_rows(deployments=deployments),
            "query": request.GET.urlencode(),
        },
    )
