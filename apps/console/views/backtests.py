"""The backtest page: replay a deployment's saved policy, or a variant of it, over a past
range and compare it with what actually ran.

It runs as the API's backtest does: synchronously (the range is bounded by the number of
steps Prometheus answers in one query), for any user who can see the deployment, with the
request validated by the API's serializer (see :class:`..forms.BacktestForm`). Nothing is
stored: the form is a GET, so a result's URL is its link."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.views.decorators.http import require_GET

from apps.autoscaling.backtest import BacktestError, backtest_run
from apps.core.digits import ascii_int

from .. import selectors
from ..forms import DATETIME_LOCAL, BacktestForm
from .base import console_page


def _permalink(request: HttpRequest, data: dict[str, Any]) -> str:
    """This run's URL with the range fixed (``last N hours`` moves with the clock)."""
    query: QueryDict = request.GET.copy()
    query["hours"] = ""
    query["start"] = data["start"].strftime(DATETIME_LOCAL)
    query["end"] = data["end"].strftime(DATETIME_LOCAL)
    return f"{request.path}?{query.urlencode()}"


@require_GET
@console_page
def backtest(request: HttpRequest) -> HttpResponse:
    run = "run" in request.GET
    form = BacktestForm(
        request.GET if run else None,
        request=request,
        initial={"deployment": request.GET.get("deployment")},
    )
    context: dict[str, Any] = {"nav": "backtest", "form": form}
    status = 200
    if run and form.is_valid():
        data = form.request_data
        deployment = data["deployment"]
        try:
            result = backtest_run(
                deployment=deployment,
                policy=form.policy,
                start=data["start"].timestamp(),
                end=data["end"].timestamp(),
                step_s=data["step_s"],
            )
        except BacktestError as exc:
            form.add_error(None, str(exc))
            status = 503 if exc.unavailable else 400
        else:
            context.update(
                deployment=deployment,
                outcome=selectors.backtest_outcome(result=result, deployment=deployment),
                permalink=_permalink(request, data),
            )
    elif run:
        status = 400
    chosen = form.cleaned_data.get("deployment") if run else _linked(request)
    saved = selectors.backtest_saved_policy(deployment=chosen) if chosen is not None else None
    if saved is not None:
        form.show_saved(saved)
    context["saved_policy"] = saved
    return render(request, "console/backtests/backtest.html", context, status=status)


def _linked(request: HttpRequest) -> Any:
    """The deployment a link pre-fills (from its page), if the user may see it."""
    pk = ascii_int(request.GET.get("deployment", ""))
    if pk is None:
        return None
    return selectors.deployments_visible(user=request.user).filter(pk=pk).first()
