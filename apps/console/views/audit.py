"""The audit page: who changed what, with each entry's field-level diff, for the entries
the audit API shows the same user (their teams' and their own), filtered and paged."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from .. import selectors
from ..forms import AuditFilterForm
from .base import console_page, render_page


@require_GET
@console_page
def audit_log(request: HttpRequest) -> HttpResponse:
    visible = selectors.audit_entries_visible(user=request.user)
    form = AuditFilterForm(
        request.GET or None,
        user=request.user,
        object_types=selectors.audit_object_types(entries=visible),
    )
    page = selectors.audit_page(entries=form.filter(visible), cursor=request.GET.get("cursor", ""))
    filters = request.GET.copy()
    filters.pop("cursor", None)
    return render_page(
        request,
        template="console/audit/list.html",
        partial="console/audit/_table.html",
        context={"nav": "audit", "form": form, "page": page, "filters": filters.urlencode()},
    )
