"""degradation_evaluate: triggers observed, the engine's step applied (or, in dry run,
recorded), timers stored, every transition queued for the team's chat channels once; a level
that can no longer be applied is recorded as a failure, never raised."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.alerts.models import Delivery
from apps.audit.models import AuditEntry
from apps.inventory.models import DeploymentStatus
from apps.slos.models import SloStatus
from apps.toggles.evaluation import evaluate
from apps.toggles.models import DegradationPolicy, DegradationState, DegradationTransition
from apps.toggles.notifications import transition_notify
from apps.toggles.selectors import degradation_policy_ids, team_toggles
from apps.toggles.services import (
    degradation_evaluate,
    degradation_switch_set,
    policy_pin,
    toggle_create,
)
from tests.factories.alerts import ChannelFactory
from tests.factories.degradation import TWO_LEVELS, degradation_policy
from tests.factories.inventory import DeploymentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def policy():
    return degradation_policy(
        deployment=DeploymentFactory(name="chat"), name="chat-degrade", min_hold_s=60,
        clear_for_s=120,
    )  # fmt: skip


@pytest.fixture
def channel(policy):
    return ChannelFactory(team=policy.team)


def slo_state(policy, state, now):
    SloStatus.objects.update_or_create(
        slo_id=policy.triggers[0]["slo"], defaults={"state": state, "evaluated_at": now}
    )


def served(policy, key):
    snapshot = team_toggles(team_id=policy.team_id).for_deployment(policy.deployment.name)
    return evaluate(snapshot[key], {}).value


def tick(policy, state, seconds, t0, queued=None):
    now = t0 + timedelta(seconds=seconds)
    if state is not None:
        slo_state(policy, state, now)
    policy.refresh_from_db()
    return degradation_evaluate(
        policy=policy, now=now, enqueue=None if queued is None else queued.append
    )


def level(policy):
    return DegradationState.objects.get(policy=policy).level


def test_degradation_evaluate__page_then_clear__up_and_down_with_deliveries_and_audit(
    policy, channel, django_capture_on_commit_callbacks
):
    t0 = timezone.now()
    queued: list[int] = []
    with django_capture_on_commit_callbacks(execute=True):
        tick(policy, "page", 0, t0, queued)
    assert level(policy) == 1
    assert served(policy, "max_output_tokens") == 512
    tick(policy, "page", 30, t0)
    assert level(policy) == 1  # min hold
    tick(policy, "page", 60, t0)
    assert level(policy) == 2
    assert served(policy, "shed_fraction") == {"low": 0.2}
    tick(policy, "ok", 70, t0)
    tick(policy, "ok", 189, t0)
    assert level(policy) == 2
    tick(policy, "ok", 190, t0)
    assert level(policy) == 1
    tick(policy, "ok", 310, t0)
    assert level(policy) == 0
    assert served(policy, "max_output_tokens") == 4096
    steps = list(
        DegradationTransition.objects.filter(policy=policy)
        .order_by("at")
        .values_list("from_level", "to_level", "dry_run")
    )
    assert steps == [(0, 1, False), (1, 2, False), (2, 1, False), (1, 0, False)]
    first = DegradationTransition.objects.filter(policy=policy).order_by("at").first()
    assert "SLO" in first.reason
    assert "level 1 (cap tokens)" in first.reason
    assert first.evidence["triggers"][0]["outcome"] == "held"
    deliveries = list(Delivery.objects.filter(channel=channel).order_by("created_at", "id"))
    assert len(deliveries) == 4
    assert queued == [channel.pk]
    up = deliveries[0].notification
    assert up["status"] == "firing"
    assert "level 0 -> 1" in up["title"]
    assert deliveries[-1].notification["status"] == "resolved"
    assert deliveries[0].idempotency_key == f"degradation-t{first.pk}-c{channel.pk}"
    assert AuditEntry.objects.filter(object_type="toggles.degradationstate").count() == 4


def test_degradation_evaluate__no_data__nothing_changes(policy, channel):
    t0 = timezone.now()
    for seconds in (0, 100, 1000):
        step = tick(policy, None, seconds, t0)
        assert step is not None
        assert "no data" in step.reason
    slo_state(policy, "no_data", t0)
    tick(policy, None, 5, t0)
    assert level(policy) == 0
    assert not DegradationTransition.objects.exists()
    assert not Delivery.objects.exists()


def test_degradation_evaluate__dry_run__records_steps_changes_nothing(policy, channel):
    policy.dry_run = True
    policy.save()
    t0 = timezone.now()
    tick(policy, "page", 0, t0)
    tick(policy, "page", 30, t0)
    tick(policy, "page", 60, t0)
    state = DegradationState.objects.get(policy=policy)
    assert (state.level, state.dry_level) == (0, 2)
    assert served(policy, "max_output_tokens") == 4096
    steps = list(
        DegradationTransition.objects.order_by("at").values_list(
            "from_level", "to_level", "dry_run"
        )
    )
    assert steps == [(0, 1, True), (1, 2, True)]
    titles = [d.notification["title"] for d in Delivery.objects.order_by("created_at", "id")]
    assert all(t.startswith("[dry run] ") for t in titles)
    assert len(titles) == 2
    # Dry run off: its position follows the live level again, so a later dry run starts
    # from there, whether or not the live level moves.
    policy.dry_run = False
    policy.save()
    tick(policy, "ok", 70, t0)
    state = DegradationState.objects.get(policy=policy)
    assert (state.level, state.dry_level) == (0, 0)
    tick(policy, "page", 200, t0)
    state = DegradationState.objects.get(policy=policy)
    assert (state.level, state.dry_level) == (1, 1)


def test_degradation_evaluate__pinned__holds(policy, channel):
    policy_pin(policy=policy, level=1, actor=None, reason="GPU quota cut")
    t0 = timezone.now()
    for seconds in (0, 100, 200):
        tick(policy, "page", seconds, t0)
    assert level(policy) == 1
    tick(policy, "ok", 1000, t0)
    tick(policy, "ok", 2000, t0)
    assert level(policy) == 1
    assert DegradationTransition.objects.filter(policy=policy).count() == 1  # the pin
    # The pin's own transition went to chat, like every transition.
    (delivery,) = Delivery.objects.filter(channel=channel)
    assert "level 0 -> 1" in delivery.notification["title"]
    assert "pinned: GPU quota cut" in delivery.notification["alerts"][0]["description"]


def test_degradation_evaluate__pin_ran_out__unpinned_audited_then_automatic(policy):
    t0 = timezone.now()
    policy_pin(policy=policy, level=1, actor=None, reason="quota", until=t0 + timedelta(seconds=90))
    tick(policy, "page", 80, t0)
    assert DegradationState.objects.get(policy=policy).pinned_level == 1
    tick(policy, "page", 90, t0)
    state = DegradationState.objects.get(policy=policy)
    assert (state.pinned_level, state.pinned_until, state.level) == (None, None, 2)
    assert AuditEntry.objects.filter(object_type="toggles.degradationstate", verb="unpin").exists()


def test_degradation_evaluate__switch_off__holds(policy):
    degradation_switch_set(automatic=False, actor=None, reason="incident 42")
    step = tick(policy, "page", 0, timezone.now())
    assert step is not None
    assert "switched off" in step.reason
    assert level(policy) == 0


def test_degradation_evaluate__fallback_stopped_serving__failure_recorded_once(policy, channel):
    team, deployment = policy.team, policy.deployment
    small = DeploymentFactory(team=team, name="chat-small")
    toggle_create(team=team, deployment=deployment, key="fallback_deployment",
                  preset="fallback_deployment", actor=None)  # fmt: skip
    policy.levels = [{"name": "fallback", "set": {"fallback_deployment": "chat-small"}}]
    policy.save()
    small.status = DeploymentStatus.DRAINING
    small.save()
    t0 = timezone.now()
    step = tick(policy, "page", 0, t0)
    assert step is not None
    assert step.to_level == 1
    tick(policy, "page", 100, t0)
    assert level(policy) == 0
    failure = DegradationTransition.objects.get(policy=policy)
    assert (failure.from_level, failure.to_level) == (0, 0)
    assert "not serving" in failure.evidence["error"]
    assert failure.evidence["wanted_level"] == 1
    (delivery,) = Delivery.objects.all()
    assert "could not move to level 1" in delivery.notification["title"]


def test_transition_notify__twice__one_delivery_per_channel(policy, channel):
    other = ChannelFactory(team=policy.team)
    ChannelFactory(team=policy.team, enabled=False)
    ChannelFactory()  # another team's
    tick(policy, "page", 0, timezone.now())
    transition = DegradationTransition.objects.get()
    assert transition_notify(transition=transition, enqueue=None) == []
    assert sorted(Delivery.objects.values_list("channel_id", flat=True)) == sorted(
        [channel.pk, other.pk]
    )


def test_degradation_policy_ids__enabled_only(policy):
    DegradationPolicy.objects.create(
        team=policy.team, deployment=policy.deployment, name="off", enabled=False,
        levels=TWO_LEVELS, triggers=policy.triggers,
    )  # fmt: skip
    assert degradation_policy_ids() == [policy.pk]


def test_evaluate_degradation_task__policy_locked__skipped(policy):
    from apps.core.locks import cache_lock
    from apps.toggles.tasks import evaluate_degradation

    slo_state(policy, "page", timezone.now())
    with cache_lock(f"toggles:degradation:{policy.pk}", ttl_s=30) as acquired:
        assert acquired
        evaluate_degradation(policy.pk)
        assert not DegradationState.objects.filter(policy=policy).exists()
    evaluate_degradation(policy.pk)
    assert level(policy) == 1
    evaluate_degradation(policy.pk + 1000)  # gone: nothing to do, no error
