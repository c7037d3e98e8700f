"""A deployment's "Load balancing" section, served on its own address: the deployment
page loads it after the page (reading members asks the system the deployment runs in,
which must not hold up the rest) and refreshes it; without JavaScript the address is a
page of its own."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from .. import selectors
from ..balancing import deployment_balancing
from .base import console_page, render_page


@require_GET
@console_page
def deployment_balancing_view(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = selectors.deployment_get(user=request.user, deployment_id=pk)
    return render_page(
        request,
        template="console/deployment/balancing.html",
        partial="console/deployment/_balancing.html",
        context={
            "deployment": deployment,
            "balancing": deployment_balancing(deployment=deployment),
        },
    )
