"""The console's backtest page: the same validation and scoping as the API's backtest (a
form error, never a 500, and nothing run), and the figures of backtest_run itself."""

from __future__ import annotations

import re
import socket
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from apps.accounts.models import Role
from apps.autoscaling.backtest import backtest_policy, backtest_run
from apps.slos.models import Slo, SloStatusSample
from tests.factories.accounts import MembershipFactory
from tests.factories.autoscaling import AutoscalingPolicyFactory
from tests.factories.console import deployment_history, stored_prometheus
from tests.factories.inventory import DeploymentFactory

pytestmark = pytest.mark.django_db

URL = "/console/backtest/"
TIME = "%Y-%m-%dT%H:%M:%S"


@pytest.fixture
def chat(settings):
    """A deployment with an hour of stored history, its policy (5 queued per replica) and a
    viewer of its team (the API lets any member run a backtest)."""
    deployment = DeploymentFactory(name="chat", min_replicas=1, max_replicas=6)
    deployment_history(deployment, minutes=60)
    AutoscalingPolicyFactory(deployment=deployment)
    viewer = MembershipFactory(team=deployment.team, role=Role.VIEWER).user
    client = Client()
    client.force_login(viewer)
    with stored_prometheus(deployment) as prometheus:
        settings.PROMETHEUS_URL = prometheus.url
        yield deployment, client, prometheus


def _range(minutes_ago: int = 50, minutes: int = 40) -> dict[str, str]:
    start = (timezone.now() - timedelta(minutes=minutes_ago)).replace(microsecond=0)
    return {
        "hours": "",
        "start": start.strftime(TIME),
        "end": (start + timedelta(minutes=minutes)).strftime(TIME),
        "step_s": "30",
    }


def _run(client, deployment, **params):
    query = {"run": "1", "deployment": str(deployment.pk), **_range(), **params}
    return client.get(URL, {k: v for k, v in query.items() if v is not None})


def _figure(body: str, name: str) -> str:
    match = re.search(rf'data-field="{name}"[^>]*>([^<]*)<', body)
    assert match, f"no figure {name}"
    return match.group(1)


def test_backtest__viewer_runs__figures_equal_backtest_run(chat):
    deployment, client, prometheus = chat
    params = _range()
    response = _run(client, deployment, **params)
    assert response.status_code == 200, response.content.decode()[:2000]
    outcome = response.context["outcome"]
    form = response.context["form"]
    expected = backtest_run(
        deployment=deployment,
        policy=backtest_policy(deployment=deployment),
        start=form.request_data["start"].timestamp(),
        end=form.request_data["end"].timestamp(),
        step_s=30,
    ).summary()
    assert outcome.summary == expected
    assert expected["actual_gpu_hours"] is not None  # the stored decisions came back
    body = response.content.decode()
    assert _figure(body, "gpu-hours") == f"{expected['gpu_hours']:,.2f}"
    assert _figure(body, "actual-gpu-hours") == f"{expected['actual_gpu_hours']:,.2f}"
    assert _figure(body, "gpu-hours-known") == f"{expected['gpu_hours_known']:,.2f}"
    difference = expected["gpu_hours_known"] - expected["actual_gpu_hours"]
    assert outcome.gpu_hours_difference == pytest.approx(difference, abs=1e-3)
    assert _figure(body, "actions") == str(expected["actions"])
    chart = outcome.chart
    assert chart["labels"][:2] == ["policy replicas", "actual replicas"]
    assert "queue_length (stored)" in chart["labels"]
    assert all(any(v is not None for v in column) for column in chart["y"])
    assert 'data-chart="chart-backtest-data"' in body
    assert prometheus.hits  # it read the range from Prometheus


def test_backtest__target_override__changes_the_result(chat):
    deployment, client, _ = chat
    saved = _run(client, deployment).context["outcome"].summary
    tighter = (
        _run(client, deployment, targets='[{"signal": "queue_length", "value": 1}]')
        .context["outcome"]
        .summary
    )
    assert tighter["gpu_hours"] > saved["gpu_hours"]
    assert tighter["replicas_max"] > saved["replicas_max"]


def test_backtest__switch_override__applied(chat):
    deployment, client, _ = chat
    form = _run(client, deployment, panic_enabled="on", tolerance="0.3").context["form"]
    assert form.request_data["policy"] == {"panic_enabled": True, "tolerance": 0.3}
    assert form.policy.panic_enabled
    assert form.policy.tolerance == 0.3


def test_backtest__slo_burning_with_boost__boosted_steps_marked(chat):
    deployment, client, _ = chat
    slo = Slo.objects.get(deployment=deployment)
    burning_from = timezone.now() - timedelta(minutes=30)
    SloStatusSample.objects.bulk_create(
        SloStatusSample(
            slo=slo, ts=burning_from + timedelta(minutes=i), state="ok", burn_rates={"5m": 20.0}
        )
        for i in range(5)
    )
    boosted = _run(client, deployment, slo_boost_enabled="on")
    outcome = boosted.context["outcome"]
    assert outcome.slo_boost_steps > 0
    assert len(outcome.chart["markers"]) == outcome.slo_boost_steps
    assert min(outcome.chart["markers"]) >= burning_from.timestamp()
    assert _figure(boosted.content.decode(), "slo-boost") == str(outcome.slo_boost_steps)
    plain = _run(client, deployment, slo_boost_enabled="off")
    assert plain.context["outcome"].chart["markers"] == []
    assert _figure(plain.content.decode(), "slo-boost") == "off"


@pytest.mark.parametrize("forged", ["other-team", "missing"])
def test_backtest__deployment_not_visible__form_error_nothing_runs(chat, forged):
    _, client, prometheus = chat
    other = DeploymentFactory(name="secret")
    AutoscalingPolicyFactory(deployment=other)
    pk = other.pk if forged == "other-team" else other.pk + 1000
    response = client.get(URL, {"run": "1", "deployment": str(pk), **_range()})
    assert response.status_code == 400
    assert "outcome" not in response.context
    assert "Select a valid choice" in str(response.context["form"].errors["deployment"])
    assert "secret" not in response.content.decode()
    assert prometheus.hits == []


@pytest.mark.parametrize(
    ("params", "field", "fragment"),
    [
        ({"start": None}, "start", "Give a start"),
        ({"start": "yesterday"}, "start", "Enter a valid date/time"),
        (_range(minutes_ago=10, minutes=-20), "start", "start before it ends"),
        ({"step_s": "0.5"}, "step_s", "greater than or equal to 1"),
        ({"step_s": "x"}, "step_s", "Enter a number"),
        ({"tolerance": "lots"}, "tolerance", "Enter a number"),
        ({"targets": "[{"}, "targets", "Enter a valid JSON"),
        ({"targets": '[{"signal": "queue_length", "value": 0}]'}, "__all__", "positive"),
        ({"targets": "[]"}, "__all__", "at least one target"),
        ({"scale_up_policies": '[{"type": "pods"}]'}, "__all__", "missing key 'value'"),
        ({"hours": "5"}, "hours", "Select a valid choice"),
    ],
)
def test_backtest__bad_input__400_form_error_nothing_runs(chat, params, field, fragment):
    deployment, client, prometheus = chat
    response = _run(client, deployment, **params)
    assert response.status_code == 400
    assert fragment in " ".join(response.context["form"].errors[field])
    assert "outcome" not in response.context
    assert prometheus.hits == []


def test_backtest__more_steps_than_prometheus_answers__form_error(chat):
    deployment, client, prometheus = chat
    start = timezone.now() - timedelta(days=20)
    response = _run(client, deployment, start=start.strftime(TIME), end=None, step_s="60", hours="")
    assert response.status_code == 400
    assert "larger step" in str(response.context["form"].non_field_errors())
    assert prometheus.hits == []


def test_backtest__no_saved_policy__asks_for_targets(chat):
    deployment, client, _ = chat
    deployment.autoscaling_policy.delete()
    response = _run(client, deployment)
    assert response.status_code == 400
    assert "no scaling policy" in str(response.context["form"].non_field_errors())
    given = _run(client, deployment, targets='[{"signal": "queue_length", "value": 5}]')
    assert given.status_code == 200


def test_backtest__prometheus_unreachable__503_with_reason(chat, settings):
    deployment, client, _ = chat
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        settings.PROMETHEUS_URL = f"http://127.0.0.1:{sock.getsockname()[1]}"
    response = _run(client, deployment)
    assert response.status_code == 503
    assert "Prometheus" in str(response.context["form"].non_field_errors())


def test_backtest__last_hours__permalink_fixes_the_range(chat):
    deployment, client, _ = chat
    response = _run(client, deployment, hours="1", start=None, end=None)
    assert response.status_code == 200
    data = response.context["form"].request_data
    assert data["end"] - data["start"] == timedelta(hours=1)
    link = response.context["permalink"]
    assert f"start={data['start'].strftime(TIME).replace(':', '%3A')}" in link
    assert "hours=&" in link or link.endswith("hours=")


def test_backtest__linked_from_deployment_page__preselected_with_saved_values(chat):
    deployment, client, prometheus = chat
    page = client.get(f"/console/deployments/{deployment.pk}/").content.decode()
    assert f'href="{URL}?deployment={deployment.pk}"' in page
    response = client.get(URL, {"deployment": str(deployment.pk)})
    assert response.status_code == 200
    body = response.content.decode()
    assert f'<option value="{deployment.pk}" selected>' in body
    # The saved targets as the placeholder (PostgreSQL's jsonb orders the keys its own way).
    assert 'placeholder="[{' in body
    assert "&quot;signal&quot;: &quot;queue_length&quot;" in body
    assert "null</textarea>" not in body  # a blank JSON override stays blank
    assert "outcome" not in response.context
    assert prometheus.hits == []


def test_backtest__other_teams_deployment_linked__not_listed_nor_shown(chat):
    _, client, _ = chat
    other = DeploymentFactory(name="secret")
    AutoscalingPolicyFactory(deployment=other, targets=[{"signal": "ttft_p95", "value": 9}])
    body = client.get(URL, {"deployment": str(other.pk)}).content.decode()
    assert "secret" not in body
    assert "ttft_p95" not in body


@pytest.mark.parametrize("odd", ["²", "1²", "9" * 30])
def test_backtest__linked_deployment_not_an_id__page_without_a_choice(chat, odd):
    # "²" passed str.isdigit() and int() refused it (500); 30 digits overflowed the lookup.
    _, client, prometheus = chat
    response = client.get(URL, {"deployment": odd})
    assert response.status_code == 200
    assert response.context["saved_policy"] is None  # no deployment chosen
    assert prometheus.hits == []
