"""The console's SLO pages: the list (team scoped, filtered, a fixed query count), one SLO's
page (burn-down, burn-rate conditions, SLI, state history) and how an overspent budget reads."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.accounts.models import Role
from apps.console import selectors
from apps.console.templatetags.console import budget
from apps.slos.models import SloState, SloStatusSample
from tests.factories.accounts import MembershipFactory, TeamFactory
from tests.factories.console import deployment_history
from tests.factories.inventory import DeploymentFactory
from tests.factories.slos import SloFactory, slo_history
from tests.unit.console import logged_in

pytestmark = pytest.mark.django_db

PAGING = ["page:1h/5m"]
FAST_BURN = {"5m": 20.0, "30m": 7.0, "1h": 16.0, "2h": 2.0, "6h": 7.0, "1d": 1.0, "3d": 0.5}


@pytest.fixture
def slo():
    deployment = DeploymentFactory(name="chat-a")
    slo = SloFactory(deployment=deployment, name="chat-ttft")
    slo_history(slo, budget_end=0.4)
    return slo


def _viewer(slo):
    return MembershipFactory(team=slo.team, role=Role.VIEWER).user


def test_budget_filter__left_or_overspent__percentage_or_exhausted():
    assert budget(None) == "\u2013"
    assert budget(0.4) == "40%"
    assert budget(0.0) == "0%"
    assert budget(-0.01) == "exhausted"
    assert budget(-0.5) == "exhausted (overspent 0.5x)"
    assert budget(-22.19) == "exhausted (overspent 22x)"


def test_slo_list__viewer__row_with_state_budget_and_burn_rates(slo):
    body = logged_in(_viewer(slo)).get("/console/slos/").content.decode()
    assert f'href="/console/slos/{slo.pk}/"' in body
    assert "chat-a" in body
    assert "99% of requests with time to first token ≤ 500 ms over 28d" in body
    assert "Within budget" in body
    assert 'data-field="budget">40%<' in body
    assert 'data-field="short-burn">1.50x <span class="meta">over 4m 40s' in body
    assert 'data-field="long-burn">1.10x <span class="meta">over 56m' in body


def test_slo_list__other_team__not_listed(slo):
    other = SloFactory(name="secret-slo")
    slo_history(other)
    body = logged_in(_viewer(slo)).get("/console/slos/").content.decode()
    assert "chat-ttft" in body
    assert "secret-slo" not in body


def test_slo_list__filter_by_state__narrows(slo):
    paging = SloFactory(name="paging-slo", deployment=slo.deployment)
    slo_history(paging, state=SloState.PAGE, burn_rates=FAST_BURN, firing=PAGING)
    client = logged_in(_viewer(slo))
    body = client.get("/console/slos/?state=page").content.decode()
    assert "paging-slo" in body
    assert "chat-ttft" not in body
    partial = client.get("/console/slos/?state=ok", HTTP_HX_REQUEST="true").content.decode()
    assert partial.lstrip().startswith('<div id="slo-list">')
    assert "chat-ttft" in partial
    assert "paging-slo" not in partial


def test_slo_list__label_selected_slo__lists_matching_deployments():
    team = TeamFactory()
    DeploymentFactory(team=team, name="eu-1", labels={"region": "eu"})
    DeploymentFactory(team=team, name="eu-2", labels={"region": "eu"})
    DeploymentFactory(team=team, name="us-1", labels={"region": "us"})
    SloFactory(team=team, deployment=None, deployment_labels={"region": "eu"}, name="eu-slo")
    (row,) = selectors.slo_rows(slos=selectors.slos_visible(user=_viewer_of(team)))
    assert [d.name for d in row.deployments] == ["eu-1", "eu-2"]
    assert row.status is None


def _viewer_of(team):
    return MembershipFactory(team=team, role=Role.VIEWER).user


def _list_queries(user) -> tuple[int, int]:
    user = type(user).objects.get(pk=user.pk)  # a new request: roles not cached
    client = logged_in(user)
    with CaptureQueriesContext(connection) as ctx:
        body = client.get("/console/slos/").content.decode()
    return len(ctx.captured_queries), body.count('<tr>\n  <th scope="row"><a href="/console/slos/')


def _slos(team, n: int) -> None:
    for i in range(n):
        deployment = DeploymentFactory(team=team, labels={"tier": "gold"})
        if i % 2:
            slo = SloFactory(deployment=deployment)
        else:
            slo = SloFactory(team=team, deployment=None, deployment_labels={"tier": "gold"})
        slo_history(slo, minutes=5)


def test_slo_list__3_vs_30_slos__same_query_count():
    team = TeamFactory()
    user = _viewer_of(team)
    _slos(team, 3)
    small, n_small = _list_queries(user)
    _slos(team, 27)
    large, n_large = _list_queries(user)
    assert (n_small, n_large) == (3, 30)
    assert small == large


def test_slo_detail__other_team_or_missing__404(slo):
    other = SloFactory()
    client = logged_in(_viewer(slo))
    assert client.get(f"/console/slos/{other.pk}/").status_code == 404
    assert client.get("/console/slos/999999/").status_code == 404


def test_slo_detail__viewer__burn_down_sli_and_burn_rate_charts_from_samples(slo):
    body = logged_in(_viewer(slo)).get(f"/console/slos/{slo.pk}/").content.decode()
    assert "<h1>chat-ttft" in body
    charts = {
        name: json.loads(body.split(f'id="chart-{name}-data" type="application/json">')[1]
                         .split("</script>")[0])
        for name in ("budget", "sli", "burn")
    }  # fmt: skip
    budget_points = charts["budget"]["y"][0]
    assert len(budget_points) == 120
    assert budget_points[0] == pytest.approx(100.0)
    assert budget_points[-1] == pytest.approx(40.0)
    assert charts["sli"]["labels"] == ["SLI (%)", "objective (%)"]
    assert [v for v in charts["sli"]["y"][1] if v is not None] == [99.0, 99.0]
    assert charts["burn"]["labels"][:2] == ["5m burn rate", "30m burn rate"]
    assert {line["value"] for line in charts["burn"]["lines"]} == {14.4, 6.0, 3.0, 1.0}


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(280, "4m 40s"), (3360, "56m"), (80640, "22h 24m"), (241920, "2d 19h"), (172800, "2d")],
)
def test_duration_text__two_largest_units(seconds, text):
    assert selectors.duration_text(seconds) == text


def test_slo_detail__burn_rate_table__each_condition_with_threshold_and_firing():
    slo = SloFactory()
    slo_history(slo, state=SloState.PAGE, burn_rates=FAST_BURN, firing=PAGING)
    body = logged_in(_viewer(slo)).get(f"/console/slos/{slo.pk}/").content.decode()
    table = body.split('id="burn-rates"')[1].split("</table>")[0]
    rows = table.split("<tr")[2:]
    assert len(rows) == 4
    assert "page <code>1h/5m</code>" in rows[0]
    assert "14.4x" in rows[0]
    assert "56m and 4m 40s" in rows[0]
    assert ">firing<" in rows[0]
    assert "page <code>6h/30m</code>" in rows[1]
    assert "held back" in rows[1]
    assert "ticket <code>1d/2h</code>" in rows[2]
    assert "not firing" in rows[2]
    assert "Fast burn (page)" in body.split('id="history"')[1]


def test_slo_burn_conditions__firing_and_held_back():
    slo = SloFactory()
    status = slo_history(slo, burn_rates=FAST_BURN, firing=PAGING)
    conditions = selectors.slo_burn_conditions(
        status=status, windows=selectors.slo_windows(slo=slo, status=status)
    )
    assert [(c.label, c.firing, c.held_back) for c in conditions] == [
        ("page:1h/5m", True, False),
        ("page:6h/30m", False, True),
        ("ticket:1d/2h", False, False),
        ("ticket:3d/6h", False, False),
    ]
    assert (conditions[0].long_length, conditions[0].short_length) == (
        "56m",
        "4m 40s",
    )  # scaled to 28 days


def test_slo_detail__overspent_budget__exhausted_not_negative_percentage():
    slo = SloFactory(deployment=DeploymentFactory(name="burnt"))
    slo_history(slo, budget_end=-22.19, state=SloState.PAGE)
    client = logged_in(_viewer(slo))
    for url in (f"/console/slos/{slo.pk}/", "/console/slos/"):
        body = client.get(url).content.decode()
        assert "exhausted (overspent 22x)" in body
        assert "-2219%" not in body
        assert "-2219 %" not in body
    overview = client.get("/console/").content.decode()
    assert f'<a href="/console/slos/{slo.pk}/">exhausted (overspent 22x)</a>' in overview


def test_slo_charts__old_samples_left_out_and_many_downsampled(slo):
    now = timezone.now()
    SloStatusSample.objects.create(
        slo=slo, ts=now - timedelta(days=29), state="ok", sli=0.5, budget_remaining=-9
    )
    SloStatusSample.objects.bulk_create(
        SloStatusSample(slo=slo, ts=now - timedelta(days=3, minutes=i), state="ok",
                        sli=0.999, budget_remaining=0.9)
        for i in range(2000)
    )  # fmt: skip
    windows = selectors.slo_windows(slo=slo, status=None)
    charts = selectors.slo_charts(slo=slo, windows=windows, now=now)
    budget_points = charts["budget"]["y"][0]
    assert len(budget_points) == selectors.MAX_POINTS
    # The 29-day-old sample is outside the 28-day window.
    assert min(charts["budget"]["x"]) > (now - timedelta(days=28)).timestamp()


def test_deployment_page__lists_its_slos_with_links(slo):
    deployment_history(slo.deployment, minutes=10)  # adds a second SLO of its own
    unrelated = SloFactory(team=slo.team, deployment=None, deployment_labels={"x": "y"})
    body = (
        logged_in(_viewer(slo)).get(f"/console/deployments/{slo.deployment.pk}/").content.decode()
    )
    section = body.split('id="slos-title"')[1]
    assert f'href="/console/slos/{slo.pk}/"' in section
    assert section.count('<th scope="row"><a href="/console/slos/') == 2
    assert f"/console/slos/{unrelated.pk}/" not in section


def test_nav__links_slos_and_audit(slo):
    body = logged_in(_viewer(slo)).get("/console/slos/").content.decode()
    assert '<a href="/console/slos/" aria-current="page">SLOs</a>' in body
    assert '<a href="/console/audit/">Audit</a>' in body
