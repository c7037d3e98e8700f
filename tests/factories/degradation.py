"""A degradation policy on a deployment with the toggles its levels set: a team-wide
``max_output_tokens`` (4096, on) and the deployment's own ``shed_fraction``, with the SLO its
trigger watches."""

from __future__ import annotations

from typing import Any

from apps.inventory.models import Deployment
from apps.toggles.models import DegradationPolicy
from apps.toggles.services import toggle_create
from tests.factories.slos import SloFactory

TWO_LEVELS = [
    {"name": "cap tokens", "set": {"max_output_tokens": 512}},
    {"name": "shed low", "set": {"shed_fraction": {"low": 0.2}}},
]


def degradation_policy(
    *, deployment: Deployment, states: tuple[str, ...] = ("page", "ticket"), **fields: Any
) -> DegradationPolicy:
    """``fields`` override the policy's (levels: ``TWO_LEVELS``; one ``slo_state`` trigger
    on a new SLO of the deployment, in ``states``)."""
    team = deployment.team
    slo = SloFactory(deployment=deployment)
    toggle_create(team=team, key="max_output_tokens", preset="max_output_tokens", value=4096,
                  enabled=True, actor=None)  # fmt: skip
    toggle_create(team=team, deployment=deployment, key="shed_fraction", preset="shed_fraction",
                  actor=None)  # fmt: skip
    defaults: dict[str, Any] = {
        "name": f"{deployment.name}-degrade",
        "levels": TWO_LEVELS,
        "triggers": [{"kind": "slo_state", "slo": slo.pk, "states": list(states)}],
    }
    return DegradationPolicy.objects.create(
        team=team, deployment=deployment, **{**defaults, **fields}
    )
