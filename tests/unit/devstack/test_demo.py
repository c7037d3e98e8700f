"""The demo seed: idempotent, and complete enough to show the loop and alerts working."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.test import Client

from apps.alerts.models import AlertRule
from apps.autoscaling.models import AutoscalingPolicy
from apps.devstack.demo import demo_gateway_token
from apps.inventory.models import Deployment
from apps.slos.models import Slo
from apps.toggles.models import GatewayToken

pytestmark = pytest.mark.django_db


def test_seed_demo__run_twice__same_deployments_policies_and_rules():
    call_command("seed_demo")
    call_command("seed_demo")
    deployments = Deployment.objects.filter(team__slug="demo")
    assert deployments.count() == 3
    assert AutoscalingPolicy.objects.filter(deployment__in=deployments, mode="enforce").count() == 3
    for policy in AutoscalingPolicy.objects.all():
        policy.full_clean()  # the engine accepts it
    rules = AlertRule.objects.filter(team__slug="demo")
    assert sorted(rules.values_list("name", flat=True)) == [
        "CudaOutOfMemory",
        "HighTimeToFirstToken",
        "QueueBacklog",
        "RequestsPilingUpInLogs",
    ]
    for rule in rules:
        rule.full_clean()
    slos = Slo.objects.filter(team__slug="demo")
    assert slos.count() == 6
    for slo in slos:
        slo.full_clean()  # thresholds on the framework's histogram buckets, etc.


def test_seed_demo__run_twice__toggles_per_deployment_and_a_valid_degradation_policy():
    from apps.toggles.models import DegradationPolicy, Toggle, ToggleChange
    from apps.toggles.services import policy_clean

    call_command("seed_demo")
    call_command("seed_demo")
    for deployment in Deployment.objects.filter(team__slug="demo"):
        keys = Toggle.objects.filter(deployment=deployment).values_list("key", flat=True)
        assert sorted(keys) == ["max_output_tokens", "shed_fraction"]
    assert ToggleChange.objects.count() == 6  # each created once, with its history
    (policy,) = DegradationPolicy.objects.filter(team__slug="demo")
    assert policy.deployment.name == "chat-llama-8b"
    _, levels = policy_clean(team=policy.team, deployment=policy.deployment,
                             triggers=policy.triggers, levels=policy.levels)  # fmt: skip
    assert [level.set for level in levels] == [
        {"max_output_tokens": 512},
        {"shed_fraction": {"low": 0.2}},
    ]
    assert policy.triggers[0]["states"] == ["page"]


def test_seed_demo__creations_in_the_audit_log_once():
    from apps.audit.models import AuditEntry

    call_command("seed_demo")
    call_command("seed_demo")
    created = AuditEntry.objects.filter(action="create", actor_repr="system", verb="demo")
    team = Deployment.objects.filter(team__slug="demo").first().team
    # team, model, 3 deployments with a policy each, 4 alert rules, 6 SLOs, a degradation
    # policy (the toggles are created through their service, audited there), 3 balancing
    # policies and a gateway
    assert created.count() == 1 + 1 + 3 + 3 + 4 + 6 + 1 + 3 + 1
    assert set(created.values_list("team_id", flat=True)) == {team.pk}
    deployment = created.get(object_type="inventory.deployment", object_repr__contains="chat")
    assert deployment.changes["max_replicas"] == [None, 8]


def test_demo_gateway_token__saved__reads_the_demo_snapshot__replaced_when_invalid(tmp_path):
    call_command("seed_demo", verbosity=0)
    saved = tmp_path / "demo-gateway-token"
    first = demo_gateway_token(saved=saved)
    assert saved.stat().st_mode & 0o777 == 0o600
    assert demo_gateway_token(saved=saved) == first  # reused
    response = Client().get(
        "/toggles/v1/snapshot?deployment=chat-llama-8b", HTTP_AUTHORIZATION=f"Bearer {first}"
    )
    assert response.status_code == 200
    assert "max_output_tokens" in response.content.decode()
    saved.write_text("lcpg_not-a-token\n")
    assert demo_gateway_token(saved=saved) != first
    assert GatewayToken.objects.filter(team__slug="demo").count() == 1


def test_seed_demo__run_twice__valid_balancing_policies_and_one_gateway_on_loopback():
    from apps.balancing.models import BalancingPolicy, Gateway
    from apps.balancing.services import policy_check

    call_command("seed_demo")
    call_command("seed_demo")
    policies = BalancingPolicy.objects.filter(deployment__team__slug="demo")
    assert sorted(policies.values_list("deployment__name", "algorithm")) == [
        ("batch-mistral-7b", "least_conn"),
        ("chat-llama-8b", "consistent_hash"),
        ("code-qwen-7b", "least_conn"),
    ]
    for policy in policies:
        policy_check(spec=policy.spec())
    (gateway,) = Gateway.objects.filter(team__slug="demo")
    assert (gateway.name, gateway.listen_address) == ("demo-edge", "127.0.0.1")
    assert list(
        gateway.deployments.order_by("gatewaydeployment__position").values_list("name", flat=True)
    ) == ["chat-llama-8b", "code-qwen-7b", "batch-mistral-7b"]
