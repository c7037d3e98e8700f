"""Degradation policy services: spec checks against the inventory, applying levels,
dry run, pins and the global switch."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.audit.models import AuditEntry
from apps.toggles.evaluation import evaluate
from apps.toggles.models import DegradationState, DegradationTransition
from apps.toggles.policy_spec import SpecError, level_settings, levels_parse, triggers_parse
from apps.toggles.selectors import team_toggles
from apps.toggles.services import (
    degradation_switch_set,
    policy_clean,
    policy_level_apply,
    policy_pin,
    policy_unpin,
)
from tests.factories.degradation import degradation_policy
from tests.factories.inventory import DeploymentFactory
from tests.factories.slos import SloFactory

pytestmark = pytest.mark.django_db

LEVELS = [
    {"name": "cap tokens", "set": {"max_output_tokens": 512}},
    {"name": "shed low", "set": {"shed_fraction": {"low": 0.2}}},
    {"name": "tighter cap", "set": {"max_output_tokens": 128}},
]


@pytest.fixture
def policy():
    return degradation_policy(deployment=DeploymentFactory(), name="chat-degrade", levels=LEVELS)


def served(policy, key):
    snapshot = team_toggles(team_id=policy.team_id).for_deployment(policy.deployment.name)
    return evaluate(snapshot[key], {}).value


def test_level_settings__cumulative_higher_wins():
    levels = levels_parse(LEVELS)
    assert level_settings(levels, 0) == {}
    assert level_settings(levels, 2) == {"max_output_tokens": 512, "shed_fraction": {"low": 0.2}}
    assert level_settings(levels, 3)["max_output_tokens"] == 128


@pytest.mark.parametrize(
    ("triggers", "message"),
    [
        ([], "non-empty"),
        ([{"kind": "weather"}], "kind: expected one of"),
        ([{"kind": "slo_state"}], "slo: required"),
        ([{"kind": "slo_state", "slo": 1, "states": ["ok"]}], "states"),
        ([{"kind": "alert", "matchers": '{alertname=~"(a"}'}], "matchers"),
        ([{"kind": "signal", "signal": "queue_depth", "threshold": "high"}], "threshold"),
        ([{"kind": "signal", "signal": "x", "threshold": 1, "op": "eq"}], "op"),
        ([{"kind": "alert", "matchers": '{a="b"}', "slo": 3}], "unknown field"),
    ],
)
def test_triggers_parse__invalid__names_the_problem(triggers, message):
    with pytest.raises(SpecError, match=message):
        triggers_parse(triggers)


def test_policy_clean__unknown_toggle_bad_value_foreign_slo_unknown_signal(policy):
    deployment = policy.deployment
    other_slo = SloFactory()
    cases = [
        ({"levels": [{"set": {"nope": 1}}]}, "levels", "no toggle 'nope'"),
        ({"levels": [{"set": {"max_output_tokens": -1}}]}, "levels", "between 0"),
        ({"triggers": [{"kind": "slo_state", "slo": other_slo.pk}]}, "triggers", "not an SLO"),
        ({"triggers": [{"kind": "signal", "signal": "moon", "threshold": 1}]}, "triggers",
         "Unknown signal"),
    ]  # fmt: skip
    for change, field, message in cases:
        spec = {"triggers": policy.triggers, "levels": policy.levels, **change}
        with pytest.raises(ValidationError) as caught:
            policy_clean(team=policy.team, deployment=deployment, **spec)
        assert message in caught.value.message_dict[field][0]


def test_policy_level_apply__up_and_down__overrides_merged_then_cleared(policy):
    first = policy_level_apply(policy=policy, to_level=2, reason="SLO page")
    assert first is not None
    assert (first.from_level, first.to_level, first.dry_run) == (0, 2, False)
    assert served(policy, "max_output_tokens") == 512
    assert served(policy, "shed_fraction") == {"low": 0.2}
    policy_level_apply(policy=policy, to_level=1, reason="clear")
    assert served(policy, "shed_fraction") == {}  # its own off value again
    assert served(policy, "max_output_tokens") == 512
    assert policy_level_apply(policy=policy, to_level=1, reason="same") is None
    policy_level_apply(policy=policy, to_level=0, reason="recovered")
    assert served(policy, "max_output_tokens") == 4096
    state = DegradationState.objects.get(policy=policy)
    assert (state.level, state.degraded_since) == (0, None)
    assert AuditEntry.objects.filter(object_type="toggles.degradationstate").count() == 3


def test_policy_level_apply__dry_run__recorded_nothing_changed(policy):
    policy.dry_run = True
    policy.save()
    transition = policy_level_apply(policy=policy, to_level=3, reason="would degrade")
    assert transition is not None
    assert transition.dry_run
    assert served(policy, "max_output_tokens") == 4096
    assert DegradationState.objects.get(policy=policy).level == 0


def test_policy_level_apply__out_of_range__refused(policy):
    with pytest.raises(ValidationError, match="between 0 and 3"):
        policy_level_apply(policy=policy, to_level=4, reason="x")
    assert not DegradationTransition.objects.exists()


def test_policy_pin__applies_and_records_then_unpin(policy):
    state = policy_pin(policy=policy, level=1, actor=None, reason="GPU quota cut")
    assert (state.level, state.pinned_level, state.pin_reason) == (1, 1, "GPU quota cut")
    assert served(policy, "max_output_tokens") == 512
    with pytest.raises(ValidationError, match="why"):
        policy_pin(policy=policy, level=2, actor=None, reason=" ")
    state = policy_unpin(policy=policy, actor=None, reason="quota back")
    assert (state.level, state.pinned_level) == (1, None)


def test_degradation_switch_set__needs_reason_and_records():
    with pytest.raises(ValidationError):
        degradation_switch_set(automatic=False, actor=None, reason="")
    switch = degradation_switch_set(automatic=False, actor=None, reason="incident 42")
    assert (switch.automatic, switch.reason) == (False, "incident 42")
