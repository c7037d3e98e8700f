"""In-memory platforms for scale-down tests: a replica count that records each write and
the replicas it was told to remove."""

from __future__ import annotations

from collections.abc import Sequence

from apps.autoscaling.actuators.base import ActuatorError, ScaleStatus, ScaleTarget


class Platform:
    """An in-memory replica count that records every write and what it was told to remove;
    ``fail`` refuses every write (permanently)."""

    def __init__(self, spec: int, *, fail: bool = False) -> None:
        self.spec = spec
        self.fail = fail
        self.writes: list[tuple[int, tuple[str, ...]]] = []
        self.removed: set[str] = set()

    def get_scale(self, target: ScaleTarget) -> ScaleStatus:
        return ScaleStatus(self.spec, self.spec)

    def set_replicas(
        self,
        target: ScaleTarget,
        replicas: int,
        *,
        idempotency_key: str,
        remove: Sequence[str] = (),
    ) -> ScaleStatus:
        if self.fail:
            raise ActuatorError("remove names replicas that are gone", retryable=False)
        self.writes.append((replicas, tuple(remove)))
        self.removed.update(remove)
        self.spec = replicas
        return ScaleStatus(self.spec, self.spec)
