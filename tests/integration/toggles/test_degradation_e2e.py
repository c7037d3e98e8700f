"""Automatic degradation through a real Celery worker on Redis: ``toggles.evaluate_degradation_all``
is sent as the scheduler sends it (every half second here), the worker evaluates the policy
under its lock, applies the level, and sends each transition to a real HTTP chat receiver
through the alerts app's per-channel sender (notify queue).

The SLO state is driven by writing the SLO status row the slos app's evaluation writes.
Hold and clear times are a few seconds, so the run stays short; the waits only stop a run
that would otherwise hang.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from django.utils import timezone

from apps.alerts.models import Delivery, DeliveryStatus
from apps.audit.models import AuditEntry
from apps.slos.models import SloStatus
from apps.toggles.evaluation import evaluate
from apps.toggles.models import DegradationPolicy, DegradationState, DegradationTransition
from apps.toggles.selectors import team_toggles
from apps.toggles.services import policy_pin
from apps.toggles.tasks import evaluate_degradation_all
from controlplane.celery import app
from tests.factories.alerts import ChannelFactory
from tests.factories.degradation import degradation_policy
from tests.factories.inventory import DeploymentFactory
from tests.servers import RecordingServer, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MIN_HOLD_S = 2
CLEAR_FOR_S = 3
WAIT_S = 60.0
TICK_S = 0.5


@pytest.fixture
def receiver(allow_loopback_outbound):
    server = RecordingServer()
    yield server
    server.stop()


@pytest.fixture
def policy(receiver):
    deployment = DeploymentFactory(name="chat")
    ChannelFactory(team=deployment.team, webhook_url=receiver.url + "/hook")
    policy = degradation_policy(
        deployment=deployment, states=("page",), name="chat-degrade", min_hold_s=MIN_HOLD_S,
        clear_for_s=CLEAR_FOR_S,
    )  # fmt: skip
    set_slo(policy.triggers[0]["slo"], "ok")
    return policy


def set_slo(slo_id: int, state: str) -> None:
    SloStatus.objects.update_or_create(
        slo_id=slo_id, defaults={"state": state, "evaluated_at": timezone.now()}
    )


def served(policy: DegradationPolicy, key: str) -> Any:
    snapshot = team_toggles(team_id=policy.team_id).for_deployment(policy.deployment.name)
    return evaluate(snapshot[key], {}).value


def state_of(policy: DegradationPolicy) -> DegradationState:
    return DegradationState.objects.get(policy=policy)


def state_of_or_none(policy: DegradationPolicy) -> DegradationState | None:
    return DegradationState.objects.filter(policy=policy).first()


def driven(predicate: Callable[[], Any], what: str, *, slo: tuple[int, str] | None = None) -> Any:
    """Wait for ``predicate`` while sending the periodic task as beat would (and keeping the
    SLO status fresh, as the slos app's evaluation does)."""
    last = 0.0

    def tick() -> Any:
        nonlocal last
        if time.monotonic() - last >= TICK_S:
            last = time.monotonic()
            if slo is not None:
                set_slo(*slo)
            evaluate_degradation_all.delay()
        return predicate()

    return wait_for(tick, WAIT_S, what, interval_s=0.1)


def levels_recorded(policy: DegradationPolicy) -> list[tuple[int, int, bool]]:
    return list(
        DegradationTransition.objects.filter(policy=policy)
        .order_by("at", "id")
        .values_list("from_level", "to_level", "dry_run")
    )


def worker():
    return start_worker(
        app,
        pool="solo",
        perform_ping_check=False,
        loglevel="WARNING",
        shutdown_timeout=30,
        queues=["control", "notify"],
    )


def test_degradation_e2e__slo_page_then_ok__up_one_level_per_hold_down_after_clear(
    celery_redis, policy, receiver
):
    slo_id = policy.triggers[0]["slo"]
    with worker():
        # Data that says nothing: no change, however long.
        set_slo(slo_id, "no_data")
        driven(lambda: (s := state_of_or_none(policy)) and s.evaluated_at, "first evaluation")
        assert state_of(policy).level == 0

        page = (slo_id, "page")
        driven(lambda: state_of(policy).level == 1, "level 1", slo=page)
        assert served(policy, "max_output_tokens") == 512
        assert served(policy, "shed_fraction") == {}
        driven(lambda: state_of(policy).level == 2, "level 2 while the page persists", slo=page)
        assert served(policy, "shed_fraction") == {"low": 0.2}

        ok = (slo_id, "ok")
        cleared_at = timezone.now()
        driven(lambda: state_of(policy).level == 1, "back to level 1", slo=ok)
        driven(lambda: state_of(policy).level == 0, "back to level 0", slo=ok)
        assert served(policy, "max_output_tokens") == 4096
        driven(
            lambda: Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() == 4,
            "four chat deliveries",
        )

    transitions = list(DegradationTransition.objects.filter(policy=policy).order_by("at", "id"))
    assert [(t.from_level, t.to_level, t.dry_run) for t in transitions] == [
        (0, 1, False), (1, 2, False), (2, 1, False), (1, 0, False),
    ]  # fmt: skip
    up1, up2, down1, down0 = (t.at for t in transitions)
    # The rules, read from the recorded times: a hold before each step up, a full clear
    # period (counted at each level) before each step down.
    assert up2 - up1 >= timedelta(seconds=MIN_HOLD_S)
    assert down1 - cleared_at >= timedelta(seconds=CLEAR_FOR_S)
    assert down0 - down1 >= timedelta(seconds=CLEAR_FOR_S)
    assert "level 1 (cap tokens)" in transitions[0].reason
    assert transitions[0].evidence["triggers"][0]["outcome"] == "held"

    bodies = [json.loads(r.body) for r in receiver.requests]
    titles = [b["notification"]["title"] for b in bodies]
    assert [t.split(": ")[-1] for t in titles] == [
        "level 0 -> 1", "level 1 -> 2", "level 2 -> 1", "level 1 -> 0",
    ]  # fmt: skip
    assert [b["notification"]["status"] for b in bodies] == [
        "firing", "firing", "resolved", "resolved",
    ]  # fmt: skip
    audited = AuditEntry.objects.filter(object_type="toggles.degradationstate")
    assert audited.count() == 4
    assert AuditEntry.objects.filter(object_type="toggles.toggle", verb="degrade").exists()
    assert AuditEntry.objects.filter(object_type="toggles.toggle", verb="restore").exists()


def test_degradation_e2e__dry_run__records_and_notifies_changes_nothing(
    celery_redis, policy, receiver
):
    policy.dry_run = True
    policy.save()
    slo_id = policy.triggers[0]["slo"]
    with worker():
        driven(lambda: len(levels_recorded(policy)) == 2, "two dry-run steps", slo=(slo_id, "page"))
        driven(
            lambda: Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() == 2,
            "two chat deliveries",
        )
    assert levels_recorded(policy) == [(0, 1, True), (1, 2, True)]
    state = state_of(policy)
    assert (state.level, state.dry_level) == (0, 2)
    assert served(policy, "max_output_tokens") == 4096
    assert served(policy, "shed_fraction") == {}
    titles = [json.loads(r.body)["notification"]["title"] for r in receiver.requests]
    assert len(titles) == 2
    assert all(t.startswith("[dry run] ") for t in titles)
    assert not AuditEntry.objects.filter(object_type="toggles.toggle", verb="degrade").exists()


def test_degradation_e2e__pinned__holds_while_slo_pages(celery_redis, policy, receiver):
    policy_pin(policy=policy, level=1, actor=None, reason="GPU quota cut")
    slo_id = policy.triggers[0]["slo"]
    pinned_at = timezone.now()
    with worker():
        # Evaluations well past the hold time, with the SLO paging all along.
        driven(
            lambda: (
                state_of(policy).evaluated_at
                and state_of(policy).evaluated_at > pinned_at + timedelta(seconds=3 * MIN_HOLD_S)
            ),
            "evaluations past the hold time",
            slo=(slo_id, "page"),
        )
    state = state_of(policy)
    assert (state.level, state.pinned_level) == (1, 1)
    assert state.triggered_since is not None  # it saw the page, and held
    assert levels_recorded(policy) == [(0, 1, False)]  # the pin itself
    assert served(policy, "max_output_tokens") == 512
