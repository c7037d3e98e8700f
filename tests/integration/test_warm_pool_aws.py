"""Auto Scaling warm pools through the actuator, with boto3 against moto in server mode.

moto implements ``PutWarmPool``, ``DescribeWarmPool`` and ``DeleteWarmPool`` for the pool's
configuration (it launches no pooled instances, so ``Warmed:*`` instances are covered by
the membership unit tests instead)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from apps.autoscaling.actuators import ActuatorError, ScaleTarget
from apps.autoscaling.actuators.aws_asg import AutoScalingGroupActuator
from apps.autoscaling.actuators.warm import (
    LABEL_WARM_POOL_SIZE,
    LABEL_WARM_POOL_STATE,
    WarmPool,
    warm_pool_of,
)
from apps.balancing.membership import asg_instance_state
from apps.integrations.aws import AutoScalingClient, WarmPoolInfo, build_autoscaling_client
from tests.integration.moto_support import moto_reset_with_group
from tests.integration.test_actuator_aws import record_calls

REGION = "us-east-1"
GROUP = ScaleTarget("aws-asg", "", "gpu-pool")
READS = ["DescribeAutoScalingGroups", "DescribeWarmPool"]


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def actuator(moto_url: str) -> AutoScalingGroupActuator:
    """The actuator on a fresh moto: a 1..5 group at 2 and no warm pool."""
    moto_reset_with_group(moto_url, region=REGION, group=GROUP.name, template="vllm-gpu")
    client = build_autoscaling_client(region=REGION, endpoint_url=moto_url, read_timeout_s=5)
    return AutoScalingGroupActuator(AutoScalingClient(client))


@pytest.fixture
def boto_client(actuator: AutoScalingGroupActuator) -> Any:
    return actuator.client.client


def pool_in_moto(moto_url: str) -> dict[str, Any]:
    client = boto3.client("autoscaling", region_name=REGION, endpoint_url=moto_url)
    answer = client.describe_warm_pool(AutoScalingGroupName=GROUP.name)
    return dict(answer.get("WarmPoolConfiguration") or {})


def test_ensure_warm_pool__none_yet__pool_created_with_size_and_state(
    actuator: AutoScalingGroupActuator, moto_url: str
) -> None:
    written = actuator.ensure_warm_pool(GROUP, 2, "Running")

    assert written is True
    pool = pool_in_moto(moto_url)
    assert (pool["MinSize"], pool["PoolState"]) == (2, "Running")
    assert actuator.client.describe_warm_pool(GROUP.name) == WarmPoolInfo(
        min_size=2, max_prepared=None, state="Running", instances=0
    )


def test_ensure_warm_pool__same_size_and_state__read_only(
    actuator: AutoScalingGroupActuator, boto_client: Any
) -> None:
    actuator.ensure_warm_pool(GROUP, 2, "Stopped")
    calls = record_calls(boto_client)

    written = actuator.ensure_warm_pool(GROUP, 2, "Stopped")

    assert written is False
    assert calls == READS


def test_ensure_warm_pool__size_or_state_changed__rewritten(
    actuator: AutoScalingGroupActuator, boto_client: Any, moto_url: str
) -> None:
    actuator.ensure_warm_pool(GROUP, 2, "Stopped")
    calls = record_calls(boto_client)

    assert actuator.ensure_warm_pool(GROUP, 3, "Stopped") is True
    assert actuator.ensure_warm_pool(GROUP, 3, "Hibernated") is True

    assert calls.count("PutWarmPool") == 2
    pool = pool_in_moto(moto_url)
    assert (pool["MinSize"], pool["PoolState"]) == (3, "Hibernated")


def test_ensure_warm_pool__size_zero__pool_deleted_then_no_write(
    actuator: AutoScalingGroupActuator, boto_client: Any, moto_url: str
) -> None:
    actuator.ensure_warm_pool(GROUP, 2, "Stopped")

    assert actuator.ensure_warm_pool(GROUP, 0) is True
    assert pool_in_moto(moto_url) == {}
    calls = record_calls(boto_client)
    assert actuator.ensure_warm_pool(GROUP, 0) is False
    assert calls == READS


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        (ScaleTarget("aws-asg", "", "no-such-group"), "not-found"),
        (ScaleTarget("simulated", "default", "no-such-group"), "unsupported-target"),
    ],
)
def test_ensure_warm_pool__unknown_group_or_wrong_kind__permanent(
    actuator: AutoScalingGroupActuator, target: ScaleTarget, reason: str
) -> None:
    with pytest.raises(ActuatorError) as caught:
        actuator.ensure_warm_pool(target, 1)

    assert caught.value.permanent_reason == reason
    assert not caught.value.retryable


@pytest.mark.parametrize(("size", "state"), [(-1, "Stopped"), (2, "Asleep"), (True, "Stopped")])
def test_ensure_warm_pool__bad_size_or_state__permanent_invalid_before_any_call(
    actuator: AutoScalingGroupActuator, boto_client: Any, size: Any, state: str
) -> None:
    calls = record_calls(boto_client)

    with pytest.raises(ActuatorError) as caught:
        actuator.ensure_warm_pool(GROUP, size, state)

    assert caught.value.permanent_reason == "invalid"
    assert calls == []


# ------------------------------------------------------------------ labels


def test_warm_pool_of__labels__size_and_state_parsed() -> None:
    assert warm_pool_of({}) is None
    assert warm_pool_of({LABEL_WARM_POOL_SIZE: "3"}) == WarmPool(3, "Stopped")
    assert warm_pool_of({LABEL_WARM_POOL_SIZE: "0", LABEL_WARM_POOL_STATE: "running"}) == (
        WarmPool(0, "Running")
    )


@pytest.mark.parametrize(
    "labels",
    [
        {LABEL_WARM_POOL_SIZE: "two"},
        {LABEL_WARM_POOL_SIZE: "-1"},
        {LABEL_WARM_POOL_SIZE: "5000"},
        {LABEL_WARM_POOL_SIZE: "²"},  # a digit to str.isdigit(), a ValueError to int()
        {LABEL_WARM_POOL_SIZE: "2", LABEL_WARM_POOL_STATE: "Frozen"},
        {LABEL_WARM_POOL_STATE: "Running"},
    ],
)
def test_warm_pool_of__malformed_labels__permanent_invalid(labels: dict[str, str]) -> None:
    with pytest.raises(ActuatorError) as caught:
        warm_pool_of(labels)

    assert caught.value.permanent_reason == "invalid"
    assert "autoscaling.llm-controlplane/warm-pool" in str(caught.value)


def test_ensure_deployment_warm_pool__unlabelled__nothing_managed() -> None:
    # Labelled Kubernetes targets keep standby pods: tests/integration/test_standby_kubernetes.py
    from apps.autoscaling.actuators.warm import ensure_deployment_warm_pool

    kubernetes = SimpleNamespace(
        labels={}, target_kind="k8s-deployment", scale_target_namespace="d", scale_target_name="x"
    )
    unlabelled = SimpleNamespace(
        labels={}, target_kind="aws-asg", scale_target_namespace="", scale_target_name="g"
    )

    assert ensure_deployment_warm_pool(kubernetes) is None
    assert ensure_deployment_warm_pool(unlabelled) is None


@pytest.mark.parametrize("state", ["Warmed:Pending", "Warmed:Running", "Warmed:Stopped"])
def test_asg_instance_state__warm_pool_instances__not_members(state: str) -> None:
    assert asg_instance_state(state) is None
