"""apply_with_retry against an in-test implementation of the Actuator interface."""

from __future__ import annotations

import pytest

from apps.autoscaling.actuators import (
    ActuatorError,
    ScaleDownPreparer,
    ScaleStatus,
    ScaleTarget,
    apply_with_retry,
)

TARGET = ScaleTarget("simulated", "llm", "chat")
BASE = 0.01


def conflict() -> ActuatorError:
    return ActuatorError("the object changed", retryable=False, conflict=True)


def server_error() -> ActuatorError:
    return ActuatorError("503 from the platform", retryable=True)


def forbidden() -> ActuatorError:
    return ActuatorError("forbidden", retryable=False, permanent_reason="forbidden")


class FakeActuator:
    """Holds a replica count; scripted errors are raised by the next calls, in order."""

    def __init__(
        self,
        spec: int = 2,
        *,
        get_errors: list[ActuatorError] | None = None,
        set_errors: list[ActuatorError] | None = None,
        warnings: tuple[str, ...] = (),
    ) -> None:
        self.spec = spec
        self.get_errors = list(get_errors or [])
        self.set_errors = list(set_errors or [])
        self.warnings = warnings
        self.calls: list[str] = []
        self.keys: list[str] = []
        # Runs when a set call fails: lets a test play a concurrent writer.
        self.on_set_error = lambda: None

    def get_scale(self, target: ScaleTarget) -> ScaleStatus:
        self.calls.append("get")
        if self.get_errors:
            raise self.get_errors.pop(0)
        return ScaleStatus(self.spec, self.spec, warnings=self.warnings)

    def set_replicas(
        self, target: ScaleTarget, replicas: int, *, idempotency_key: str
    ) -> ScaleStatus:
        self.calls.append(f"set:{replicas}")
        self.keys.append(idempotency_key)
        if self.set_errors:
            self.on_set_error()
            raise self.set_errors.pop(0)
        self.spec = replicas
        return ScaleStatus(replicas, replicas)


class PreparingActuator(FakeActuator):
    def __init__(self, *args: object, prepare_error: ActuatorError | None = None, **kw: object):
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.prepare_error = prepare_error
        self.prepared: list[tuple[int, dict[str, float] | None]] = []

    def prepare_scale_down(
        self, target: ScaleTarget, remove: int, pod_load: dict[str, float] | None
    ) -> None:
        self.calls.append(f"prepare:{remove}")
        self.prepared.append((remove, pod_load))
        if self.prepare_error is not None:
            raise self.prepare_error


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_apply_with_retry__already_at_target__noop_without_write() -> None:
    actuator, sleeps = FakeActuator(spec=3), Sleeps()

    status = apply_with_retry(actuator, TARGET, 3, idempotency_key="k", sleep=sleeps)

    assert status == ScaleStatus(3, 3)
    assert actuator.calls == ["get"]
    assert sleeps == []


def test_apply_with_retry__applied_twice__second_is_noop() -> None:
    actuator = FakeActuator(spec=2)

    first = apply_with_retry(actuator, TARGET, 4, idempotency_key="k", sleep=Sleeps())
    second = apply_with_retry(actuator, TARGET, 4, idempotency_key="k", sleep=Sleeps())

    assert first.spec_replicas == second.spec_replicas == 4
    assert actuator.calls == ["get", "set:4", "get"]


def test_apply_with_retry__conflict__rereads_and_writes_again() -> None:
    actuator, sleeps = FakeActuator(spec=2, set_errors=[conflict()]), Sleeps()

    status = apply_with_retry(
        actuator, TARGET, 5, idempotency_key="decision-7", base_delay_s=BASE, sleep=sleeps
    )

    assert status.spec_replicas == 5
    assert actuator.calls == ["get", "set:5", "get", "set:5"]
    assert actuator.keys == ["decision-7", "decision-7"]
    # A conflict is not overload: the pause is short jitter, not backoff.
    assert len(sleeps) == 1
    assert 0 <= sleeps[0] <= BASE * 0.5


def test_apply_with_retry__conflict_and_other_writer_reached_target__noop_after_reread() -> None:
    actuator = FakeActuator(spec=2, set_errors=[conflict()])

    def other_writer() -> None:
        actuator.spec = 5

    actuator.on_set_error = other_writer

    status = apply_with_retry(
        actuator, TARGET, 5, idempotency_key="k", base_delay_s=BASE, sleep=Sleeps()
    )

    assert status.spec_replicas == 5
    assert actuator.calls == ["get", "set:5", "get"]


def test_apply_with_retry__retryable_errors__backoff_delays_grow_then_success() -> None:
    actuator = FakeActuator(spec=2, set_errors=[server_error(), server_error(), server_error()])
    sleeps = Sleeps()

    status = apply_with_retry(
        actuator, TARGET, 6, idempotency_key="k", base_delay_s=BASE, sleep=sleeps
    )

    assert status.spec_replicas == 6
    assert actuator.calls.count("set:6") == 4
    assert len(sleeps) == 3
    assert sleeps[0] < sleeps[1] < sleeps[2]
    for n, delay in enumerate(sleeps):
        assert BASE * 2**n <= delay <= BASE * 2**n * 1.5


def test_apply_with_retry__errors_on_read__retried_too() -> None:
    actuator = FakeActuator(spec=2, get_errors=[server_error()])
    sleeps = Sleeps()

    status = apply_with_retry(
        actuator, TARGET, 3, idempotency_key="k", base_delay_s=BASE, sleep=sleeps
    )

    assert status.spec_replicas == 3
    assert actuator.calls == ["get", "get", "set:3"]
    assert len(sleeps) == 1


def test_apply_with_retry__backoff__capped_at_max_delay() -> None:
    actuator = FakeActuator(spec=2, set_errors=[server_error()] * 5)
    sleeps = Sleeps()

    apply_with_retry(
        actuator,
        TARGET,
        3,
        idempotency_key="k",
        attempts=6,
        base_delay_s=BASE,
        max_delay_s=BASE * 3,
        sleep=sleeps,
    )

    assert max(sleeps) <= BASE * 3 * 1.5
    assert sleeps[-1] >= BASE * 3


def test_apply_with_retry__persistent_retryable_error__raises_retryable_after_all_attempts() -> (
    None
):
    actuator = FakeActuator(spec=2, set_errors=[server_error()] * 10)
    sleeps = Sleeps()

    with pytest.raises(ActuatorError) as info:
        apply_with_retry(
            actuator, TARGET, 3, idempotency_key="k", attempts=4, base_delay_s=BASE, sleep=sleeps
        )

    assert info.value.retryable
    assert "gave up after 4 attempts" in str(info.value)
    assert actuator.calls.count("set:3") == 4
    assert len(sleeps) == 3


def test_apply_with_retry__persistent_conflict__raises_conflict_after_all_attempts() -> None:
    actuator = FakeActuator(spec=2, set_errors=[conflict()] * 10)

    with pytest.raises(ActuatorError) as info:
        apply_with_retry(
            actuator, TARGET, 3, idempotency_key="k", attempts=3, base_delay_s=BASE, sleep=Sleeps()
        )

    assert info.value.conflict
    assert info.value.retryable
    assert actuator.calls.count("get") == 3


def test_apply_with_retry__permanent_error_on_write__raises_at_once() -> None:
    actuator, sleeps = FakeActuator(spec=2, set_errors=[forbidden()]), Sleeps()

    with pytest.raises(ActuatorError) as info:
        apply_with_retry(actuator, TARGET, 3, idempotency_key="k", sleep=sleeps)

    assert info.value.permanent
    assert info.value.permanent_reason == "forbidden"
    assert actuator.calls == ["get", "set:3"]
    assert sleeps == []


def test_apply_with_retry__permanent_error_on_read__raises_at_once() -> None:
    actuator, sleeps = FakeActuator(spec=2, get_errors=[forbidden()]), Sleeps()

    with pytest.raises(ActuatorError) as info:
        apply_with_retry(actuator, TARGET, 3, idempotency_key="k", sleep=sleeps)

    assert str(info.value) == "forbidden"
    assert actuator.calls == ["get"]
    assert sleeps == []


def test_apply_with_retry__negative_replicas__permanent_error_without_calls() -> None:
    actuator = FakeActuator(spec=2)

    with pytest.raises(ActuatorError) as info:
        apply_with_retry(actuator, TARGET, -1, idempotency_key="k", sleep=Sleeps())

    assert info.value.permanent_reason == "invalid"
    assert actuator.calls == []


def test_apply_with_retry__warnings_on_read__kept_in_result() -> None:
    actuator = FakeActuator(spec=2, warnings=("an HPA also scales this",))

    status = apply_with_retry(actuator, TARGET, 3, idempotency_key="k", sleep=Sleeps())

    assert status.warnings == ("an HPA also scales this",)


def test_apply_with_retry__scale_down_with_preparer__prepares_before_write() -> None:
    actuator = PreparingActuator(spec=5)
    assert isinstance(actuator, ScaleDownPreparer)
    load = {"chat-a": 3.0, "chat-b": 0.0}

    status = apply_with_retry(
        actuator, TARGET, 3, idempotency_key="k", sleep=Sleeps(), pod_load=load
    )

    assert status.spec_replicas == 3
    assert actuator.calls == ["get", "prepare:2", "set:3"]
    assert actuator.prepared == [(2, load)]


def test_apply_with_retry__scale_down_retried__prepares_once() -> None:
    actuator = PreparingActuator(spec=5, set_errors=[server_error()])

    apply_with_retry(
        actuator, TARGET, 4, idempotency_key="k", base_delay_s=BASE, sleep=Sleeps(), pod_load={}
    )

    assert actuator.calls == ["get", "prepare:1", "set:4", "get", "set:4"]


def test_apply_with_retry__scale_up_with_preparer__no_preparation() -> None:
    actuator = PreparingActuator(spec=2)

    apply_with_retry(actuator, TARGET, 4, idempotency_key="k", sleep=Sleeps(), pod_load={"a": 1})

    assert actuator.calls == ["get", "set:4"]


def test_apply_with_retry__preparation_fails__still_scales_down_with_warning() -> None:
    actuator = PreparingActuator(spec=4, prepare_error=forbidden())

    status = apply_with_retry(
        actuator, TARGET, 2, idempotency_key="k", sleep=Sleeps(), pod_load={"a": 1.0}
    )

    assert status.spec_replicas == 2
    assert actuator.calls == ["get", "prepare:2", "set:2"]
    assert len(status.warnings) == 1
    assert "could not choose which replicas to remove" in status.warnings[0]


def test_actuator_error__conflict__counts_as_retryable() -> None:
    error = conflict()

    assert error.retryable
    assert not error.permanent
