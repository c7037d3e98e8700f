"""The toggles management API: team scoping and roles, creation with presets, changes and
flips with reasons kept in the history, degradation policies with pins and transitions,
the global switch, bad input answered 400 naming the field with nothing stored, and
pinned query counts on the lists."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.audit.models import AuditEntry
from apps.inventory.models import DeploymentStatus
from apps.toggles.evaluation import evaluate
from apps.toggles.models import (
    DegradationPolicy,
    DegradationState,
    DegradationSwitch,
    Toggle,
    ToggleChange,
)
from apps.toggles.selectors import team_toggle_version, team_toggles
from apps.toggles.services import policy_pin, toggle_create
from tests.assertions import nothing_stored
from tests.factories.degradation import TWO_LEVELS, degradation_policy
from tests.factories.inventory import DeploymentFactory
from tests.factories.slos import SloFactory

pytestmark = pytest.mark.django_db

TOGGLES = "/api/v1/toggles/"
POLICIES = "/api/v1/toggles/policies/"
SWITCH = "/api/v1/toggles/switch/"


def policy_body(target, **overrides: Any) -> dict[str, Any]:
    """A valid policy body for ``target`` (with a new SLO of it as its trigger)."""
    slo = SloFactory(deployment=target)
    return {
        "deployment": target.pk,
        "name": "chat-degrade",
        "triggers": [{"kind": "slo_state", "slo": slo.pk}],
        "levels": TWO_LEVELS,
        **overrides,
    }


def served(team_id: int, key: str, deployment_name: str | None = None) -> Any:
    definitions = team_toggles(team_id=team_id).for_deployment(deployment_name)
    return evaluate(definitions[key], {}).value


def _toggle(team, **kwargs: Any) -> Toggle:
    defaults: dict[str, Any] = {"key": "max_output_tokens", "preset": "max_output_tokens",
                                "value": 2048, "enabled": True, "actor": None}  # fmt: skip
    return toggle_create(team=team, **{**defaults, **kwargs})


# --------------------------------------------------------------------------- toggles


def test_create__preset__type_and_off_value_filled_history_and_audit(roster, client_for):
    deployment = DeploymentFactory(team=roster.team)
    response = client_for(roster.operator).post(
        TOGGLES,
        {
            "team": roster.team.pk,
            "deployment": deployment.pk,
            "key": "max_output_tokens",
            "preset": "max_output_tokens",
            "value": 1024,
            "enabled": True,
            "reason": "launch",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["value_type"], body["off_value"], body["value"], body["served"]) == (
        "number", 0, 1024, 1024,
    )  # fmt: skip
    assert "reason" not in body
    toggle = Toggle.objects.get(pk=body["id"])
    assert toggle.changes.get().reason == "launch"
    assert AuditEntry.objects.filter(object_type="toggles.toggle", action="create").count() == 1
    assert served(roster.team.pk, "max_output_tokens", deployment.name) == 1024


def test_create__preset_without_value__off_value_served(roster, client_for):
    response = client_for(roster.operator).post(
        TOGGLES, {"team": roster.team.pk, "key": "streaming", "preset": "feature"}, format="json"
    )
    assert response.status_code == 201, response.content
    assert (response.json()["value"], response.json()["served"]) == (True, True)


def test_list__filters_by_team_deployment_preset_key_scope(roster, client_for):
    deployment = DeploymentFactory(team=roster.team)
    _toggle(roster.team)
    _toggle(roster.team, deployment=deployment)
    toggle_create(team=roster.team, key="streaming", preset="feature", actor=None)
    _toggle(roster.other_team)
    client = client_for(roster.viewer)

    def keys(query: str) -> list[tuple[str, int | None]]:
        rows = client.get(f"{TOGGLES}?{query}").json()["results"]
        return sorted(((row["key"], row["deployment"]) for row in rows), key=str)

    assert len(keys("")) == 3
    assert keys(f"deployment={deployment.pk}") == [("max_output_tokens", deployment.pk)]
    assert keys("preset=feature") == [("streaming", None)]
    assert keys("key=streaming") == [("streaming", None)]
    assert keys("key__icontains=OUTPUT") == [("max_output_tokens", deployment.pk),
                                              ("max_output_tokens", None)]  # fmt: skip
    assert keys("team_wide=true") == [("max_output_tokens", None), ("streaming", None)]
    assert keys(f"team={roster.team.pk}") == keys("")
    other = client.get(f"{TOGGLES}?team={roster.other_team.pk}")
    assert other.status_code == 400  # another team's id reads as unknown


def test_update__value_with_reason__served_and_history(roster, client_for):
    toggle = _toggle(roster.team)
    response = client_for(roster.operator).patch(
        f"{TOGGLES}{toggle.pk}/", {"value": 256, "reason": "GPU shortage"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["served"] == 256
    assert served(roster.team.pk, "max_output_tokens") == 256
    history = client_for(roster.viewer).get(f"{TOGGLES}{toggle.pk}/history/").json()
    assert [(row["reason"], row["value"]) for row in history["results"]] == [
        ("GPU shortage", 256), ("created", 2048),
    ]  # fmt: skip
    assert history["results"][0]["actor"] == "alpha-operator"


@pytest.mark.parametrize(
    ("field", "value"),
    [("key", "other"), ("preset", "feature"), ("value_type", "string")],
)
def test_update__fixed_field__400_naming_it(roster, client_for, field, value):
    toggle = _toggle(roster.team)
    with nothing_stored():
        response = client_for(roster.operator).patch(
            f"{TOGGLES}{toggle.pk}/", {field: value}, format="json"
        )
    assert response.status_code == 400
    assert "Fixed" in response.json()["errors"][field][0]


def test_flip__with_reason__off_value_served_version_bumped_audited(roster, client_for):
    toggle = _toggle(roster.team)
    version = team_toggle_version(team_id=roster.team.pk)
    response = client_for(roster.operator).post(
        f"{TOGGLES}{toggle.pk}/flip/", {"enabled": False, "reason": "rollback"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert (response.json()["enabled"], response.json()["served"]) == (False, 0)
    assert served(roster.team.pk, "max_output_tokens") == 0
    assert team_toggle_version(team_id=roster.team.pk) == version + 1
    change = ToggleChange.objects.filter(toggle=toggle).first()
    assert change is not None
    assert (change.reason, change.enabled, change.actor) == ("rollback", False, "alpha-operator")
    entry = AuditEntry.objects.filter(object_type="toggles.toggle", action="update").get()
    assert entry.changes["reason"] == "rollback"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"enabled": False}, "reason"),
        ({"enabled": False, "reason": "   "}, "reason"),
        ({"enabled": False, "reason": "x" * 1001}, "reason"),
        ({"reason": "why"}, "enabled"),
        ({"enabled": "maybe", "reason": "why"}, "enabled"),
    ],
)
def test_flip__bad_body__400_nothing_changed(roster, client_for, body, field):
    toggle = _toggle(roster.team)
    with nothing_stored():
        response = client_for(roster.operator).post(
            f"{TOGGLES}{toggle.pk}/flip/", body, format="json"
        )
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert Toggle.objects.get(pk=toggle.pk).enabled is True


def test_delete__toggle_gone_version_bumped(roster, client_for):
    toggle = _toggle(roster.team)
    version = team_toggle_version(team_id=roster.team.pk)
    response = client_for(roster.operator).delete(f"{TOGGLES}{toggle.pk}/")
    assert response.status_code == 204
    assert not Toggle.objects.exists()
    assert team_toggle_version(team_id=roster.team.pk) == version + 1
    assert client_for(roster.operator).get(f"{TOGGLES}{toggle.pk}/").status_code == 404


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("patch", "", {"value": 1}),
        ("delete", "", None),
        ("post", "flip/", {"enabled": False, "reason": "x"}),
    ],
)
def test_roles__viewer_403_outsider_404_operator_ok(roster, client_for, method, suffix, body):
    toggle = _toggle(roster.team)
    url = f"{TOGGLES}{toggle.pk}/{suffix}"
    for user, expected in ((roster.viewer, 403), (roster.outsider, 404)):
        with nothing_stored():
            response = getattr(client_for(user), method)(url, body, format="json")
        assert response.status_code == expected, (user, response.content)
    assert client_for(roster.viewer).get(f"{TOGGLES}{toggle.pk}/history/").status_code == 200
    assert client_for(roster.outsider).get(f"{TOGGLES}{toggle.pk}/history/").status_code == 404
    response = getattr(client_for(roster.operator), method)(url, body, format="json")
    assert response.status_code in (200, 204), response.content


def test_create__viewer_403_other_team_400(roster, client_for):
    body = {"team": roster.team.pk, "key": "streaming", "preset": "feature"}
    with nothing_stored():
        assert client_for(roster.viewer).post(TOGGLES, body, format="json").status_code == 403
        response = client_for(roster.outsider).post(TOGGLES, body, format="json")
    assert response.status_code == 400
    assert "team" in response.json()["errors"]


BAD_TOGGLES = [
    # (body overrides, field, message fragment)
    ({"value": "512"}, "value", "number"),
    ({"value": -1}, "value", "between 0"),
    ({"value": 10_000_001}, "value", "between 0"),
    ({"value": 1.5}, "value", "whole number"),
    ({"value": True}, "value", "number"),
    ({"value": 1e308 * 10}, None, None),  # inf is not JSON: the body itself is refused
    ({"preset": "shed_fraction", "value": {"low": 2}}, "value", "between 0 and 1"),
    ({"preset": "shed_fraction", "value": [0.2]}, "value", "priority class"),
    ({"preset": "maintenance", "value": "x" * 501}, "value", "longer than 500"),
    ({"preset": "fallback_deployment", "value": "ghost"}, "value", "No deployment named 'ghost'"),
    ({"preset": "weather", "value": 1}, "preset", "not a valid choice"),
    ({"preset": "custom", "value": 1}, "value_type", "boolean, number"),
    ({"preset": "custom", "value_type": "number", "value": 1}, "off_value", "off value"),
    (
        {"preset": "custom", "value_type": "number", "value": 1, "off_value": "0"},
        "off_value",
        "number",
    ),
    ({"value_type": "string"}, "value_type", "is a number"),
    (
        {
            "rules": [
                {
                    "conditions": [{"attribute": "tenant", "op": "matches", "value": "(a"}],
                    "value": 1,
                }
            ]
        },
        "rules",
        "invalid regular expression",
    ),
    (
        {"rules": [{"conditions": [{"attribute": "tier", "op": "gt", "value": "x"}], "value": 1}]},
        "rules",
        "compares numbers",
    ),
    ({"rules": [{"value": "1"}]}, "rules", "expected a number"),
    ({"rules": [{"split": [{"value": 1, "weight": -1}]}]}, "rules", ">= 0"),
    ({"rules": "all"}, "rules", "expected a list"),
    ({"key": "bad key!"}, "key", "Letters, digits"),
    ({"key": "k" * 101}, "key", "no more than 100"),
    ({"key": ""}, "key", "blank"),
    ({"team": None}, "team", "null"),
    ({"team": "alpha"}, "team", "Incorrect type"),
    ({"team": 10**30}, "team", ""),
    ({"enabled": "perhaps"}, "enabled", "valid boolean"),
    ({"description": ["x"]}, "description", "valid string"),
]


@pytest.mark.parametrize(("overrides", "field", "message"), BAD_TOGGLES)
def test_create__bad_input__400_naming_the_field_nothing_stored(
    roster, client_for, overrides, field, message
):
    DeploymentFactory(team=roster.other_team, name="theirs", status=DeploymentStatus.ACTIVE)
    body = {"team": roster.team.pk, "key": "max_output_tokens", "preset": "max_output_tokens",
            "value": 512, **overrides}  # fmt: skip
    client = client_for(roster.operator)
    with nothing_stored():
        if field is None:
            response = client.post(TOGGLES, b'{"value": Infinity}', content_type="application/json")
        else:
            response = client.post(TOGGLES, body, format="json")
    assert response.status_code == 400, response.content
    if field is not None:
        errors = response.json()["errors"]
        assert field in errors, errors
        assert message in " ".join(errors[field]), errors


@pytest.mark.parametrize(
    ("where", "message"),
    [("theirs", "No deployment named 'theirs'"), ("idle", "not serving"), ("self", "itself")],
)
def test_create__fallback_elsewhere_idle_or_itself__400_on_value(
    roster, client_for, where, message
):
    DeploymentFactory(team=roster.other_team, name="theirs", status=DeploymentStatus.ACTIVE)
    DeploymentFactory(team=roster.team, name="idle", status=DeploymentStatus.PROVISIONING)
    mine = DeploymentFactory(team=roster.team, name="self", status=DeploymentStatus.ACTIVE)
    body = {"team": roster.team.pk, "deployment": mine.pk, "key": "fallback",
            "preset": "fallback_deployment", "value": where}  # fmt: skip
    with nothing_stored():
        response = client_for(roster.operator).post(TOGGLES, body, format="json")
    assert response.status_code == 400
    assert message in response.json()["errors"]["value"][0]


def test_create__deployment_of_another_team__400_on_deployment(roster, client_for):
    theirs = DeploymentFactory(team=roster.other_team)
    body = {"team": roster.team.pk, "deployment": theirs.pk, "key": "streaming",
            "preset": "feature"}  # fmt: skip
    with nothing_stored():
        response = client_for(roster.operator).post(TOGGLES, body, format="json")
    assert response.status_code == 400
    assert "deployment" in response.json()["errors"]


def test_create__key_taken__400_on_key(roster, client_for):
    _toggle(roster.team)
    body = {"team": roster.team.pk, "key": "max_output_tokens", "preset": "max_output_tokens"}
    with nothing_stored():
        response = client_for(roster.operator).post(TOGGLES, body, format="json")
    assert response.status_code == 400
    assert "already has a toggle" in response.json()["errors"]["key"][0]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"value": -5}, "value"),
        ({"off_value": "none"}, "off_value"),
        (
            {
                "rules": [
                    {"conditions": [{"attribute": "a", "op": "matches", "value": "["}], "value": 1}
                ]
            },
            "rules",
        ),
        ({"enabled": []}, "enabled"),
    ],
)
def test_update__bad_input__400_naming_the_field_nothing_stored(roster, client_for, body, field):
    toggle = _toggle(roster.team)
    with nothing_stored():
        response = client_for(roster.operator).patch(f"{TOGGLES}{toggle.pk}/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]


# --------------------------------------------------------------------------- policies


def test_policy_create__valid__201_state_null_audited(roster, client_for):
    deployment = DeploymentFactory(team=roster.team)
    degradation_policy(deployment=deployment, name="existing")
    response = client_for(roster.operator).post(
        POLICIES, policy_body(deployment, name="second", dry_run=True), format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["team"], body["deployment"], body["state"], body["dry_run"]) == (
        roster.team.pk, deployment.pk, None, True,
    )  # fmt: skip
    assert AuditEntry.objects.filter(
        object_type="toggles.degradationpolicy", action="create"
    ).exists()


BAD_POLICIES = [
    ({"triggers": []}, "triggers", "non-empty"),
    ({"triggers": [{"kind": "weather"}]}, "triggers", "kind: expected one of"),
    ({"triggers": [{"kind": "slo_state", "slo": 999999}]}, "triggers", "not an SLO of"),
    (
        {"triggers": [{"kind": "signal", "signal": "nope", "op": "gt", "threshold": 1}]},
        "triggers",
        "Unknown signal",
    ),
    ({"triggers": [{"kind": "alert", "matchers": '{a=~"("}'}]}, "triggers", "matchers"),
    ({"levels": []}, "levels", "non-empty"),
    ({"levels": [{"name": "x", "set": {"nope": 1}}]}, "levels", "no toggle 'nope'"),
    ({"levels": [{"name": "x", "set": {"max_output_tokens": -1}}]}, "levels", "between 0"),
    ({"levels": [{"name": "x", "set": {"max_output_tokens": "a"}}]}, "levels", "number"),
    ({"levels": [{"name": "x", "set": {"shed_fraction": {"low": 5}}}]}, "levels", "between 0"),
    ({"name": "existing"}, "name", "already has a policy"),
    ({"name": "has space"}, "name", "slug"),
    ({"min_hold_s": -1}, "min_hold_s", "greater than or equal to 0"),
    ({"max_duration_s": 5}, "max_duration_s", "greater than or equal to 60"),
    ({"max_duration_s": 10**12}, "max_duration_s", "less than or equal to"),
    ({"clear_for_s": 2**31}, "clear_for_s", "less than or equal to"),
    ({"deployment": None}, "deployment", "null"),
    ({"dry_run": "sometimes"}, "dry_run", "valid boolean"),
]


@pytest.mark.parametrize(("overrides", "field", "message"), BAD_POLICIES)
def test_policy_create__bad_input__400_naming_the_field_nothing_stored(
    roster, client_for, overrides, field, message
):
    deployment = DeploymentFactory(team=roster.team)
    degradation_policy(deployment=deployment, name="existing")
    body = policy_body(deployment, **overrides)
    with nothing_stored():
        response = client_for(roster.operator).post(POLICIES, body, format="json")
    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    assert field in errors, errors
    assert message in " ".join(errors[field]), errors


def test_policy_create__deployment_or_slo_of_another_team__400(roster, client_for):
    mine = DeploymentFactory(team=roster.team)
    degradation_policy(deployment=mine, name="existing")
    theirs = DeploymentFactory(team=roster.other_team)
    client = client_for(roster.operator)
    moved = policy_body(mine, deployment=theirs.pk)
    foreign = policy_body(theirs, deployment=mine.pk)  # its SLO is of the other team
    with nothing_stored():
        response = client.post(POLICIES, moved, format="json")
        assert "deployment" in response.json()["errors"]
        response = client.post(POLICIES, foreign, format="json")
        assert "not an SLO of" in response.json()["errors"]["triggers"][0]


def test_policy_update__rename_or_move__400(roster, client_for):
    policy = degradation_policy(deployment=DeploymentFactory(team=roster.team), name="chat-degrade")
    other = DeploymentFactory(team=roster.team)
    client = client_for(roster.operator)
    url = f"{POLICIES}{policy.pk}/"
    with nothing_stored():
        assert "name" in client.patch(url, {"name": "new"}, format="json").json()["errors"]
        response = client.patch(url, {"deployment": other.pk}, format="json")
        assert "deployment" in response.json()["errors"]
    response = client.patch(url, {"dry_run": True, "min_hold_s": 60}, format="json")
    assert response.status_code == 200
    assert response.json()["dry_run"] is True


def test_policy_update__removing_the_current_level__400(roster, client_for):
    policy = degradation_policy(deployment=DeploymentFactory(team=roster.team), name="chat-degrade")
    policy_pin(policy=policy, level=2, actor=roster.operator, reason="drill")
    response = client_for(roster.operator).patch(
        f"{POLICIES}{policy.pk}/", {"levels": policy.levels[:1]}, format="json"
    )
    assert response.status_code == 400
    assert "at level 2" in response.json()["errors"]["levels"][0]


def test_pin__level_applied_held_state_shown_and_transition_listed(roster, client_for):
    policy = degradation_policy(deployment=DeploymentFactory(team=roster.team), name="chat-degrade")
    deployment_name = policy.deployment.name
    until = (timezone.now() + timedelta(hours=1)).isoformat()
    response = client_for(roster.operator).post(
        f"{POLICIES}{policy.pk}/pin/", {"level": 2, "reason": "GPU loss", "until": until},
        format="json",
    )  # fmt: skip
    assert response.status_code == 200, response.content
    state = response.json()["state"]
    assert (state["level"], state["pinned_level"], state["pinned_by"], state["pin_reason"]) == (
        2, 2, "alpha-operator", "GPU loss",
    )  # fmt: skip
    assert served(roster.team.pk, "max_output_tokens", deployment_name) == 512
    assert served(roster.team.pk, "shed_fraction", deployment_name) == {"low": 0.2}
    transitions = client_for(roster.viewer).get(f"{POLICIES}{policy.pk}/transitions/").json()
    assert [(t["from_level"], t["to_level"], t["actor"]) for t in transitions["results"]] == [
        (0, 2, "alpha-operator")
    ]
    assert "GPU loss" in transitions["results"][0]["reason"]

    response = client_for(roster.operator).post(
        f"{POLICIES}{policy.pk}/unpin/", {"reason": "recovered"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["state"]["pinned_level"] is None
    assert DegradationState.objects.get(policy=policy).level == 2  # automation moves it later


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"level": 3, "reason": "x"}, "level", "between 0 and 2"),
        ({"level": -1, "reason": "x"}, "level", "greater than or equal to 0"),
        ({"level": "high", "reason": "x"}, "level", "valid integer"),
        ({"level": 1}, "reason", "required"),
        ({"level": 1, "reason": ""}, "reason", "blank"),
        ({"level": 1, "reason": "x", "until": "2000-01-01T00:00:00Z"}, "until", "future"),
        ({"level": 1, "reason": "x", "until": "soon"}, "until", "format"),
    ],
)
def test_pin__bad_body__400_naming_the_field_nothing_stored(
    roster, client_for, body, field, message
):
    policy = degradation_policy(deployment=DeploymentFactory(team=roster.team), name="chat-degrade")
    with nothing_stored():
        response = client_for(roster.operator).post(
            f"{POLICIES}{policy.pk}/pin/", body, format="json"
        )
    assert response.status_code == 400, response.content
    assert message in " ".join(response.json()["errors"][field])


def test_unpin__without_reason__400(roster, client_for):
    policy = degradation_policy(deployment=DeploymentFactory(team=roster.team), name="chat-degrade")
    response = client_for(roster.operator).post(f"{POLICIES}{policy.pk}/unpin/", {}, format="json")
    assert response.status_code == 400
    assert "reason" in response.json()["errors"]


@pytest.mark.parametrize("suffix", ["pin/", "unpin/"])
def test_pin_unpin__viewer_403_outsider_404(roster, client_for, suffix):
    policy = degradation_policy(deployment=DeploymentFactory(team=roster.team), name="chat-degrade")
    url = f"{POLICIES}{policy.pk}/{suffix}"
    body = {"level": 1, "reason": "x"}
    with nothing_stored():
        assert client_for(roster.viewer).post(url, body, format="json").status_code == 403
        assert client_for(roster.outsider).post(url, body, format="json").status_code == 404
    assert client_for(roster.outsider).get(f"{POLICIES}{policy.pk}/").status_code == 404
    assert client_for(roster.outsider).get(f"{POLICIES}{policy.pk}/transitions/").status_code == 404


def test_policy_delete__overrides_it_set_cleared(roster, client_for):
    policy = degradation_policy(deployment=DeploymentFactory(team=roster.team), name="chat-degrade")
    policy_pin(policy=policy, level=1, actor=roster.operator, reason="drill")
    assert served(roster.team.pk, "max_output_tokens") == 512
    response = client_for(roster.operator).delete(f"{POLICIES}{policy.pk}/")
    assert response.status_code == 204
    assert not DegradationPolicy.objects.exists()
    assert served(roster.team.pk, "max_output_tokens") == 4096
    assert Toggle.objects.filter(override_level__isnull=False).count() == 0


# --------------------------------------------------------------------------- switch


def test_switch__read_by_members_set_by_superusers_only(roster, client_for):
    assert client_for(roster.viewer).get(SWITCH).json()["automatic"] is True
    body = {"automatic": False, "reason": "incident 42"}
    for user in (roster.operator, roster.admin):
        with nothing_stored():
            assert client_for(user).put(SWITCH, body, format="json").status_code == 403
    response = client_for(roster.superuser).put(SWITCH, body, format="json")
    assert response.status_code == 200, response.content
    assert (response.json()["automatic"], response.json()["changed_by"]) == (False, "root")
    assert DegradationSwitch.objects.get().automatic is False
    assert client_for(roster.viewer).get(SWITCH).json()["reason"] == "incident 42"


@pytest.mark.parametrize(
    ("body", "field"),
    [({"automatic": False}, "reason"), ({"automatic": False, "reason": " "}, "reason"),
     ({"reason": "x"}, "automatic"), ({"automatic": "off?", "reason": "x"}, "automatic")],
)  # fmt: skip
def test_switch__bad_body__400_naming_the_field(roster, client_for, body, field):
    with nothing_stored():
        response = client_for(roster.superuser).put(SWITCH, body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]


# --------------------------------------------------------------------------- query counts


@pytest.mark.parametrize("rows", [3, 15])
@pytest.mark.parametrize("path", [TOGGLES, POLICIES])
def test_list__few_or_many_rows__pinned_query_count(
    roster, client_for, django_assert_num_queries, path, rows
):
    for n in range(rows):
        deployment = DeploymentFactory(team=roster.team)
        policy = degradation_policy(deployment=deployment, name=f"p{n}") if n == 0 else None
        if n:
            _toggle(roster.team, deployment=deployment)
            policy = DegradationPolicy.objects.create(
                team=roster.team, deployment=deployment, name=f"p{n}", levels=[], triggers=[]
            )
        DegradationState.objects.get_or_create(policy=policy)
    client = client_for(roster.operator)
    with django_assert_num_queries(2):
        response = client.get(path)
    assert response.status_code == 200
    assert len(response.json()["results"]) >= rows


@pytest.mark.parametrize("changes", [2, 12])
def test_history_and_transitions__few_or_many_rows__pinned_query_count(
    roster, client_for, django_assert_num_queries, changes
):
    policy = degradation_policy(deployment=DeploymentFactory(team=roster.team), name="chat-degrade")
    toggle = Toggle.objects.get(key="max_output_tokens")
    for n in range(changes):
        policy_pin(policy=policy, level=n % 2 + 1, actor=roster.operator, reason=f"r{n}")

    def client():  # a new request's user: its team roles not read yet
        return client_for(type(roster.operator).objects.get(pk=roster.operator.pk))

    # The caller's roles, the object, the page (a short first page needs no COUNT).
    history_client, transitions_client = client(), client()
    with django_assert_num_queries(3):
        history = history_client.get(f"{TOGGLES}{toggle.pk}/history/?team={roster.other_team.pk}")
    with django_assert_num_queries(3):
        transitions = transitions_client.get(f"{POLICIES}{policy.pk}/transitions/")
    assert history.status_code == 200  # the list's filters do not apply here
    assert history.json()["count"] == changes + 1
    assert transitions.json()["count"] == changes


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=8,
)  # fmt: skip


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    preset=st.sampled_from(
        ["max_output_tokens", "max_context_tokens", "shed_fraction", "feature",
         "fallback_deployment", "cache_only", "maintenance", "custom"]
    ),
    value=JSON_VALUES,
    rules=st.one_of(JSON_VALUES, st.just([{"conditions": [], "value": 1}])),
)  # fmt: skip
def test_create__any_json_value_or_rules__201_or_400_naming_a_field(
    roster, client_for, preset, value, rules
):
    body = {"team": roster.team.pk, "key": "fuzzed", "preset": preset, "value": value,
            "value_type": "number", "off_value": 0, "rules": rules}  # fmt: skip
    response = client_for(roster.operator).post(TOGGLES, body, format="json")
    assert response.status_code in (201, 400), response.content
    if response.status_code == 400:
        errors = response.json()["errors"]
        assert set(errors) <= {"value", "value_type", "off_value", "rules", "preset"}, errors
    else:
        toggle = Toggle.objects.get(pk=response.json()["id"])
        served_now = evaluate(team_toggles(team_id=roster.team.pk).team["fuzzed"], {}).value
        toggle.delete()  # before asserting: the next example creates it again
        assert served_now == toggle.off_value  # created off: the off value is served


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    triggers=st.one_of(
        JSON_VALUES,
        st.lists(st.fixed_dictionaries({"kind": st.sampled_from(
            ["slo_state", "alert", "autoscaler_at_max", "signal", "x"])}, optional={
            "slo": JSON_VALUES, "states": JSON_VALUES, "matchers": JSON_VALUES,
            "signal": JSON_VALUES, "op": JSON_VALUES, "threshold": JSON_VALUES}), max_size=3),
    ),
    levels=st.one_of(
        JSON_VALUES,
        st.lists(st.fixed_dictionaries({"name": JSON_VALUES, "set": st.dictionaries(
            st.sampled_from(["max_output_tokens", "shed_fraction", "nope"]), JSON_VALUES)}),
            max_size=3),
    ),
)  # fmt: skip
def test_policy_create__any_triggers_or_levels__never_500(roster, client_for, triggers, levels):
    deployment = DeploymentFactory(team=roster.team)
    body = {"deployment": deployment.pk, "name": "fuzzed", "triggers": triggers,
            "levels": levels}  # fmt: skip
    response = client_for(roster.operator).post(POLICIES, body, format="json")
    assert response.status_code in (201, 400), response.content
    if response.status_code == 400:
        assert set(response.json()["errors"]) <= {"triggers", "levels"}
    DegradationPolicy.objects.filter(name="fuzzed").delete()
