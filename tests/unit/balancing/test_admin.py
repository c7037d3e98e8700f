"""The balancing policy admin goes through the services: validated (the form shows the
field's error, nothing stored) and audited."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from apps.audit.models import AuditEntry
from apps.balancing.models import BalancingPolicy
from apps.balancing.spec import PolicySpec
from tests.assertions import nothing_stored
from tests.factories.inventory import DeploymentFactory

pytestmark = pytest.mark.django_db
ADD = "/admin/balancing/balancingpolicy/add/"


@pytest.fixture
def browser(roster: Any) -> Client:
    client = Client()
    client.force_login(roster.superuser)
    return client


def _form(deployment: Any, **overrides: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        name: value
        for name, value in vars(PolicySpec()).items()
        if not isinstance(value, dict | list)
    }
    form.update(deployment=deployment.pk, weights="{}", backups="[]", _save="Save")
    form.update(overrides)
    return form


def test_policy_added_in_admin__valid__stored_and_audited(roster: Any, browser: Client) -> None:
    chat = DeploymentFactory(team=roster.team, name="chat")
    form = _form(chat, algorithm="least_conn", weights='{"chat-0": 3}')
    response = browser.post(ADD, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    policy = BalancingPolicy.objects.get()
    assert (policy.algorithm, policy.weights) == ("least_conn", {"chat-0": 3})
    assert AuditEntry.objects.get(object_type="balancing.balancingpolicy").team_id == roster.team.pk


def test_policy_added_in_admin__weight_zero__error_on_the_field_nothing_stored(
    roster: Any, browser: Client
) -> None:
    chat = DeploymentFactory(team=roster.team, name="chat")
    with nothing_stored():
        response = browser.post(ADD, _form(chat, weights='{"chat-0": 0}'))
    assert response.status_code == 200
    assert "must be greater than 0" in response.content.decode()
