"""A deployment's page: charts over a range, decisions, actions, alerts, readiness, the
autoscaling controls (pause, pin, unpin) and the degradation section (flip a toggle, pin or
unpin a policy's level), which go through the autoscaling and toggles services. Its load
balancing section is loaded after the page (views/balancing.py)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from apps.autoscaling.services import (
    deployment_pause_set,
    deployment_pin,
    deployment_unpin,
    policy_capacity_update,
)
from apps.inventory.selectors import deployment_readiness
from apps.toggles.services import policy_pin, policy_unpin, toggle_update

from .. import selectors
from ..forms import (
    CapacityPolicyForm,
    DegradationPinForm,
    PinForm,
    RangeForm,
    ReasonForm,
    ToggleFlipForm,
)
from .base import action_done, console_page, form_errors, render_page, service_errors


def _operable(request: HttpRequest, pk: int) -> Any:
    """The deployment (404 if not visible), and 403 unless the user may operate it."""
    deployment = selectors.deployment_get(user=request.user, deployment_id=pk)
    if not selectors.deployment_can_operate(user=request.user, deployment=deployment):
        raise PermissionDenied("Viewers cannot change this deployment's controls.")
    return deployment


@require_GET
@console_page
def deployment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = selectors.deployment_get(user=request.user, deployment_id=pk)
    range_form = RangeForm(request.GET or None)
    range_key = range_form.range_key()
    context = {
        "deployment": deployment,
        "range_form": range_form,
        "range_key": range_key,
        "charts": selectors.deployment_charts(deployment=deployment, range_key=range_key),
    }

    def page_context() -> dict[str, Any]:
        control = selectors.deployment_control(deployment=deployment)
        capacity = selectors.deployment_capacity(deployment=deployment, control=control)
        return {
            "can_operate": selectors.deployment_can_operate(
                user=request.user, deployment=deployment
            ),
            "control": control,
            "capacity": capacity,
            "capacity_form": (
                CapacityPolicyForm(policy=capacity.policy) if capacity is not None else None
            ),
            "pinned": selectors.control_pinned_replicas(control=control, now=timezone.now()),
            "decisions": selectors.deployment_decisions(deployment=deployment),
            "actions": selectors.deployment_actions(deployment=deployment),
            "alerts": selectors.deployment_alerts(deployment=deployment),
            "slos": selectors.deployment_slos(deployment=deployment),
            "readiness": deployment_readiness(deployment=deployment),
            "degradation": selectors.deployment_degradation(deployment=deployment),
        }

    return render_page(
        request,
        template="console/deployment.html",
        partial="console/deployment/_charts.html",
        context=context,
        page_context=page_context,
    )


def _control_action(
    handler: Callable[..., str | None],
) -> Callable[..., HttpResponse]:
    """A POST that changes a deployment's controls: 404 when not visible, 403 for viewers,
    the form's errors as a message; back to the deployment page either way."""

    @wraps(handler)
    def view(request: HttpRequest, pk: int, **kwargs: int) -> HttpResponse:
        deployment = _operable(request, pk)
        try:
            error = handler(request, deployment, **kwargs)
        except ValueError as exc:  # the service's own validation (a pin out of bounds)
            error = str(exc)
        except ValidationError as exc:  # the toggles services' (naming the field)
            error = service_errors(exc)
        return action_done(
            request, error, back_to=reverse("console:deployment", args=[deployment.pk])
        )

    return require_POST(console_page(view))


def _with_reason(request: HttpRequest, change: Callable[[str], object]) -> str | None:
    """Run ``change(reason)`` when the posted reason is valid; else the form's errors."""
    form = ReasonForm(request.POST)
    if not form.is_valid():
        return form_errors(form)
    change(form.cleaned_data["reason"])
    return None


@_control_action
def deployment_pause(request: HttpRequest, deployment: Any) -> str | None:
    paused = request.POST.get("paused") == "true"
    return _with_reason(
        request,
        lambda reason: deployment_pause_set(
            deployment=deployment, paused=paused, actor=request.user, reason=reason
        ),
    )


@_control_action
def deployment_pin_view(request: HttpRequest, deployment: Any) -> str | None:
    form = PinForm(request.POST)
    if not form.is_valid():
        return form_errors(form)
    deployment_pin(
        deployment=deployment,
        replicas=form.cleaned_data["replicas"],
        minutes=form.cleaned_data["minutes"],
        actor=request.user,
        reason=form.cleaned_data["reason"],
    )
    return None


@_control_action
def deployment_unpin_view(request: HttpRequest, deployment: Any) -> str | None:
    return _with_reason(
        request,
        lambda reason: deployment_unpin(deployment=deployment, actor=request.user, reason=reason),
    )


@_control_action
def deployment_capacity_update(request: HttpRequest, deployment: Any) -> str | None:
    capacity = selectors.deployment_capacity(deployment=deployment, control=None)
    if capacity is None:
        return "This deployment has no autoscaling policy to change."
    form = CapacityPolicyForm(request.POST, policy=capacity.policy)
    if not form.is_valid():
        return form_errors(form)
    policy_capacity_update(
        policy=capacity.policy,
        changes=form.changed_policy(),
        actor=request.user,
        reason=form.cleaned_data["reason"],
    )
    return None


@_control_action
def deployment_toggle_flip(request: HttpRequest, deployment: Any, toggle_pk: int) -> str | None:
    toggle = selectors.deployment_toggle_get(deployment=deployment, toggle_id=toggle_pk)
    form = ToggleFlipForm(request.POST)
    if not form.is_valid():
        return form_errors(form)
    toggle_update(toggle=toggle, actor=request.user, reason=form.cleaned_data["reason"],
                  enabled=form.cleaned_data["enabled"])  # fmt: skip
    return None


@_control_action
def deployment_degradation_pin(request: HttpRequest, deployment: Any, policy_pk: int) -> str | None:
    policy = selectors.deployment_policy_get(deployment=deployment, policy_id=policy_pk)
    form = DegradationPinForm(request.POST)
    if not form.is_valid():
        return form_errors(form)
    policy_pin(policy=policy, level=form.cleaned_data["level"], actor=request.user,
               reason=form.cleaned_data["reason"], until=form.until())  # fmt: skip
    return None


@_control_action
def deployment_degradation_unpin(
    request: HttpRequest, deployment: Any, policy_pk: int
) -> str | None:
    policy = selectors.deployment_policy_get(deployment=deployment, policy_id=policy_pk)
    return _with_reason(
        request,
        lambda reason: policy_unpin(policy=policy, actor=request.user, reason=reason),
    )
