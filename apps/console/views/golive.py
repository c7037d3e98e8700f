"""A deployment's go-live page: the checklist with each check's evidence, the gate, results
over time, the load tests, and for operators "run checks", "run load test", a stage move
and applying a stress test's capacity; for team admins the override of the gate. Every
change goes through apps.golive.services (the gate, the audit) as the API does."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from functools import wraps
from typing import Any

from django import forms
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from apps.accounts.models import Role
from apps.accounts.selectors import user_has_role
from apps.golive.checks import CHECKS_BY_KEY
from apps.golive.models import GateTarget, LoadTestMode, LoadTestRun, Stage
from apps.golive.selectors import check_history, checklist
from apps.golive.serializers import LoadTestRequestSerializer, loadtest_params
from apps.golive.services import (
    Conflict,
    GateRefused,
    capacity_apply,
    checks_run,
    gate_override,
    loadtest_create,
    stage_set,
)
from apps.golive.tasks import run_loadtest

from .. import selectors
from .base import action_done, console_page, form_errors, render_page, service_errors

HISTORY_RESULTS = 300  # about twenty runs of every check


class LoadTestForm(forms.Form):
    mode = forms.ChoiceField(choices=LoadTestMode.choices)
    rate_rps = forms.FloatField(min_value=0.01, initial=1.0, label="Rate (req/s)")
    duration_s = forms.FloatField(min_value=1.0, initial=30.0, label="Duration per rate (s)")
    max_rate_rps = forms.FloatField(min_value=0.01, required=False, label="Stress: highest rate")
    confirm_production = forms.BooleanField(
        required=False, label="It is in production: run it anyway"
    )


class StageForm(forms.Form):
    stage = forms.ChoiceField(choices=Stage.choices)


class OverrideForm(forms.Form):
    target = forms.ChoiceField(choices=GateTarget.choices)
    reason = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))


def _runs_over_time(deployment: Any) -> list[dict[str, Any]]:
    """The latest check runs (one per time the checks were run), newest first, each with
    its counts per status and the required checks that did not pass."""
    runs: dict[Any, dict[str, Any]] = {}
    for row in check_history(deployment=deployment)[:HISTORY_RESULTS]:
        run = runs.setdefault(
            row.checked_at, {"at": row.checked_at, "counts": Counter(), "failing": []}
        )
        run["counts"][row.status] += 1
        if row.required and row.status != "pass":
            run["failing"].append(row.key)
    return list(runs.values())


@require_GET
@console_page
def deployment_golive(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = selectors.deployment_get(user=request.user, deployment_id=pk)
    listed = checklist(deployment=deployment)
    rows = [{"result": row, "title": CHECKS_BY_KEY[row.key].title} for row in listed["checks"]]
    context = {
        "deployment": deployment,
        "listed": listed,
        "rows": rows,
        "runs": _runs_over_time(deployment),
        "loadtests": LoadTestRun.objects.filter(deployment=deployment).select_related("created_by")[
            :10
        ],
        "can_operate": selectors.deployment_can_operate(user=request.user, deployment=deployment),
        "can_override": user_has_role(
            user=request.user, team_id=deployment.team_id, role=Role.ADMIN
        ),
        "loadtest_form": LoadTestForm(),
        "stage_form": StageForm(initial={"stage": listed["stage"]}),
        "override_form": OverrideForm(),
    }
    return render_page(
        request,
        template="console/golive/deployment.html",
        partial="console/golive/_checklist.html",
        context=context,
    )


def _golive_action(
    role: str,
) -> Callable[[Callable[..., str | None]], Callable[..., HttpResponse]]:
    """A POST of the go-live page: 404 when the deployment is not visible, 403 below
    ``role``; the outcome as a message, back to the page either way."""

    def decorate(handler: Callable[..., str | None]) -> Callable[..., HttpResponse]:
        @wraps(handler)
        def view(request: HttpRequest, pk: int, **kwargs: int) -> HttpResponse:
            deployment = selectors.deployment_get(user=request.user, deployment_id=pk)
            if not user_has_role(user=request.user, team_id=deployment.team_id, role=role):
                raise PermissionDenied(f"This needs the {role} role in the team.")
            try:
                error = handler(request, deployment, **kwargs)
            except (Conflict, GateRefused) as exc:
                error = str(exc)
            except ValidationError as exc:
                error = service_errors(exc)
            back_to = reverse("console:deployment-golive", args=[deployment.pk])
            return action_done(request, error, back_to=back_to)

        return require_POST(console_page(view))

    return decorate


@_golive_action(Role.OPERATOR)
def golive_run_checks(request: HttpRequest, deployment: Any) -> str | None:
    checks_run(deployment=deployment)
    return None


@_golive_action(Role.OPERATOR)
def golive_loadtest(request: HttpRequest, deployment: Any) -> str | None:
    form = LoadTestForm(request.POST)
    if not form.is_valid():
        return form_errors(form)
    given = {k: v for k, v in form.cleaned_data.items() if v is not None}
    body = LoadTestRequestSerializer(data=given)
    if not body.is_valid():
        return "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in body.errors.items())
    loadtest_create(
        deployment=deployment,
        params=loadtest_params(dict(body.validated_data)),
        confirm_production=body.validated_data["confirm_production"],
        actor=request.user,
        enqueue=run_loadtest.delay,
    )
    return None


@_golive_action(Role.OPERATOR)
def golive_stage(request: HttpRequest, deployment: Any) -> str | None:
    form = StageForm(request.POST)
    if not form.is_valid():
        return form_errors(form)
    stage_set(deployment=deployment, stage=form.cleaned_data["stage"], actor=request.user)
    return None


@_golive_action(Role.ADMIN)
def golive_override(request: HttpRequest, deployment: Any) -> str | None:
    form = OverrideForm(request.POST)
    if not form.is_valid():
        return form_errors(form)
    gate_override(deployment=deployment, actor=request.user, **form.cleaned_data)
    return None


@_golive_action(Role.OPERATOR)
def golive_apply_capacity(request: HttpRequest, deployment: Any, run_pk: int) -> str | None:
    run = LoadTestRun.objects.filter(deployment=deployment, pk=run_pk).first()
    if run is None:
        return "No such load test of this deployment."
    capacity_apply(run=run, actor=request.user)
    return None
