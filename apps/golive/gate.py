"""The gate, as inventory and autoscaling call it without importing this app: the
settings ``INVENTORY_ACTIVATION_GUARD`` and ``AUTOSCALING_ENFORCE_GUARD`` name these
functions (an empty setting turns the gate off). Each returns None to let the change
through, or a message naming the required checks that do not pass."""

from __future__ import annotations

from apps.inventory.models import Deployment

from .selectors import gate_failures


def refusal_message(failures: list[dict[str, str]], *, what: str) -> str:
    listed = ", ".join(f"{f['key']} ({f['status']})" for f in failures)
    return (
        f"{what} needs every required go-live check to pass; not passing: {listed}. "
        "Run the checks (POST /api/v1/golive/deployments/<id>/run-checks/) or have a team "
        "admin override with a reason (POST /api/v1/golive/deployments/<id>/override/)."
    )


def activation_refusal(*, deployment: Deployment | None) -> str | None:
    """Why ``deployment`` may not become active (None: it may). A deployment being
    created has no checks yet, so it cannot be created active."""
    if deployment is None or deployment.pk is None:
        return (
            "A deployment cannot be created active: create it, let the go-live checks pass, "
            "then advance it (or have a team admin override)."
        )
    failures = gate_failures(deployment=deployment)
    return refusal_message(failures, what="Activation") if failures else None


def enforce_refusal(*, deployment: Deployment) -> str | None:
    """Why the deployment's scaling policy may not leave dry-run for enforce (None: it may)."""
    failures = gate_failures(deployment=deployment)
    return refusal_message(failures, what="Enforce mode") if failures else None
