"""Reading toggles: the definitions the evaluator takes, per team and deployment."""

from __future__ import annotations

from dataclasses import dataclass

from apps.accounts.services import token_hash

from .evaluation import DefinitionError, FlagDefinition, Override, ValueType, rules_parse
from .models import DegradationPolicy, GatewayToken, Toggle, ToggleVersion


def toggle_definition(toggle: Toggle, *, deployment_name: str = "") -> FlagDefinition:
    """The evaluator's view of a stored toggle. A stored rule set that no longer parses
    (it was valid when saved) leaves the toggle without rules rather than failing reads."""
    value_type = ValueType(toggle.value_type)
    try:
        rules = rules_parse(toggle.rules, value_type=value_type)
    except DefinitionError:
        rules = ()
    override = None
    if toggle.override_level is not None:
        override = Override(
            value=toggle.override_value,
            level=toggle.override_level,
            source=toggle.override_source,
        )
    metadata: dict[str, object] = {"preset": toggle.preset}
    if deployment_name:
        metadata["deployment"] = deployment_name
    return FlagDefinition(
        key=toggle.key,
        value_type=value_type,
        enabled=toggle.enabled,
        value=toggle.value,
        off_value=toggle.off_value,
        rules=rules,
        override=override,
        metadata=metadata,
    )


@dataclass(frozen=True)
class TeamToggles:
    """A team's toggles at one version: the team-wide ones, and per deployment name the
    deployment's own (which win over a team-wide toggle of the same key)."""

    team_id: int
    version: int
    team: dict[str, FlagDefinition]
    deployments: dict[str, dict[str, FlagDefinition]]

    def for_deployment(self, name: str | None) -> dict[str, FlagDefinition]:
        if not name:
            return self.team
        return {**self.team, **self.deployments.get(name, {})}


def team_toggle_version(*, team_id: int) -> int:
    return (
        ToggleVersion.objects.filter(team_id=team_id).values_list("version", flat=True).first() or 0
    )


def team_toggles(*, team_id: int) -> TeamToggles:
    """Every toggle of the team with the version they were read at (one transaction's
    view: the version is read first, so a cache keyed by it is never newer than its
    content)."""
    version = team_toggle_version(team_id=team_id)
    team: dict[str, FlagDefinition] = {}
    deployments: dict[str, dict[str, FlagDefinition]] = {}
    rows = Toggle.objects.filter(team_id=team_id).select_related("deployment")
    for toggle in rows:
        if toggle.deployment_id is None:
            team[toggle.key] = toggle_definition(toggle)
        else:
            name = toggle.deployment.name  # type: ignore[union-attr]
            deployments.setdefault(name, {})[toggle.key] = toggle_definition(
                toggle, deployment_name=name
            )
    return TeamToggles(team_id=team_id, version=version, team=team, deployments=deployments)


def degradation_policy_ids() -> list[int]:
    """The policies the automatic loop evaluates: enabled ones (a disabled policy, or all of
    them with the global switch off, keep their level; the engine says so)."""
    return list(
        DegradationPolicy.objects.filter(enabled=True).order_by("pk").values_list("pk", flat=True)
    )


def gateway_token_authenticate(*, token: str) -> GatewayToken | None:
    """The active gateway token whose secret is ``token``."""
    if not token:
        return None
    return GatewayToken.objects.filter(
        token_hash=token_hash(token), revoked_at__isnull=True
    ).first()
