"""A scale action that scales down a deployment behind gateways drains first
(apps.autoscaling.actions.scale_action_execute with apps.balancing.drain): the members
it removes leave the gateways' configuration, the action waits for the gateways to apply
it and for their requests to end, then removes exactly them, and records all of it.

The platform is an in-memory actuator and the gateway's agent is played by the sleep
between polls (it records a report of the configuration it would fetch); the rendered
configuration is real and checked by a real ``nginx -t``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.utils import timezone

from apps.autoscaling.actions import SETTLE_S, scale_action_execute
from apps.autoscaling.actuators.base import ScaleStatus, ScaleTarget
from apps.autoscaling.models import ActionStatus, ScaleAction
from apps.balancing import drain as balancing_drain
from apps.balancing import membership, selectors
from apps.balancing.members import Member
from apps.balancing.models import DrainingMember, Gateway, GatewayDeployment
from apps.balancing.render import nginx_binary
from apps.balancing.services import gateway_report_record
from apps.inventory.models import DeploymentStatus
from tests.factories.inventory import SimulatedDeploymentFactory
from tests.servers import binary_or_skip
from tests.unit.autoscaling.platforms import Platform

pytestmark = pytest.mark.django_db

MEMBERS = [Member(f"chat-{n}", "127.0.0.1", 9000 + n) for n in range(3)]


class Chooser:
    """A platform that picks the replicas itself from a load, as Kubernetes does."""

    def __init__(self, spec: int) -> None:
        self.spec = spec
        self.loads: list[dict[str, float] | None] = []

    def get_scale(self, target: ScaleTarget) -> ScaleStatus:
        return ScaleStatus(self.spec, self.spec)

    def set_replicas(self, target: ScaleTarget, replicas: int, *, idempotency_key: str) -> Any:
        self.spec = replicas
        return ScaleStatus(self.spec, self.spec)

    def prepare_scale_down(
        self, target: ScaleTarget, remove: int, pod_load: dict[str, float] | None
    ) -> None:
        self.loads.append(pod_load)


class Agent:
    """The fake clock and the gateway agent: every sleep advances the clock, and from
    ``applies_on`` on each poll reports the configuration the gateway would fetch."""

    def __init__(self, gateway: Gateway | None, applies_on: int | None) -> None:
        self.gateway = gateway
        self.applies_on = applies_on
        self.now = 0.0
        self.polls = 0
        self.texts: list[str] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.polls += 1
        if self.gateway is None:
            return
        rendered = selectors.gateway_config(gateway=self.gateway)
        self.texts.append(rendered.text)
        if self.applies_on is not None and self.polls >= self.applies_on:
            gateway_report_record(
                gateway=self.gateway,
                version=rendered.sha256,
                result="applied",
                applied_at=timezone.now(),
            )


@pytest.fixture
def world(settings: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    binary_or_skip(nginx_binary(), "nginx", "nginx-light")
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    cache.clear()
    settings.BALANCING_DRAIN_TIMEOUT_S = 30.0
    settings.BALANCING_DRAIN_POLL_S = 1.0
    settings.BALANCING_GATEWAY_STALE_S = 60.0
    deployment = SimulatedDeploymentFactory(name="chat")
    gateway = Gateway.objects.create(team=deployment.team, name="edge", last_seen_at=timezone.now())
    GatewayDeployment.objects.create(gateway=gateway, deployment=deployment)
    platforms: list[Platform] = []

    def platform(spec: int, *, fail: bool = False) -> Platform:
        platforms.append(Platform(spec, fail=fail))
        return platforms[-1]

    def members_of(*, deployment: Any, **_: Any) -> membership.MemberSet:
        # A removed replica is listed draining while it shuts down, as the simulator does.
        gone = {name for p in platforms for name in p.removed}
        listed = [replace(m, state="draining") if m.name in gone else m for m in MEMBERS]
        return membership.MemberSet(tuple(listed), "test", timezone.now())

    monkeypatch.setattr(membership, "members_of", members_of)
    # chat-1 is the least loaded: it is the one to remove.
    in_flight = {"chat-0": [4.0], "chat-1": [2.0, 1.0, 0.0], "chat-2": [5.0]}

    def members_in_flight(*, deployment: Any, names: Sequence[str]) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for name in names:
            series = in_flight[name]
            out[name] = series.pop(0) if len(series) > 1 else series[0]
        return out

    monkeypatch.setattr(balancing_drain, "members_in_flight", members_in_flight)
    return {
        "deployment": deployment,
        "gateway": gateway,
        "in_flight": in_flight,
        "platform": platform,
    }


def _action(deployment: Any, *, frm: int = 3, to: int = 2) -> ScaleAction:
    return ScaleAction.objects.create(
        deployment=deployment,
        from_replicas=frm,
        to_replicas=to,
        idempotency_key=f"k-{deployment.pk}-{frm}-{to}",
    )


def _execute(action_id: int, actuator: Any, agent: Agent) -> ScaleAction | None:
    return scale_action_execute(
        action_id=action_id,
        actuator_factory=lambda d: actuator,
        sleep=agent.sleep,
        clock=agent.clock,
    )


def test_scale_down__gateway_applies_then_streams_end__removes_exactly_the_drained(
    world: dict[str, Any],
) -> None:
    platform, agent = world["platform"](3), Agent(world["gateway"], applies_on=2)
    action = _action(world["deployment"])
    done = _execute(action.pk, platform, agent)
    assert done is not None
    assert done.status == ActionStatus.SUCCEEDED
    assert platform.writes == [(2, ("chat-1",))]
    # While it drained, the gateway's configuration had left chat-1 out, the others in.
    assert agent.texts
    assert all("127.0.0.1:9001" not in text for text in agent.texts)
    assert all("127.0.0.1:9000" in text for text in agent.texts)
    record = done.drain
    assert record["members"] == [
        {"name": "chat-1", "endpoint": "127.0.0.1:9001", "state": "serving"}
    ]
    (waited,) = record["gateways"]
    assert waited["name"] == "edge"
    assert waited["applied"] is True
    assert waited["applied_at"] is not None
    assert record["skipped"] == []
    # Applied on the 2nd poll; the load read at the choice took chat-1's 2, then 1, 0.
    assert record["applied_after_s"] == 2.0
    assert record["in_flight_done_after_s"] == 3.0
    assert record["timed_out"] is False
    assert record["outcome"] == "removed"
    assert not DrainingMember.objects.exists()
    # The platform listed chat-1 as leaving at once: its mark went, it stays out.
    assert record["left_after_s"] == 0.0
    sites = selectors.gateway_sites(gateway=world["gateway"])
    assert [m.state for m in sites[0].members] == ["serving", "draining", "serving"]


def test_scale_down__version_waited_for__the_one_without_the_drained_member(
    world: dict[str, Any],
) -> None:
    platform, agent = world["platform"](3), Agent(world["gateway"], applies_on=1)
    before = selectors.gateway_config(gateway=world["gateway"]).sha256
    done = _execute(_action(world["deployment"]).pk, platform, agent)
    assert done is not None
    (waited,) = done.drain["gateways"]
    assert waited["version"] != before
    assert set(world["gateway"].reports.values_list("version", flat=True)) == {waited["version"]}


def test_scale_down__gateway_not_seen_recently__skipped_not_waited_for(
    world: dict[str, Any],
) -> None:
    Gateway.objects.filter(pk=world["gateway"].pk).update(
        last_seen_at=timezone.now() - timedelta(minutes=5)
    )
    world["in_flight"]["chat-1"] = [0.0]
    platform, agent = world["platform"](3), Agent(None, applies_on=None)
    done = _execute(_action(world["deployment"]).pk, platform, agent)
    assert done is not None
    assert done.status == ActionStatus.SUCCEEDED
    assert agent.polls == 0
    (skipped,) = done.drain["skipped"]
    assert skipped["name"] == "edge"
    assert skipped["reason"].startswith("not seen since")
    assert done.drain["gateways"] == []
    assert platform.writes == [(2, ("chat-1",))]


def test_scale_down__gateway_never_applies__removed_at_the_timeout_and_said_so(
    world: dict[str, Any],
) -> None:
    platform, agent = world["platform"](3), Agent(world["gateway"], applies_on=None)
    done = _execute(_action(world["deployment"]).pk, platform, agent)
    assert done is not None
    assert done.status == ActionStatus.SUCCEEDED
    assert agent.now == 30.0
    assert done.drain["timed_out"] is True
    assert done.drain["applied_after_s"] is None
    assert done.drain["gateways"][0]["applied"] is False
    assert platform.writes == [(2, ("chat-1",))]
    assert not DrainingMember.objects.exists()


def test_scale_down__requests_never_end__in_flight_left_recorded(world: dict[str, Any]) -> None:
    world["in_flight"]["chat-1"] = [3.0]
    platform, agent = world["platform"](3), Agent(world["gateway"], applies_on=1)
    done = _execute(_action(world["deployment"]).pk, platform, agent)
    assert done is not None
    assert done.drain["timed_out"] is True
    assert done.drain["applied_after_s"] == 1.0
    assert done.drain["in_flight_left"] == {"chat-1": 3.0}


def test_scale_down__lease_shorter_than_drain_timeout__drain_cut_to_fit(
    world: dict[str, Any], settings: Any
) -> None:
    settings.AUTOSCALING_ACTION_LEASE_S = 100
    settings.AUTOSCALING_APPLY_TIME_LIMIT_S = 90
    platform, agent = world["platform"](3), Agent(world["gateway"], applies_on=None)
    done = _execute(_action(world["deployment"]).pk, platform, agent)
    assert done is not None
    assert done.drain["budget_s"] == 10.0
    assert agent.now == 10.0


def test_scale_down__removal_fails__members_return_and_it_is_recorded(
    world: dict[str, Any],
) -> None:
    platform, agent = world["platform"](3, fail=True), Agent(world["gateway"], applies_on=1)
    done = _execute(_action(world["deployment"]).pk, platform, agent)
    assert done is not None
    assert done.status == ActionStatus.FAILED
    assert done.drain["outcome"] == "returned"
    assert "gone" in done.drain["error"]
    assert not DrainingMember.objects.exists()
    sites = selectors.gateway_sites(gateway=world["gateway"])
    assert "chat-1" in [m.name for m in sites[0].members if m.state == "serving"]


def test_scale_down__no_gateway__no_drain_and_the_platform_chooses(world: dict[str, Any]) -> None:
    world["gateway"].delete()
    platform, agent = world["platform"](3), Agent(None, applies_on=None)
    done = _execute(_action(world["deployment"]).pk, platform, agent)
    assert done is not None
    assert done.status == ActionStatus.SUCCEEDED
    assert done.drain is None
    assert platform.writes == [(2, ())]
    assert agent.polls == 0


def test_scale_up__behind_a_gateway__no_drain(world: dict[str, Any]) -> None:
    platform, agent = world["platform"](2), Agent(world["gateway"], applies_on=None)
    done = _execute(_action(world["deployment"], frm=2, to=3).pk, platform, agent)
    assert done is not None
    assert done.drain is None
    assert platform.writes == [(3, ())]


def test_scale_down__platform_that_chooses_by_load__drained_member_ranked_least_busy(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import apps.autoscaling.actions as actions

    monkeypatch.setattr(
        actions,
        "pod_load_read",
        lambda *, deployment: {"chat-0": 0.5, "chat-1": 1.0, "chat-2": 7.0},
    )
    world["in_flight"]["chat-0"] = [0.0]
    chooser, agent = Chooser(3), Agent(world["gateway"], applies_on=1)
    done = _execute(_action(world["deployment"]).pk, chooser, agent)
    assert done is not None
    assert done.status == ActionStatus.SUCCEEDED
    # The least loaded by Prometheus (chat-0) was drained, and is the least busy of all.
    assert [m["name"] for m in done.drain["members"]] == ["chat-0"]
    (load,) = chooser.loads
    assert load is not None
    assert min(load, key=lambda n: load[n]) == "chat-0"
    assert load["chat-0"] < 0
    # This platform never lists chat-0 as leaving: the marks go after SETTLE_S anyway.
    assert done.drain["left_after_s"] is None
    assert agent.now == 1.0 + SETTLE_S
    assert not DrainingMember.objects.exists()


def test_fallback_upstream__member_draining__left_out_of_it_too(world: dict[str, Any]) -> None:
    from apps.toggles.services import toggle_create

    chat = world["deployment"]
    chat.status = DeploymentStatus.ACTIVE
    chat.save()
    front = SimulatedDeploymentFactory(team=chat.team, name="front")
    toggle_create(team=chat.team, deployment=front, key="fallback_deployment",
                  preset="fallback_deployment", value="chat", enabled=True, actor=None)  # fmt: skip
    other = Gateway.objects.create(team=chat.team, name="other", listen_port=8081)
    GatewayDeployment.objects.create(gateway=other, deployment=front)
    DrainingMember.objects.create(
        deployment=chat, name="chat-2", expires_at=timezone.now() + timedelta(minutes=1)
    )
    # Both gateways render chat's members: one fronts it, the other falls back to it.
    assert [g.name for g in balancing_drain.gateways_rendering(deployment=chat)] == [
        "edge",
        "other",
    ]
    front_members = [Member("front-0", "127.0.0.1", 9100)]
    (site,) = selectors.gateway_sites(
        gateway=other, members_of=lambda d: MEMBERS if d.pk == chat.pk else front_members
    )
    assert {m.name: m.state for m in site.fallback_members} == {
        "chat-0": "serving",
        "chat-1": "serving",
        "chat-2": "draining",
    }
    # Another deployment's members of the same name would not be touched.
    assert {m.state for m in selectors.draining_marked(front, MEMBERS)} == {"serving"}


def test_draining_row_expired__member_serves_again(world: dict[str, Any]) -> None:
    DrainingMember.objects.create(
        deployment=world["deployment"],
        name="chat-2",
        expires_at=timezone.now() - timedelta(seconds=1),
    )
    states = {m.state for m in selectors.draining_marked(world["deployment"], MEMBERS)}
    assert states == {"serving"}


def test_scale_action_api__drained_scale_down__drain_record_shown_to_the_team(
    world: dict[str, Any], client_for: Any
) -> None:
    from apps.accounts.models import Role
    from tests.factories.accounts import MembershipFactory, UserFactory

    platform, agent = world["platform"](3), Agent(world["gateway"], applies_on=1)
    action = _action(world["deployment"])
    _execute(action.pk, platform, agent)
    viewer = MembershipFactory(
        user=UserFactory(), team=world["deployment"].team, role=Role.VIEWER
    ).user
    response = client_for(viewer).get(f"/api/v1/autoscaling/actions/{action.pk}/")
    assert response.status_code == 200
    drain = response.json()["drain"]
    assert [m["name"] for m in drain["members"]] == ["chat-1"]
    assert drain["gateways"][0]["name"] == "edge"
    assert drain["outcome"] == "removed"


def test_scale_down__members_unreadable__scaled_down_undrained_and_said_so(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreadable(**_: Any) -> Any:
        raise membership.MembershipError("simulator unreachable", retryable=True)

    monkeypatch.setattr(membership, "members_of", unreadable)
    platform, agent = world["platform"](3), Agent(world["gateway"], applies_on=1)
    done = _execute(_action(world["deployment"]).pk, platform, agent)
    assert done is not None
    assert done.status == ActionStatus.SUCCEEDED
    assert done.drain == {
        "members": [],
        "outcome": "not-drained",
        "error": "members: simulator unreachable",
    }
    assert platform.writes == [(2, ())]


class TimeLimit(Exception):
    pass


def test_scale_down__interrupted_mid_drain__members_return_and_it_is_recorded(
    world: dict[str, Any],
) -> None:
    platform = world["platform"](3)

    def sleep(seconds: float) -> None:
        assert DrainingMember.objects.filter(name="chat-1").exists()
        raise TimeLimit

    action = _action(world["deployment"])
    with pytest.raises(TimeLimit):
        scale_action_execute(
            action_id=action.pk,
            actuator_factory=lambda d: platform,
            sleep=sleep,
            clock=lambda: 0.0,
        )
    action.refresh_from_db()
    assert not DrainingMember.objects.exists()
    assert action.drain["outcome"] == "returned"
    assert action.drain["error"] == "the action was interrupted"
    assert platform.writes == []
