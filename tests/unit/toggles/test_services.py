"""Toggle services: validation by preset, fallback checks, versions, overrides, history."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.audit.models import AuditEntry
from apps.inventory.models import DeploymentStatus
from apps.toggles.evaluation import Reason, evaluate
from apps.toggles.models import Toggle, ToggleChange
from apps.toggles.selectors import team_toggle_version, team_toggles
from apps.toggles.services import (
    toggle_create,
    toggle_delete,
    toggle_override_clear,
    toggle_override_set,
    toggle_update,
    toggle_version_listen,
)
from tests.factories.accounts import TeamFactory, UserFactory
from tests.factories.inventory import DeploymentFactory

pytestmark = pytest.mark.django_db


def test_toggle_create__preset__type_and_off_value_filled_version_bumped():
    team = TeamFactory()
    toggle = toggle_create(team=team, key="max_output_tokens", preset="max_output_tokens",
                           value=512, actor=None)  # fmt: skip
    assert (toggle.value_type, toggle.off_value, toggle.value) == ("number", 0, 512)
    assert team_toggle_version(team_id=team.pk) == 1
    assert ToggleChange.objects.filter(toggle=toggle).count() == 1
    assert AuditEntry.objects.filter(object_type="toggles.toggle", action="create").exists()


@pytest.mark.parametrize(
    ("preset", "value", "field", "message"),
    [
        ("max_output_tokens", -1, "value", "between 0"),
        ("max_output_tokens", 1.5, "value", "whole number"),
        ("max_output_tokens", "512", "value", "number"),
        ("shed_fraction", {"low": 1.5}, "value", "between 0 and 1"),
        ("shed_fraction", [0.2], "value", "priority class"),
        ("shed_fraction", {"low priority": 0.2}, "value", "letters, digits"),
        ("maintenance", "x" * 501, "value", "longer than 500"),
        ("fallback_deployment", "nowhere", "value", "No deployment named 'nowhere'"),
    ],
)
def test_toggle_create__bad_value__validation_error(preset, value, field, message):
    team = TeamFactory()
    with pytest.raises(ValidationError) as caught:
        toggle_create(team=team, key="t", preset=preset, value=value, actor=None)
    assert message in " ".join(caught.value.message_dict[field])
    assert not Toggle.objects.exists()


def test_toggle_create__fallback_rules__checked_too():
    team = TeamFactory()
    with pytest.raises(ValidationError) as caught:
        toggle_create(team=team, key="fb", preset="fallback_deployment", value="", actor=None,
                      rules=[{"value": "ghost"}])  # fmt: skip
    assert "ghost" in caught.value.message_dict["rules"][0]


def test_toggle_create__fallback_of_another_team_or_not_serving__refused():
    team, other = TeamFactory(), TeamFactory()
    theirs = DeploymentFactory(team=other, status=DeploymentStatus.ACTIVE)
    idle = DeploymentFactory(team=team, status=DeploymentStatus.PROVISIONING)
    mine = DeploymentFactory(team=team, status=DeploymentStatus.ACTIVE)
    for name, message in ((theirs.name, "No deployment named"), (idle.name, "not serving")):
        with pytest.raises(ValidationError, match=message):
            toggle_create(team=team, key="fb", preset="fallback_deployment", value=name,
                          actor=None)  # fmt: skip
    with pytest.raises(ValidationError, match="itself"):
        toggle_create(team=team, deployment=mine, key="fb", preset="fallback_deployment",
                      value=mine.name, actor=None)  # fmt: skip
    toggle = toggle_create(team=team, key="fb", preset="fallback_deployment", value=mine.name,
                           actor=None)  # fmt: skip
    assert toggle.value == mine.name


def test_toggle_create__deployment_of_another_team__refused():
    team = TeamFactory()
    with pytest.raises(ValidationError, match="another team"):
        toggle_create(team=team, deployment=DeploymentFactory(), key="cache_only",
                      preset="cache_only", actor=None)  # fmt: skip


def test_toggle_create__custom_needs_type_and_off_value():
    team = TeamFactory()
    with pytest.raises(ValidationError, match="boolean, number"):
        toggle_create(team=team, key="x", value=1, actor=None)
    with pytest.raises(ValidationError, match="off value"):
        toggle_create(team=team, key="x", value_type="number", value=1, actor=None)


def test_toggle_create__same_key_twice__refused_per_scope():
    team = TeamFactory()
    deployment = DeploymentFactory(team=team)
    toggle_create(team=team, key="cache_only", preset="cache_only", actor=None)
    toggle_create(team=team, deployment=deployment, key="cache_only", preset="cache_only",
                  actor=None)  # fmt: skip
    with pytest.raises(ValidationError, match="already has"):
        toggle_create(team=team, key="cache_only", preset="cache_only", actor=None)


def test_toggle_update__enable_and_rules__served_and_recorded():
    team = TeamFactory()
    user = UserFactory()
    toggle = toggle_create(team=team, key="streaming", preset="feature", value=False,
                           actor=None)  # fmt: skip
    toggle_update(toggle=toggle, actor=user, enabled=True, reason="GPU shortage",
                  rules=[{"conditions": [{"attribute": "tier", "op": "eq", "value": "pro"}],
                          "value": True}])  # fmt: skip
    snapshot = team_toggles(team_id=team.pk)
    assert snapshot.version == 2
    definition = snapshot.team["streaming"]
    assert evaluate(definition, {"tier": "free"}).value is False
    assert evaluate(definition, {"tier": "pro"}).reason == Reason.TARGETING_MATCH
    change = ToggleChange.objects.filter(toggle=toggle).first()
    assert change is not None
    assert (change.actor, change.reason) == (user.username, "GPU shortage")


def test_toggle_update__bad_regex__refused_nothing_changed():
    team = TeamFactory()
    toggle = toggle_create(team=team, key="cache_only", preset="cache_only", actor=None)
    bad = [{"conditions": [{"attribute": "tenant", "op": "matches", "value": "(x"}],
            "value": True}]  # fmt: skip
    with pytest.raises(ValidationError, match="regular expression"):
        toggle_update(toggle=toggle, actor=None, rules=bad)
    assert team_toggle_version(team_id=team.pk) == 1
    toggle.refresh_from_db()
    assert toggle.rules == []


def test_toggle_override__set_then_clear__served_then_own_value_back():
    team = TeamFactory()
    toggle = toggle_create(team=team, key="max_output_tokens", preset="max_output_tokens",
                           value=4096, enabled=True, actor=None)  # fmt: skip
    toggle_override_set(toggle=toggle, value=256, level=1, source="policy:p", reason="SLO page")
    definition = team_toggles(team_id=team.pk).team["max_output_tokens"]
    assert evaluate(definition, {}).value == 256
    # The same override again changes nothing (no new version).
    version = team_toggle_version(team_id=team.pk)
    toggle_override_set(toggle=toggle, value=256, level=1, source="policy:p", reason="again")
    assert team_toggle_version(team_id=team.pk) == version
    with pytest.raises(ValidationError):
        toggle_override_set(toggle=toggle, value=-5, level=2, source="policy:p", reason="x")
    toggle_override_clear(toggle=toggle, source="policy:p", reason="recovered")
    assert evaluate(team_toggles(team_id=team.pk).team["max_output_tokens"], {}).value == 4096
    assert list(
        ToggleChange.objects.filter(toggle=toggle).order_by("id").values_list("level", "value")
    ) == [(None, 4096), (1, 256), (None, 4096)]


def test_team_toggles__deployment_toggle__wins_over_team_toggle():
    team = TeamFactory()
    deployment = DeploymentFactory(team=team)
    toggle_create(team=team, key="max_output_tokens", preset="max_output_tokens", value=100,
                  enabled=True, actor=None)  # fmt: skip
    toggle_create(team=team, deployment=deployment, key="max_output_tokens",
                  preset="max_output_tokens", value=50, enabled=True, actor=None)  # fmt: skip
    snapshot = team_toggles(team_id=team.pk)
    assert evaluate(snapshot.for_deployment(None)["max_output_tokens"], {}).value == 100
    assert evaluate(snapshot.for_deployment(deployment.name)["max_output_tokens"], {}).value == 50


def test_version_listeners__told_after_commit(django_capture_on_commit_callbacks):
    team = TeamFactory()
    heard: list[tuple[int, int]] = []
    toggle_version_listen(lambda team_id, version: heard.append((team_id, version)))
    with django_capture_on_commit_callbacks(execute=True):
        toggle = toggle_create(team=team, key="cache_only", preset="cache_only", actor=None)
    with django_capture_on_commit_callbacks(execute=True):
        toggle_delete(toggle=toggle, actor=None)
    assert [(t, v) for t, v in heard if t == team.pk] == [(team.pk, 1), (team.pk, 2)]
