"""The alerts page: firing and recent alerts in their delivery groups, silences and each
channel's deliveries; acknowledging, silencing from an alert's labels (with a preview of
what the silence mutes), expiring a silence and a channel's test message, all through the
alerts app's services, like the API."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.alerts.delivery import channel_test_send
from apps.alerts.models import DeliveryStatus
from apps.alerts.services import alert_acknowledge, silence_create, silence_expire

from .. import selectors
from ..forms import AcknowledgeForm, AlertFilterForm, SilenceForm
from .base import console_page, form_errors, render_page

ALERT_HEADERS = "Alert,Severity,State,Since,Summary"
SILENCE_HEADERS = "Matchers,Team,From,Until,State,Created by,Comment"
DELIVERY_HEADERS = "Queued,What,Status,Attempts,HTTP,Last error,Sent"


def _require_operator(request: HttpRequest, team_id: int | None) -> None:
    if not selectors.team_can_operate(user=request.user, team_id=team_id):
        raise PermissionDenied("This needs the operator role in the team.")


def _back(anchor: str = "") -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("console:alerts") + (f"#{anchor}" if anchor else ""))


@require_GET
@console_page
def alerts_page(request: HttpRequest) -> HttpResponse:
    form = AlertFilterForm(request.GET or None, user=request.user)
    groups = selectors.alert_groups(
        user=request.user, alerts=form.filter(selectors.alerts_recent(user=request.user))
    )
    rows = {row.alert.pk: row for group in groups for row in group.rows}
    operates = any(row.can_operate for row in rows.values())
    context = {
        "nav": "alerts",
        "form": form,
        "groups": groups,
        "firing": sum(row.alert.status == "firing" for row in rows.values()),
        "shown": len(rows),
        "limit": selectors.ALERTS_LIMIT,
        "operates": operates,
        "alert_headers": ALERT_HEADERS + (",Actions" if operates else ""),
        "query": request.GET.urlencode(),
    }

    def page_context() -> dict[str, Any]:
        silences = selectors.silence_rows(user=request.user)
        expires = any(row.can_expire for row in silences)
        return {
            "silences": silences,
            "expires": expires,
            "silence_headers": SILENCE_HEADERS + (",Actions" if expires else ""),
            "channels": selectors.channel_deliveries(user=request.user),
            "delivery_headers": DELIVERY_HEADERS,
        }

    return render_page(
        request,
        template="console/alerts.html",
        partial="console/alerts/_groups.html",
        context=context,
        page_context=page_context,
    )


@require_POST
@console_page
def alert_acknowledge_view(request: HttpRequest, pk: int) -> HttpResponse:
    alert = selectors.alert_get(user=request.user, alert_id=pk)
    _require_operator(request, alert.team_id)
    form = AcknowledgeForm(request.POST)
    if not form.is_valid():
        messages.error(request, form_errors(form))
    else:
        alert_acknowledge(alert=alert, actor=request.user, comment=form.cleaned_data["comment"])
        messages.success(request, f"{alert.name} acknowledged; recorded in the audit log.")
    return _back(f"alert-{alert.pk}")


@require_http_methods(["GET", "POST"])
@console_page
def alert_silence(request: HttpRequest, pk: int) -> HttpResponse:
    """The silence form pre-filled from the alert's labels. To htmx (the form's edits) it
    answers the preview: the firing alerts of the team the matchers would mute now."""
    alert = selectors.alert_get(user=request.user, alert_id=pk)
    _require_operator(request, alert.team_id)
    data = request.POST if request.method == "POST" else (request.GET or None)
    form = SilenceForm(data, labels=alert.labels)
    matchers = form.cleaned_matchers()
    now = timezone.now()
    if request.method == "POST" and matchers is not None and form.is_valid():
        try:
            silence = silence_create(
                team=alert.team,
                matchers=matchers,
                starts_at=now,
                ends_at=now + form.length(),
                comment=form.cleaned_data["comment"],
                actor=request.user,
            )
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            messages.success(request, f"Silence {silence.pk} created; recorded in the audit log.")
            return _back(f"silence-{silence.pk}")
    preview, matched = (
        selectors.silence_preview(user=request.user, team_id=alert.team_id, matchers=matchers)
        if matchers is not None
        else ([], 0)
    )
    return render_page(
        request,
        template="console/alerts/silence.html",
        partial="console/alerts/_silence_preview.html",
        context={
            "nav": "alerts",
            "alert": alert,
            "form": form,
            "preview": preview,
            "matched": matched,
            "ends_at": now + form.length(),
        },
    )


@require_POST
@console_page
def silence_expire_view(request: HttpRequest, pk: int) -> HttpResponse:
    silence = selectors.silence_get(user=request.user, silence_id=pk)
    _require_operator(request, silence.team_id)
    silence_expire(silence=silence, actor=request.user)
    messages.success(request, f"Silence {silence.pk} expired; recorded in the audit log.")
    return _back(f"silence-{silence.pk}")


@require_POST
@console_page
def channel_test(request: HttpRequest, pk: int) -> HttpResponse:
    """The API's test action: a sample notification sent now and recorded as a delivery."""
    channel = selectors.channel_get(user=request.user, channel_id=pk)
    _require_operator(request, channel.team_id)
    delivery = channel_test_send(channel=channel, language=channel.language)
    if delivery.status == DeliveryStatus.SUCCEEDED:
        messages.success(
            request, f"Test message sent to {channel.name} (HTTP {delivery.status_code})."
        )
    else:
        messages.error(request, f"Test message to {channel.name} failed: {delivery.error}")
    return _back(f"channel-{channel.pk}-title")
