"""The backtest replay (pure) and its API and command (validation, errors)."""

from __future__ import annotations

import io
import socket
import time

import pytest
from django.core.management import CommandError, call_command
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.accounts.models import Role
from apps.autoscaling import engine
from apps.autoscaling.backtest import backtest_payload, backtest_replay
from tests.factories.accounts import MembershipFactory, UserFactory
from tests.factories.autoscaling import AutoscalingPolicyFactory
from tests.factories.inventory import DeploymentFactory

START = 1_700_000_000.0


def _policy(**kw):
    base = dict(
        min_replicas=1,
        max_replicas=10,
        targets=(engine.Target("queue_length", 5.0),),
        scale_down_stabilization_s=60.0,
    )
    base.update(kw)
    return engine.Policy(**base)


def _series(values, step=10.0):
    return [(START + i * step, v) for i, v in enumerate(values) if v is not None]


def test_replay__load_step_then_quiet__scales_up_at_once_and_down_after_window():
    # 6 steps quiet, 6 steps with 40 waiting, then quiet for 12 steps (10 s apart).
    queue = [0.0] * 6 + [40.0] * 6 + [0.0] * 12
    result = backtest_replay(
        policy=_policy(),
        series={"queue_length": _series(queue)},
        actual=_series([1] * len(queue)),
        start=START,
        end=START + 10 * (len(queue) - 1),
        step_s=10.0,
    )
    replicas = [s.replicas for s in result.steps]
    # The decision at step 6 wants 8; HPA's default rate limit (4 pods per 15 s) allows 5,
    # which shows from step 7 on, and the rest one period later.
    assert replicas[:7] == [1] * 7
    assert replicas[7:10] == [5, 5, 8]
    # Quiet from step 12: the 60 s window keeps 8 until the high readings leave it.
    first_down = next(i for i, r in enumerate(replicas) if i > 9 and r < 8)
    assert (first_down - 12) * 10 >= 60
    assert result.actions == 3
    assert result.actual_actions == 0
    assert result.summary()["rules"]["stabilization:down"] >= 5


def test_replay__missing_readings__never_scale_down():
    queue = [40.0] * 3 + [None] * 20
    result = backtest_replay(
        policy=_policy(scale_down_stabilization_s=0.0),
        series={"queue_length": _series(queue)},
        actual=[],
        start=START,
        end=START + 10 * (len(queue) - 1),
        step_s=10.0,
    )
    peak = max(s.replicas for s in result.steps)
    after = [s for s in result.steps if s.t > START + 30]
    assert peak == 8
    assert all(s.replicas == peak for s in after)
    assert {s.rule for s in after[1:]} == {"hold:missing_metrics"}
    assert result.actual_replica_hours is None
    assert result.summary()["replica_hours_ratio"] is None


def test_replay__cold_start__new_replicas_count_as_starting_until_ready():
    queue = [20.0] * 10
    result = backtest_replay(
        policy=_policy(cold_start_s=25.0),
        series={"queue_length": _series(queue)},
        actual=[],
        start=START,
        end=START + 90,
        step_s=10.0,
        initial_replicas=1,
    )
    steps = result.steps
    assert steps[1].replicas == 4
    # Started at t=0: starting at t=10 and t=20, ready from t=30 (25 s later, next step).
    assert [s.ready for s in steps[1:4]] == [1, 1, 4]
    # Still 20 waiting with 4 replicas asked: no runaway while they load.
    assert max(s.replicas for s in steps) == 4


def test_replay__utilization_target__rescaled_to_simulated_replicas_no_runaway():
    # The real fleet ran 4 replicas at 90 % KV-cache use the whole time.
    policy = _policy(targets=(engine.Target("kv_cache_usage", 0.6, "utilization"),))
    n = 12
    result = backtest_replay(
        policy=policy,
        series={"kv_cache_usage": _series([0.9] * n)},
        actual=_series([4] * n),
        start=START,
        end=START + 10 * (n - 1),
        step_s=10.0,
    )
    # Same total spread over 6 replicas is 60 %: on target, so it stays at 6.
    assert result.steps[0].replicas == 4
    assert {s.replicas for s in result.steps[1:]} == {6}
    assert result.actual_actions == 0
    assert result.summary()["replica_hours_ratio"] == pytest.approx(
        (4 + 6 * (n - 1)) / (4 * n), abs=1e-3
    )


def test_replay__actual_known_for_part__gpu_hours_known_covers_only_that_part():
    policy = _policy()
    n = 12
    # The actual count is known for the last 3 steps only (a deployment 30 s old).
    actual = _series([2] * n)[-3:]
    result = backtest_replay(
        policy=policy,
        series={"kv_cache_usage": _series([0.9] * n)},
        actual=actual,
        start=START,
        end=START + 10 * (n - 1),
        step_s=10.0,
    )
    summary = result.summary()
    known = [s for s in result.steps if s.actual is not None]
    assert len(known) == 3
    hours = 10.0 / 3600.0
    assert summary["gpu_hours_known"] == pytest.approx(
        sum(s.replicas for s in known) * hours, abs=1e-4
    )
    assert summary["gpu_hours"] == pytest.approx(
        sum(s.replicas for s in result.steps) * hours, abs=1e-4
    )
    assert summary["gpu_hours_known"] < summary["gpu_hours"]


def test_replay__input_validation__refuses_bad_step_and_range():
    with pytest.raises(ValueError, match="step"):
        backtest_replay(policy=_policy(), series={}, actual=[], start=0, end=10, step_s=0)
    with pytest.raises(ValueError, match="end"):
        backtest_replay(policy=_policy(), series={}, actual=[], start=10, end=0, step_s=1)


@settings(max_examples=60, deadline=None)
@given(
    readings=st.lists(st.one_of(st.none(), st.floats(0, 500)), min_size=1, max_size=60),
    actual=st.lists(st.integers(0, 30), min_size=1, max_size=60),
    min_r=st.integers(1, 5),
    span=st.integers(0, 10),
    cold=st.sampled_from([0.0, 15.0, 60.0]),
)
def test_replay__any_readings__within_bounds_deterministic_no_down_on_missing(
    readings, actual, min_r, span, cold
):
    policy = _policy(min_replicas=min_r, max_replicas=min_r + span, cold_start_s=cold)
    kwargs = dict(
        policy=policy,
        series={"queue_length": _series(readings)},
        actual=_series(actual),
        start=START,
        end=START + 10 * (len(readings) - 1),
        step_s=10.0,
    )
    first = backtest_replay(**kwargs)
    assert first == backtest_replay(**kwargs)
    steps = first.steps
    assert all(policy.min_replicas <= s.replicas <= policy.max_replicas for s in steps)
    assert all(0 <= s.ready <= s.replicas for s in steps)
    for i, s in enumerate(steps[:-1]):
        if readings[i] is None:
            assert steps[i + 1].replicas >= s.replicas


def test_payload__changes_timeline__keeps_first_and_changed_steps_only():
    queue = [0.0] * 3 + [40.0] * 3
    result = backtest_replay(
        policy=_policy(),
        series={"queue_length": _series(queue)},
        actual=_series([1] * 6),
        start=START,
        end=START + 50,
        step_s=10.0,
    )
    full = backtest_payload(result, 7, "full")
    changes = backtest_payload(result, 7, "changes")
    assert len(full["steps"]) == 6
    assert 1 < len(changes["steps"]) < 6
    assert changes["steps"][0]["t"] == full["steps"][0]["t"]
    assert backtest_payload(result, 7, "none")["steps"] == []


# --------------------------------------------------------------------------- API / command


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def viewer(client_for):
    deployment = DeploymentFactory(min_replicas=1, max_replicas=8)
    user = UserFactory()
    MembershipFactory(user=user, team=deployment.team, role=Role.VIEWER)
    return deployment, client_for(user)


def _body(deployment, **kw):
    body = {"deployment": deployment.pk, "start": "2026-11-20T08:00:00Z"}
    body.update(kw)
    return body


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({}, "policy", "no scaling policy"),
        ({"end": "2026-11-20T07:00:00Z"}, "start", "start before it ends"),
        ({"step_s": 0.5}, "step_s", "greater than or equal to 1"),
        ({"start": "yesterday"}, "start", "Datetime has wrong format"),
        ({"timeline": "some"}, "timeline", "not a valid choice"),
        (
            {"policy": {"targets": [{"signal": "queue_length", "value": 0}]}},
            "policy",
            "positive",
        ),
        (
            {
                "policy": {"targets": [{"signal": "queue_length", "value": 5}]},
                "start": "2020-01-01T00:00:00Z",
                "end": "2020-02-01T00:00:00Z",
            },
            "non_field_errors",
            "larger step",
        ),
    ],
)
def test_backtest_api__bad_input__400_naming_the_problem(viewer, overrides, field, fragment):
    deployment, client = viewer
    response = client.post(
        "/api/v1/autoscaling/backtests/", _body(deployment, **overrides), format="json"
    )
    assert response.status_code == 400, response.content
    assert fragment in str(response.json()["errors"][field])


@pytest.mark.django_db
def test_backtest_api__other_teams_deployment__400_does_not_exist(viewer):
    _, client = viewer
    other = DeploymentFactory()
    AutoscalingPolicyFactory(deployment=other)
    response = client.post("/api/v1/autoscaling/backtests/", _body(other), format="json")
    assert response.status_code == 400
    assert "does not exist" in str(response.json()["errors"]["deployment"])


@pytest.mark.django_db
def test_backtest_api__prometheus_unreachable__503_with_reason(viewer, settings):
    deployment, client = viewer
    settings.PROMETHEUS_URL = f"http://127.0.0.1:{_closed_port()}"
    AutoscalingPolicyFactory(deployment=deployment)
    end = time.time()
    response = client.post(
        "/api/v1/autoscaling/backtests/",
        {
            "deployment": deployment.pk,
            "start": _iso(end - 600),
            "end": _iso(end),
            "step_s": 10,
        },
        format="json",
    )
    assert response.status_code == 503, response.content
    assert "Prometheus" in response.json()["detail"]


def _iso(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat()


@pytest.mark.django_db
def test_backtest_command__bad_arguments__clear_errors():
    deployment = DeploymentFactory(name="chat")
    with pytest.raises(CommandError, match="no deployment named"):
        call_command("backtest", "nope", stdout=io.StringIO())
    with pytest.raises(CommandError, match="not a duration"):
        call_command("backtest", "chat", "--since", "soon", stdout=io.StringIO())
    with pytest.raises(CommandError, match="no scaling policy"):
        call_command("backtest", str(deployment.pk), stdout=io.StringIO())
    AutoscalingPolicyFactory(deployment=deployment)
    with pytest.raises(CommandError, match="not valid JSON"):
        call_command("backtest", "chat", "--policy", "{targets", stdout=io.StringIO())
    with pytest.raises(CommandError, match="at least one target"):
        call_command("backtest", "chat", "--policy", '{"targets": []}', stdout=io.StringIO())
