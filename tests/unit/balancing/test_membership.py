"""Membership's pure parts: how each source's states map to member states, and which
members a scale-down removes (examples plus properties checked with hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.balancing.membership import (
    MEMBER_STATES,
    Member,
    MemberSet,
    asg_instance_state,
    endpoint_state,
    members_to_remove,
    removal_order_for,
    simulator_state,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _member(name: str, state: str = "serving", **kwargs: object) -> Member:
    return Member(name, "10.0.0.1", 8000, state, **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------ state mapping


@pytest.mark.parametrize(
    ("state", "expected"),
    [("ready", "serving"), ("starting", "loading"), ("draining", "draining"), ("?", "down")],
)
def test_simulator_state__replica_state__member_state(state: str, expected: str) -> None:
    assert simulator_state(state) == expected


@pytest.mark.parametrize(
    ("ready", "serving", "terminating", "expected"),
    [
        (True, True, False, "serving"),
        (None, None, None, "serving"),  # absent conditions: ready, serving, not terminating
        (True, None, None, "serving"),
        (False, False, False, "loading"),
        (False, None, None, "loading"),
        (True, False, False, "loading"),  # publishNotReadyAddresses: ready but not serving
        (False, True, True, "draining"),
        (False, None, True, "draining"),
        (False, False, True, "down"),
    ],
)
def test_endpoint_state__conditions__member_state(
    ready: bool | None, serving: bool | None, terminating: bool | None, expected: str
) -> None:
    assert endpoint_state(ready=ready, serving=serving, terminating=terminating) == expected


@pytest.mark.parametrize(
    ("lifecycle", "health", "ec2", "expected"),
    [
        ("Pending", "Healthy", "pending", "loading"),
        ("Pending:Wait", "Healthy", "running", "loading"),
        ("Pending:Proceed", "Healthy", "running", "loading"),
        ("InService", "Healthy", "running", "serving"),
        ("InService", "Unhealthy", "running", "down"),
        ("InService", "Healthy", "stopping", "down"),
        ("Terminating", "Healthy", "running", "draining"),
        ("Terminating:Wait", "Healthy", "running", "draining"),
        ("Detaching", "Healthy", "running", "draining"),
        ("Standby", "Healthy", "running", None),
        ("EnteringStandby", "Healthy", "running", None),
        ("Warmed:Running", "Healthy", "running", None),
        ("Warmed:Pending", "Healthy", "pending", None),
        ("Detached", "Healthy", "running", None),
        ("Terminated", "Healthy", "terminated", None),
    ],
)
def test_asg_instance_state__lifecycle__member_state_or_not_a_member(
    lifecycle: str, health: str, ec2: str, expected: str | None
) -> None:
    assert asg_instance_state(lifecycle, health_status=health, ec2_state=ec2) == expected


def test_member_endpoint__ipv6__bracketed() -> None:
    assert Member("p", "fd00::1", 8000, "serving").endpoint == "[fd00::1]:8000"
    assert Member("p", "10.1.2.3", 8000, "serving").endpoint == "10.1.2.3:8000"


def test_member_set__iterated__its_members_in_order() -> None:
    members = (_member("chat-0"), _member("chat-1", "loading"))
    found = MemberSet(members, "test", T0)

    assert list(found) == list(members)
    assert len(found) == 2
    assert found.serving == (members[0],)
    assert found.in_state("loading") == (members[1],)


# ------------------------------------------------------------------ which to remove


def test_members_to_remove__mixed_states__down_then_loading_then_serving() -> None:
    members = [
        _member("chat-0"),
        _member("chat-1", "loading"),
        _member("chat-2", "draining"),
        _member("chat-3", "down"),
        _member("chat-4"),
    ]

    chosen = members_to_remove(members, 3)

    assert [m.name for m in chosen] == ["chat-3", "chat-1", "chat-4"]


def test_members_to_remove__load_known__least_loaded_serving_first() -> None:
    members = [_member("chat-0"), _member("chat-1"), _member("chat-2")]

    chosen = members_to_remove(members, 2, load={"chat-0": 1.0, "chat-1": 7.0, "chat-2": 3.0})

    assert [m.name for m in chosen] == ["chat-0", "chat-2"]


def test_members_to_remove__load_unknown_for_one__measured_idle_one_first() -> None:
    members = [_member("chat-0"), _member("chat-1")]

    chosen = members_to_remove(members, 1, load={"chat-0": 5.0})

    assert [m.name for m in chosen] == ["chat-0"]


def test_members_to_remove__equal_load__newest_start_first() -> None:
    members = [
        _member("i-b", started_at=T0),
        _member("i-a", started_at=T0 + timedelta(hours=2)),
        _member("i-c", started_at=T0 + timedelta(hours=1)),
    ]

    chosen = members_to_remove(members, 2)

    assert [m.name for m in chosen] == ["i-a", "i-c"]


def test_members_to_remove__no_start_times__highest_ordinal_first() -> None:
    members = [_member(f"chat-{i}") for i in (2, 10, 9)]

    assert [m.name for m in members_to_remove(members, 2)] == ["chat-10", "chat-9"]


def test_members_to_remove__statefulset__highest_ordinals_whatever_the_state() -> None:
    members = [_member("embed-0", "loading"), _member("embed-1"), _member("embed-2")]

    chosen = members_to_remove(
        members, 1, load={"embed-2": 9.0}, order=removal_order_for("k8s-statefulset")
    )

    assert [m.name for m in chosen] == ["embed-2"]
    assert removal_order_for("k8s-deployment") == "least-disruptive"


def test_members_to_remove__negative_count__value_error() -> None:
    with pytest.raises(ValueError, match="count"):
        members_to_remove([_member("chat-0")], -1)


_names = st.sampled_from([f"chat-{i}" for i in range(12)] + ["i-0a", "i-0b", "pod-x"])
_members = st.lists(
    st.builds(
        _member,
        _names,
        st.sampled_from(MEMBER_STATES),
        started_at=st.none() | st.integers(0, 5).map(lambda h: T0 + timedelta(hours=h)),
    ),
    unique_by=lambda m: m.name,
    max_size=12,
)
_loads = st.dictionaries(_names, st.floats(0, 100, allow_nan=False), max_size=12)


@given(_members, st.integers(0, 15), _loads)
def test_members_to_remove__any_members__never_more_than_asked_nor_draining(
    members: list[Member], count: int, load: dict[str, float]
) -> None:
    chosen = members_to_remove(members, count, load=load)

    candidates = [m for m in members if m.state != "draining"]
    assert len(chosen) == min(count, len(candidates))
    assert len({m.name for m in chosen}) == len(chosen)
    assert all(m in candidates for m in chosen)


@given(_members, st.integers(0, 15), _loads)
def test_members_to_remove__any_members__serving_only_once_non_serving_exhausted(
    members: list[Member], count: int, load: dict[str, float]
) -> None:
    chosen = members_to_remove(members, count, load=load)

    idle = {m.name for m in members if m.state in ("down", "loading")}
    if any(m.state == "serving" for m in chosen):
        assert idle <= {m.name for m in chosen}
    else:
        assert len(chosen) == min(count, len(idle))


@given(_members, st.integers(0, 15), _loads, st.randoms(use_true_random=False))
def test_members_to_remove__any_order_of_members__same_choice(
    members: list[Member], count: int, load: dict[str, float], rng: object
) -> None:
    shuffled = list(members)
    rng.shuffle(shuffled)  # type: ignore[attr-defined]

    assert members_to_remove(shuffled, count, load=load) == members_to_remove(
        members, count, load=load
    )
