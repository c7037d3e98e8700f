"""Which replicas a scale-down removes reaches the actuators that can be told
(``set_replicas_options``, ``apply_with_retry(options=...)``), and an action's time
limits leave room for a drain."""

from __future__ import annotations

from django.conf import settings

from apps.autoscaling import tasks
from apps.autoscaling.actuators.aws_asg import AutoScalingGroupActuator
from apps.autoscaling.actuators.base import (
    ScaleTarget,
    apply_with_retry,
    set_replicas_options,
)
from apps.autoscaling.actuators.kubernetes import KubernetesActuator
from apps.autoscaling.actuators.simulated import SimulatedActuator
from tests.unit.autoscaling.platforms import Platform

TARGET = ScaleTarget("simulated", "llm", "chat")


def test_set_replicas_options__each_actuator__what_it_can_be_told() -> None:
    assert set_replicas_options(SimulatedActuator("http://127.0.0.1:9")) == {"remove", "drain_s"}
    assert set_replicas_options(AutoScalingGroupActuator(client=None)) == {"remove"}  # type: ignore[arg-type]
    assert set_replicas_options(KubernetesActuator(client=None)) == frozenset()  # type: ignore[arg-type]


def test_apply_with_retry__options__passed_to_set_replicas_once() -> None:
    told = Platform(3)
    apply_with_retry(told, TARGET, 2, idempotency_key="k", options={"remove": ["chat-1"]})
    assert told.writes == [(2, ("chat-1",))]


def test_apply_with_retry__already_at_the_count__nothing_removed() -> None:
    told = Platform(2)
    apply_with_retry(told, TARGET, 2, idempotency_key="k", options={"remove": ["chat-1"]})
    assert told.writes == []


def test_time_limits__a_full_drain_then_an_apply__within_the_task_and_the_lease() -> None:
    limit = settings.AUTOSCALING_ACTION_TIME_LIMIT_S
    assert limit >= settings.BALANCING_DRAIN_TIMEOUT_S + settings.AUTOSCALING_APPLY_TIME_LIMIT_S
    assert tasks.execute_action.time_limit == limit
    assert tasks.execute_action.soft_time_limit > settings.BALANCING_DRAIN_TIMEOUT_S
    assert settings.AUTOSCALING_ACTION_LEASE_S > limit
