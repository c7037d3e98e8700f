"""Actuator for the fleet simulator's HTTP API (``apps.fleetsim.exposition``).

``GET {base_url}/scale/<namespace>/<name>`` answers
``{"spec_replicas", "ready_replicas", "starting_replicas"}``; ``PUT`` with
``{"replicas": N}`` sets the desired count and answers the same. A scale-down may name the
replicas to remove (``remove``, e.g. those a gateway already drained, see
apps/balancing/membership.py) and give them ``drain_s`` simulated seconds to finish what
they hold. Errors come back as
``{"error": "..."}`` with 400, 404, 405 or 413, all permanent; 5xx, timeouts and refused
connections are retryable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import requests
import structlog

from .base import ActuatorError, ScaleStatus, ScaleTarget

__all__ = ["SimulatedActuator"]

logger = structlog.get_logger("controlplane.autoscaling.actuators.simulated")

_PERMANENT_REASONS = {
    400: "invalid",
    404: "not-found",
    405: "invalid",
    413: "invalid",
}


class SimulatedActuator:
    """Scales ``simulated`` targets of one fleet simulator at ``base_url``."""

    def __init__(
        self,
        base_url: str,
        *,
        session: requests.Session | None = None,
        connect_timeout_s: float = 2.0,
        read_timeout_s: float = 5.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()
        self.timeout = (connect_timeout_s, read_timeout_s)

    def _url(self, target: ScaleTarget) -> str:
        if target.kind != "simulated":
            raise ActuatorError(
                f"the simulator actuator cannot scale {target.kind} targets",
                retryable=False,
                permanent_reason="unsupported-target",
            )
        namespace, name = quote(target.namespace, safe=""), quote(target.name, safe="")
        return f"{self.base_url}/scale/{namespace}/{name}"

    def _request(
        self, action: str, method: str, url: str, *, json: Any = None, headers: Any = None
    ) -> ScaleStatus:
        try:
            response = self.session.request(
                method, url, json=json, headers=headers, timeout=self.timeout
            )
        except requests.Timeout:
            raise ActuatorError(
                f"{action}: the simulator did not answer within {self.timeout[1]:g}s",
                retryable=True,
            ) from None
        except requests.RequestException as exc:
            raise ActuatorError(
                f"{action}: simulator unreachable at {self.base_url}: {exc}", retryable=True
            ) from None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.status_code != 200:
            detail = (payload.get("error") if isinstance(payload, dict) else None) or response.text[
                :200
            ]
            status = response.status_code
            retryable = status >= 500 or status in (408, 429)
            raise ActuatorError(
                f"{action}: simulator answered {status}: {detail}",
                retryable=retryable,
                permanent_reason="" if retryable else _PERMANENT_REASONS.get(status, "failed"),
            )
        try:
            return ScaleStatus(
                spec_replicas=int(payload["spec_replicas"]),
                ready_replicas=int(payload["ready_replicas"]),
            )
        except (TypeError, KeyError, ValueError):
            raise ActuatorError(
                f"{action}: unexpected answer from the simulator: {response.text[:200]}",
                retryable=True,
            ) from None

    def get_scale(self, target: ScaleTarget) -> ScaleStatus:
        return self._request(f"read scale of {target}", "GET", self._url(target))

    def set_replicas(
        self,
        target: ScaleTarget,
        replicas: int,
        *,
        idempotency_key: str,
        remove: Sequence[str] = (),
        drain_s: float = 0.0,
    ) -> ScaleStatus:
        """Set the desired count; on a scale-down ``remove`` names the replicas (pods) that
        go first and ``drain_s`` lets them finish their requests. Naming a replica that is
        not there, or more than the scale-down removes, is a permanent ``invalid`` error."""
        url = self._url(target)
        body: dict[str, Any] = {"replicas": replicas}
        if remove:
            body["remove"] = list(remove)
        if drain_s:
            body["drain_s"] = drain_s
        status = self._request(
            f"scale {target} to {replicas}",
            "PUT",
            url,
            json=body,
            # The simulator ignores it; it ties the request to the decision in proxies' logs.
            headers={"Idempotency-Key": idempotency_key},
        )
        logger.info(
            "simulator-scaled",
            target=str(target),
            replicas=replicas,
            idempotency_key=idempotency_key,
        )
        return status
