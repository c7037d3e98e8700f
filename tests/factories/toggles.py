"""Toggles and degradation policies, made through the services (so versions, history and
audit entries are what the application would have recorded)."""

from __future__ import annotations

from typing import Any

from apps.inventory.models import Deployment
from apps.toggles.models import DegradationPolicy, Toggle
from apps.toggles.services import toggle_create

LEVELS = [
    {"name": "cap tokens", "set": {"max_output_tokens": 512}},
    {"name": "shed low", "set": {"shed_fraction": {"low": 0.2}}},
]


def degradation_setup(deployment: Deployment, *, name: str = "chat-degrade") -> DegradationPolicy:
    """A team-wide ``max_output_tokens`` toggle (on, 4096; kept if the team has it), the
    deployment's own
    ``shed_fraction`` toggle (off) and a two-level policy over them, triggered by an SLO
    of the deployment."""
    from tests.factories.slos import SloFactory

    team = deployment.team
    slo = SloFactory(deployment=deployment)
    if not Toggle.objects.filter(team=team, deployment=None, key="max_output_tokens").exists():
        toggle_create(team=team, key="max_output_tokens", preset="max_output_tokens",
                      value=4096, enabled=True, actor=None)  # fmt: skip
    toggle_create(team=team, deployment=deployment, key="shed_fraction", preset="shed_fraction",
                  actor=None)  # fmt: skip
    return DegradationPolicy.objects.create(
        team=team, deployment=deployment, name=name, levels=LEVELS,
        triggers=[{"kind": "slo_state", "slo": slo.pk}],
    )  # fmt: skip


def policy_body(target: Deployment, **overrides: Any) -> dict[str, Any]:
    from tests.factories.slos import SloFactory

    slo = SloFactory(deployment=target)
    return {
        "deployment": target.pk,
        "name": "chat-degrade",
        "triggers": [{"kind": "slo_state", "slo": slo.pk}],
        "levels": LEVELS,
        **overrides,
    }
