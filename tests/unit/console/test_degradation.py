"""The deployment page's degradation section: current levels and the toggles that apply
with what they serve, flips and pins with a required reason through the toggles
services (scoped like the other controls), the history on the charts, and the fleet
overview's degradation column in one query for the whole page."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.accounts.models import Role
from apps.console import selectors
from apps.console.templatetags.console import DASH
from apps.toggles.evaluation import evaluate
from apps.toggles.models import DegradationPolicy, DegradationState, Toggle
from apps.toggles.selectors import team_toggles
from apps.toggles.services import (
    degradation_switch_set,
    policy_level_apply,
    policy_pin,
    toggle_create,
)
from tests.assertions import nothing_stored
from tests.factories.accounts import MembershipFactory, TeamFactory
from tests.factories.alerts import ChannelFactory
from tests.factories.console import deployment_history
from tests.factories.degradation import degradation_policy
from tests.factories.inventory import DeploymentFactory
from tests.factories.slos import SloFactory

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def policy():
    deployment = DeploymentFactory(name="chat-a")
    return degradation_policy(deployment=deployment, name="chat-degrade")


def _another_policy(team, name: str) -> DegradationPolicy:
    """A policy of a new deployment of ``team``, whose one level caps the team's
    ``max_output_tokens`` (made by :func:`degradation_policy` before)."""
    deployment = DeploymentFactory(team=team)
    return DegradationPolicy.objects.create(
        team=team, deployment=deployment, name=name,
        levels=[{"name": "cap tokens", "set": {"max_output_tokens": 512}}],
        triggers=[{"kind": "slo_state", "slo": SloFactory(deployment=deployment).pk}],
    )  # fmt: skip


def _member(policy, role):
    return MembershipFactory(team=policy.team, role=role).user


def _served(policy, key):
    definitions = team_toggles(team_id=policy.team_id).for_deployment(policy.deployment.name)
    return evaluate(definitions[key], {}).value


def _page(client, policy) -> str:
    response = client.get(f"/console/deployments/{policy.deployment_id}/")
    assert response.status_code == 200
    return response.content.decode()


def _toggle(policy, key) -> Toggle:
    return Toggle.objects.get(team=policy.team, key=key)


def test_section__levels_toggles_served_values_and_history_shown(policy):
    policy_pin(policy=policy, level=1, actor=None, reason="GPU loss")
    body = _page(_client(_member(policy, Role.VIEWER)), policy)
    section = body[body.index('id="degradation"') :]
    assert "<strong>1</strong> — cap tokens" in section
    assert "pinned at 1 by system" in section
    assert "GPU loss" in section
    assert 'data-toggle="max_output_tokens"' in section
    assert 'data-toggle="shed_fraction@deployment"' in section
    assert "<code>512</code>" in section  # the level's override, not the toggle's 4096
    assert "STATIC" in section or "DISABLED" in section
    assert "level 0 → 1" in section  # the history
    assert "Pin level" not in section
    assert "Turn off" not in section


def test_section__operator__forms_with_csrf_and_required_reason(policy):
    client = Client(enforce_csrf_checks=True)
    client.force_login(_member(policy, Role.OPERATOR))
    body = _page(client, policy)
    section = body[body.index('id="degradation"') :]
    for action in ("toggles/", "/pin/"):
        assert action in section
    assert section.count("csrfmiddlewaretoken") >= 3
    assert section.count('name="reason" required') >= 3
    assert "data-confirm=" in section


def test_flip__with_reason__served_value_changes_history_recorded(policy):
    toggle = _toggle(policy, "max_output_tokens")
    client = _client(_member(policy, Role.OPERATOR))
    response = client.post(
        f"/console/deployments/{policy.deployment_id}/toggles/{toggle.pk}/flip/",
        {"enabled": "false", "reason": "rollback"},
    )
    assert response.status_code == 302
    assert _served(policy, "max_output_tokens") == 0
    change = toggle.changes.first()
    assert (change.reason, change.enabled) == ("rollback", False)
    body = _page(client, policy)
    assert "Done; recorded in the audit log." in body
    assert "rollback" in body[body.index('id="degradation-history"') :]


@pytest.mark.parametrize(
    "data", [{"enabled": "false"}, {"enabled": "false", "reason": "  "}, {"reason": "x"}]
)
def test_flip__missing_reason_or_state__error_message_nothing_changed(policy, data):
    toggle = _toggle(policy, "max_output_tokens")
    client = _client(_member(policy, Role.OPERATOR))
    with nothing_stored():
        response = client.post(
            f"/console/deployments/{policy.deployment_id}/toggles/{toggle.pk}/flip/",
            data,
            follow=True,
        )
    assert response.status_code == 200
    assert 'class="message error"' in response.content.decode()
    assert _served(policy, "max_output_tokens") == 4096


def test_flip__viewer_403_outsider_404_toggle_of_another_deployment_404(policy):
    toggle = _toggle(policy, "max_output_tokens")
    url = f"/console/deployments/{policy.deployment_id}/toggles/{toggle.pk}/flip/"
    data = {"enabled": "false", "reason": "x"}
    other = DeploymentFactory(team=policy.team)
    elsewhere = toggle_create(team=policy.team, deployment=other, key="streaming",
                              preset="feature", actor=None)  # fmt: skip
    outsider = MembershipFactory(team=TeamFactory(), role=Role.ADMIN).user
    viewer, operator = _member(policy, Role.VIEWER), _member(policy, Role.OPERATOR)
    with nothing_stored():
        assert _client(viewer).post(url, data).status_code == 403
        assert _client(outsider).post(url, data).status_code == 404
        response = _client(operator).post(
            f"/console/deployments/{policy.deployment_id}/toggles/{elsewhere.pk}/flip/", data
        )
        assert response.status_code == 404


def test_pin__level_applied_and_held_then_unpinned(policy):
    client = _client(_member(policy, Role.OPERATOR))
    base = f"/console/deployments/{policy.deployment_id}/degradation/{policy.pk}"
    response = client.post(f"{base}/pin/", {"level": "2", "minutes": "30", "reason": "drill"})
    assert response.status_code == 302
    state = DegradationState.objects.get(policy=policy)
    assert (state.level, state.pinned_level, state.pin_reason) == (2, 2, "drill")
    assert state.pinned_until > timezone.now() + timedelta(minutes=29)
    assert _served(policy, "shed_fraction") == {"low": 0.2}
    assert "pinned at 2" in _page(client, policy)
    response = client.post(f"{base}/unpin/", {"reason": "over"})
    assert response.status_code == 302
    state.refresh_from_db()
    assert (state.pinned_level, state.level) == (None, 2)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"level": "3", "reason": "x"}, "level: Level must be between 0 and 2."),
        ({"level": "1"}, "reason: This field is required."),
        ({"level": "-1", "reason": "x"}, "level: "),
        ({"level": "1", "minutes": "0", "reason": "x"}, "minutes: "),
    ],
)
def test_pin__bad_input__error_message_nothing_changed(policy, data, message):
    client = _client(_member(policy, Role.OPERATOR))
    url = f"/console/deployments/{policy.deployment_id}/degradation/{policy.pk}/pin/"
    with nothing_stored():
        response = client.post(url, data, follow=True)
    assert message in response.content.decode()
    assert _served(policy, "max_output_tokens") == 4096


def test_pin__policy_of_another_deployment__404(policy):
    other = _another_policy(policy.team, "other")
    client = _client(_member(policy, Role.OPERATOR))
    with nothing_stored():
        response = client.post(
            f"/console/deployments/{policy.deployment_id}/degradation/{other.pk}/pin/",
            {"level": "1", "reason": "x"},
        )
    assert response.status_code == 404


def test_section__switch_off__said(policy):
    degradation_switch_set(automatic=False, actor=None, reason="incident")
    body = _page(_client(_member(policy, Role.VIEWER)), policy)
    assert "Automatic degradation is switched off" in body


def test_charts__level_steps_and_annotations_of_transitions_and_toggle_changes(policy):
    now = timezone.now()
    deployment_history(policy.deployment, minutes=30, now=now)
    policy_level_apply(
        policy=policy, to_level=1, reason="slo page", now=now - timedelta(minutes=20)
    )
    policy_level_apply(policy=policy, to_level=2, reason="still", now=now - timedelta(minutes=10))
    policy_level_apply(policy=policy, to_level=1, reason="dry", dry_run=True, now=now)
    charts = selectors.deployment_charts(deployment=policy.deployment, range_key="1h", now=now)
    degradation = charts["degradation"]
    assert degradation["labels"] == ["level: chat-degrade"]
    assert degradation["y_max"] == 2  # the policy's two levels
    levels = [v for v in degradation["y"][0] if v is not None]
    assert levels == [0.0, 0.0, 1.0, 1.0, 2.0, 2.0]  # a step line up to the current level
    labels = [a["label"] for a in degradation["annotations"]]
    assert "chat-degrade: 0→1" in labels
    assert "chat-degrade: 1→2" in labels
    assert "chat-degrade: 2→1 (dry run)" in labels
    assert "max_output_tokens level 1" in labels  # the toggle change the level made
    assert charts["demand"]["annotations"] == degradation["annotations"]
    assert {a["kind"] for a in degradation["annotations"]} == {"level", "dry-run", "toggle"}


def test_charts__no_policy__no_degradation_chart():
    deployment = DeploymentFactory()
    charts = selectors.deployment_charts(deployment=deployment, range_key="1h")
    assert "degradation" not in charts
    assert charts["demand"]["annotations"] == []


def test_chart_json__annotations_rendered_in_the_page(policy):
    policy_pin(policy=policy, level=1, actor=None, reason="drill")
    body = _page(_client(_member(policy, Role.VIEWER)), policy)
    start = body.index('id="chart-degradation-data"')
    data = json.loads(body[body.index(">", start) + 1 : body.index("</script>", start)])
    assert {"level", "toggle"} <= {a["kind"] for a in data["annotations"]}


# --------------------------------------------------------------------------- overview


def test_overview__degradation_column__highest_level_or_dash():
    team = TeamFactory()
    user = MembershipFactory(team=team, role=Role.VIEWER).user
    degraded = DeploymentFactory(team=team, name="degraded")
    first = degradation_policy(deployment=degraded, name="first")
    DeploymentFactory(team=team, name="plain")
    policy_pin(policy=first, level=2, actor=None, reason="x")
    rows = {
        row.deployment.name: row.degradation
        for row in selectors.overview_rows(deployments=selectors.deployments_visible(user=user))
    }
    assert rows == {"degraded": 2, "plain": None}
    body = _client(user).get("/console/").content.decode()
    assert 'data-field="degradation">2<' in body
    assert f'data-field="degradation">{DASH}<' in body


def _overview_queries(user) -> int:
    with CaptureQueriesContext(connection) as ctx:
        selectors.overview_rows(deployments=selectors.deployments_visible(user=user))
    return len(ctx.captured_queries)


def test_overview__degradation_column__one_query_whatever_the_fleet():
    team = TeamFactory()
    user = MembershipFactory(team=team, role=Role.VIEWER).user
    degradation_policy(deployment=DeploymentFactory(team=team), name="p0")
    for i in range(1, 3):
        _another_policy(team, f"p{i}")
    small = _overview_queries(user)
    for i in range(3, 12):
        policy_pin(policy=_another_policy(team, f"p{i}"), level=1, actor=None, reason="x")
    user = type(user).objects.get(pk=user.pk)
    assert _overview_queries(user) == small


def test_section__dry_run_policy__says_where_it_would_stand(policy):
    policy.dry_run = True
    policy.save()
    policy_level_apply(policy=policy, to_level=2, reason="would degrade")
    body = _page(_client(_member(policy, Role.VIEWER)), policy)
    assert "would be at level 2" in body


def test_channel_deliveries__level_change__named_as_such(policy):
    ChannelFactory(team=policy.team, name="ops", webhook_url="https://hooks.example/ops")
    policy_level_apply(policy=policy, to_level=1, reason="slo page")
    user = _member(policy, Role.VIEWER)
    (item,) = selectors.channel_deliveries(user=user)
    assert [row.what for row in item.deliveries] == ["degradation level change"]
