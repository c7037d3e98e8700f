"""The SLO pages: the list of the user's SLOs with their state, budget and burn rates, and
one SLO's page (error budget burn-down, the multi-window burn rates, SLI and state history)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from .. import selectors
from ..forms import SloFilterForm
from .base import console_page, render_page


@require_GET
@console_page
def slo_list(request: HttpRequest) -> HttpResponse:
    form = SloFilterForm(request.GET or None, user=request.user)
    slos = form.filter(selectors.slos_visible(user=request.user))
    return render_page(
        request,
        template="console/slos/list.html",
        partial="console/slos/_table.html",
        context={"nav": "slos", "form": form, "rows": selectors.slo_rows(slos=slos)},
    )


@require_GET
@console_page
def slo_detail(request: HttpRequest, pk: int) -> HttpResponse:
    row = selectors.slo_row_get(user=request.user, slo_id=pk)
    slo = row.slo
    return render(
        request,
        "console/slos/detail.html",
        {
            "nav": "slos",
            "row": row,
            "slo": slo,
            "conditions": selectors.slo_burn_conditions(status=row.status, windows=row.windows),
            "charts": selectors.slo_charts(slo=slo, windows=row.windows),
            "events": selectors.slo_events(slo=slo),
        },
    )
