"""The toggles admin goes through the services: validated, audited, kept in the history,
version bumped; transitions, history and gateway tokens are read only."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from apps.audit.models import AuditEntry
from apps.toggles.models import (
    DegradationPolicy,
    DegradationSwitch,
    DegradationTransition,
    GatewayToken,
    Toggle,
)
from apps.toggles.selectors import team_toggle_version
from apps.toggles.services import policy_pin, toggle_create
from tests.assertions import nothing_stored
from tests.factories.degradation import degradation_policy
from tests.factories.inventory import DeploymentFactory
from tests.factories.slos import SloFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(roster):
    client = Client()
    client.force_login(roster.superuser)
    return client


def _toggle_form(team, **overrides):
    return {"team": team.pk, "key": "max_output_tokens", "preset": "max_output_tokens",
            "description": "", "value": "1024", "off_value": "", "rules": "[]",
            "reason": "", "_save": "Save", **overrides}  # fmt: skip


def test_toggle_added_in_admin__through_the_service_history_version_audit(roster, browser):
    response = browser.post("/admin/toggles/toggle/add/", _toggle_form(roster.team, enabled="on"))
    assert response.status_code == 302, response.content.decode()[:3000]
    toggle = Toggle.objects.get()
    assert (toggle.value, toggle.off_value, toggle.value_type, toggle.enabled) == (
        1024, 0, "number", True,
    )  # fmt: skip
    assert toggle.changes.get().reason == "changed in the admin"
    assert team_toggle_version(team_id=roster.team.pk) == 1
    entry = AuditEntry.objects.get(object_type="toggles.toggle")
    assert (entry.action, entry.source) == ("create", "admin")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"value": "-3"}, "between 0"),
        ({"value": '"many"'}, "expected a number"),
        (
            {
                "rules": '[{"conditions": [{"attribute": "a", "op": "matches", "value": "("}], '
                '"value": 1}]'
            },
            "invalid regular expression",
        ),
        ({"preset": "fallback_deployment", "value": '"ghost"'}, "No deployment named"),
    ],
)
def test_toggle_admin__bad_value__form_error_nothing_stored(roster, browser, overrides, message):
    with nothing_stored():
        response = browser.post(
            "/admin/toggles/toggle/add/", _toggle_form(roster.team, **overrides)
        )
    assert response.status_code == 200
    assert message in response.content.decode()


def test_toggle_changed_in_admin__reason_in_history(roster, browser):
    toggle = toggle_create(team=roster.team, key="streaming", preset="feature", actor=None)
    response = browser.post(
        f"/admin/toggles/toggle/{toggle.pk}/change/",
        {"description": "", "value": "false", "off_value": "true", "rules": "[]",
         "enabled": "on", "reason": "GPU loss", "_save": "Save"},
    )  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:3000]
    toggle.refresh_from_db()
    assert (toggle.enabled, toggle.value) == (True, False)
    assert toggle.changes.first().reason == "GPU loss"


def test_policy_admin__bad_levels__form_error_nothing_stored(roster, browser):
    deployment = DeploymentFactory(team=roster.team)
    slo = SloFactory(deployment=deployment)
    form = {"team": roster.team.pk, "deployment": deployment.pk, "name": "p", "enabled": "on",
            "triggers": f'[{{"kind": "slo_state", "slo": {slo.pk}}}]',
            "levels": '[{"name": "x", "set": {"nope": 1}}]', "min_hold_s": "300",
            "clear_for_s": "600", "max_duration_s": "3600", "_save": "Save"}  # fmt: skip
    with nothing_stored():
        response = browser.post("/admin/toggles/degradationpolicy/add/", form)
    assert response.status_code == 200
    assert "no toggle &#x27;nope&#x27;" in response.content.decode()
    toggle_create(team=roster.team, key="max_output_tokens", preset="max_output_tokens",
                  actor=None)  # fmt: skip
    form["levels"] = '[{"name": "x", "set": {"max_output_tokens": 256}}]'
    response = browser.post("/admin/toggles/degradationpolicy/add/", form)
    assert response.status_code == 302, re.findall(r"errorlist.*", response.content.decode())
    stored = DegradationPolicy.objects.get().levels
    assert stored == [{"name": "x", "set": {"max_output_tokens": 256}}]


def test_policy_admin__delete__overrides_cleared(roster, browser):
    policy = degradation_policy(deployment=DeploymentFactory(team=roster.team), name="chat-degrade")
    policy_pin(policy=policy, level=1, actor=roster.operator, reason="drill")
    response = browser.post(
        f"/admin/toggles/degradationpolicy/{policy.pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 302
    assert not Toggle.objects.filter(override_level__isnull=False).exists()
    listing = browser.get("/admin/toggles/degradationtransition/")
    assert listing.status_code == 200


def test_transitions_tokens_history__listed_read_only(roster, browser):
    policy = degradation_policy(deployment=DeploymentFactory(team=roster.team), name="chat-degrade")
    policy_pin(policy=policy, level=1, actor=roster.operator, reason="drill")
    GatewayToken.objects.create(team=roster.team, name="edge", token_hash="h" * 64,
                                token_prefix="gw_abc")  # fmt: skip
    transition = DegradationTransition.objects.get()
    for path, shown in (
        ("/admin/toggles/degradationtransition/", "pinned: drill"),
        ("/admin/toggles/gatewaytoken/", "gw_abc"),
        ("/admin/toggles/togglechange/", "pinned: drill"),
        (f"/admin/toggles/degradationpolicy/{policy.pk}/change/", "drill"),
    ):
        response = browser.get(path)
        assert response.status_code == 200, path
        assert shown in response.content.decode(), path
    assert browser.get("/admin/toggles/degradationtransition/add/").status_code == 403
    assert browser.get("/admin/toggles/gatewaytoken/add/").status_code == 403
    response = browser.post(f"/admin/toggles/degradationtransition/{transition.pk}/delete/",
                            {"post": "yes"})  # fmt: skip
    assert response.status_code == 403
    assert (
        "h" * 64
        not in browser.get(
            f"/admin/toggles/gatewaytoken/{GatewayToken.objects.get().pk}/change/"
        ).content.decode()
    )


def test_switch_admin__reason_required_change_audited(roster, browser):
    with nothing_stored():
        response = browser.post("/admin/toggles/degradationswitch/add/", {"_save": "Save"})
    assert response.status_code == 200
    response = browser.post(
        "/admin/toggles/degradationswitch/add/", {"reason": "incident 7", "_save": "Save"}
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    switch = DegradationSwitch.objects.get()
    assert (switch.automatic, switch.reason, switch.changed_by) == (False, "incident 7", "root")
    assert AuditEntry.objects.filter(object_type="toggles.degradationswitch").count() == 1


def test_toggles_deleted_in_admin__through_the_service_version_bumped_audited(roster, browser):
    first = toggle_create(team=roster.team, key="streaming", preset="feature", actor=None)
    second = toggle_create(team=roster.team, key="tools", preset="feature", actor=None)
    version = team_toggle_version(team_id=roster.team.pk)
    response = browser.post(
        "/admin/toggles/toggle/",
        {"action": "delete_selected", "_selected_action": [first.pk, second.pk], "post": "yes"},
    )
    assert response.status_code == 302
    assert not Toggle.objects.exists()
    assert team_toggle_version(team_id=roster.team.pk) == version + 2
    deletes = AuditEntry.objects.filter(object_type="toggles.toggle", action="delete")
    assert deletes.count() == 2
