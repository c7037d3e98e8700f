"""Changing toggles. Every change is validated, audited, recorded as a
:class:`~apps.toggles.models.ToggleChange` and bumps the team's toggle version in the same
transaction; the read path learns of it when that transaction commits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.accounts.models import Team
from apps.accounts.team_tokens import team_token_create, team_token_delete, team_token_revoke
from apps.audit.models import AuditAction
from apps.audit.services import audited
from apps.inventory.models import Deployment, DeploymentStatus
from apps.metrics.catalogue import Signal
from apps.slos.models import Slo

from .engine import EngineSpec, EngineState, Step, degradation_step
from .evaluation import DefinitionError, ValueType, rules_parse
from .models import (
    DegradationPolicy,
    DegradationState,
    DegradationSwitch,
    DegradationTransition,
    GatewayToken,
    Toggle,
    ToggleChange,
    ToggleVersion,
)
from .notifications import transition_notify
from .policy_spec import (
    Level,
    SpecError,
    Trigger,
    TriggerKind,
    level_settings,
    levels_parse,
    toggles_named,
    triggers_parse,
)
from .presets import PRESETS, Preset, preset_value_error
from .readcache import tokens_changed
from .triggers import triggers_observe

logger = structlog.get_logger("controlplane.toggles")

# Called with the team id and its new version once the change commits (the read path's
# cache and change stream subscribe here).
_version_listeners: list[Callable[[int, int], None]] = []


def toggle_version_listen(listener: Callable[[int, int], None]) -> None:
    if listener not in _version_listeners:
        _version_listeners.append(listener)


def toggle_version_bump(*, team_id: int) -> int:
    """Bump the team's toggle version (inside the caller's transaction) and announce the
    new version once it commits."""
    now = timezone.now()
    updated = ToggleVersion.objects.filter(team_id=team_id).update(
        version=F("version") + 1, changed_at=now
    )
    if not updated:
        ToggleVersion.objects.get_or_create(team_id=team_id, defaults={"changed_at": now})
        ToggleVersion.objects.filter(team_id=team_id).update(
            version=F("version") + 1, changed_at=now
        )
    version = ToggleVersion.objects.values_list("version", flat=True).get(team_id=team_id)
    transaction.on_commit(lambda: _announce(team_id, version))
    return version


def _announce(team_id: int, version: int) -> None:
    for listener in list(_version_listeners):
        listener(team_id, version)


# --------------------------------------------------------------------------- validation


def toggle_clean(
    *,
    team: Team,
    deployment: Deployment | None,
    preset: str,
    value_type: str | None,
    value: Any,
    off_value: Any = None,
    rules: Any = None,
) -> dict[str, Any]:
    """The checked fields of a toggle, with the preset's type and off value filled in;
    raises ValidationError naming each bad field."""
    errors: dict[str, str] = {}
    try:
        kind = Preset(preset)
    except ValueError:
        raise ValidationError({"preset": f"Unknown preset {preset!r}."}) from None
    spec = PRESETS.get(kind)
    if spec is not None:
        if value_type not in (None, "", spec.value_type.value):
            errors["value_type"] = f"A {kind} toggle is a {spec.value_type}."
        vtype = spec.value_type
        if off_value is None:
            off_value = spec.off_value
    else:
        try:
            vtype = ValueType(value_type or "")
        except ValueError:
            raise ValidationError(
                {"value_type": "Choose boolean, number, string or object."}
            ) from None
        if off_value is None:
            errors["off_value"] = "A custom toggle needs an off value."
    if deployment is not None and deployment.team_id != team.pk:
        errors["deployment"] = "The deployment belongs to another team."
    for field, candidate in (("value", value), ("off_value", off_value)):
        if field in errors:
            continue
        problem = preset_value_error(preset=kind, value_type=vtype, value=candidate)
        if problem is None and kind is Preset.FALLBACK_DEPLOYMENT and candidate:
            problem = _fallback_error(team=team, deployment=deployment, name=candidate)
        if problem:
            errors[field] = problem
    try:
        parsed_rules = rules_parse(rules or [], value_type=vtype)
    except DefinitionError as exc:
        errors["rules"] = str(exc)
        parsed_rules = ()
    if not errors and kind is Preset.FALLBACK_DEPLOYMENT:
        for rule in parsed_rules:
            for candidate in [rule.value, *(arm.value for arm in rule.split)]:
                if candidate and (
                    problem := _fallback_error(team=team, deployment=deployment, name=candidate)
                ):
                    errors["rules"] = problem
    if errors:
        raise ValidationError(errors)
    return {
        "preset": kind.value,
        "value_type": vtype.value,
        "value": value,
        "off_value": off_value,
        "rules": rules or [],
    }


def _fallback_error(*, team: Team, deployment: Deployment | None, name: str) -> str | None:
    target = Deployment.objects.filter(team=team, name=name).only("status").first()
    if target is None:
        return f"No deployment named {name!r} in this team."
    if deployment is not None and target.pk == deployment.pk:
        return "A deployment cannot fall back to itself."
    if target.status != DeploymentStatus.ACTIVE:
        return f"The fallback {name!r} is {target.status}, not serving."
    return None


def level_value_error(*, toggle: Toggle, value: Any) -> str | None:
    """Why a degradation level may not set ``toggle`` to ``value``, or None."""
    problem = preset_value_error(
        preset=Preset(toggle.preset), value_type=ValueType(toggle.value_type), value=value
    )
    if problem is None and toggle.preset == Preset.FALLBACK_DEPLOYMENT and value:
        problem = _fallback_error(team=toggle.team, deployment=toggle.deployment, name=value)
    return problem


# --------------------------------------------------------------------------- changes


def _record(*, toggle: Toggle, actor_name: str, reason: str) -> None:
    version = toggle_version_bump(team_id=toggle.team_id)
    served = (
        toggle.override_value
        if toggle.overridden
        else (toggle.value if toggle.enabled else toggle.off_value)
    )
    ToggleChange.objects.create(
        toggle=toggle,
        at=timezone.now(),
        version=version,
        actor=actor_name[:200],
        reason=reason,
        enabled=toggle.enabled or toggle.overridden,
        value=served,
        level=toggle.override_level,
    )


def _actor_name(actor: Any) -> str:
    if actor is not None and getattr(actor, "is_authenticated", False):
        return str(actor.get_username())
    return "system"


def toggle_create(
    *,
    team: Team,
    key: str,
    actor: Any,
    deployment: Deployment | None = None,
    preset: str = Preset.CUSTOM.value,
    value_type: str | None = None,
    value: Any = None,
    off_value: Any = None,
    rules: Any = None,
    enabled: bool = False,
    description: str = "",
    reason: str = "",
) -> Toggle:
    if value is None and preset in PRESETS:
        value = PRESETS[Preset(preset)].off_value
    fields = toggle_clean(
        team=team,
        deployment=deployment,
        preset=preset,
        value_type=value_type,
        value=value,
        off_value=off_value,
        rules=rules,
    )
    toggle = Toggle(
        team=team, deployment=deployment, key=key, enabled=enabled, description=description,
        **fields,
    )  # fmt: skip
    toggle.full_clean(exclude=["team", "deployment"], validate_unique=False)
    if Toggle.objects.filter(team=team, deployment=deployment, key=key).exists():
        raise ValidationError({"key": f"This {'deployment' if deployment else 'team'} "
                               f"already has a toggle {key!r}."})  # fmt: skip
    with transaction.atomic():
        with audited(actor=actor, action=AuditAction.CREATE) as change:
            toggle.save()
            change.instance = toggle
        _record(toggle=toggle, actor_name=_actor_name(actor), reason=reason or "created")
    return toggle


UPDATABLE = ("value", "off_value", "rules", "enabled", "description")


def toggle_update(*, toggle: Toggle, actor: Any, reason: str = "", **changes: Any) -> Toggle:
    """Change the toggle's own settings (value, off value, rules, on/off, description)."""
    unknown = set(changes) - set(UPDATABLE)
    if unknown:
        raise ValidationError({name: "This field cannot be changed." for name in unknown})
    merged = {name: changes.get(name, getattr(toggle, name)) for name in UPDATABLE}
    fields = toggle_clean(
        team=toggle.team,
        deployment=toggle.deployment,
        preset=toggle.preset,
        value_type=toggle.value_type,
        value=merged["value"],
        off_value=merged["off_value"],
        rules=merged["rules"],
    )
    with transaction.atomic():
        locked = Toggle.objects.select_for_update().get(pk=toggle.pk)
        with audited(actor=actor, action=AuditAction.UPDATE, instance=locked,
                     extra={"reason": reason} if reason else None):  # fmt: skip
            locked.value = fields["value"]
            locked.off_value = fields["off_value"]
            locked.rules = fields["rules"]
            locked.enabled = bool(merged["enabled"])
            locked.description = merged["description"]
            locked.save()
        _record(toggle=locked, actor_name=_actor_name(actor), reason=reason or "updated")
    return locked


def toggle_override_set(
    *, toggle: Toggle, value: Any, level: int, source: str, reason: str, actor: Any = None
) -> Toggle:
    """Serve ``value`` to everyone (a degradation level or a pin) until cleared."""
    problem = level_value_error(toggle=toggle, value=value)
    if problem:
        raise ValidationError({"value": f"{toggle.key}: {problem}"})
    with transaction.atomic():
        locked = Toggle.objects.select_for_update().get(pk=toggle.pk)
        if (locked.override_level, locked.override_value, locked.override_source) == (
            level, value, source,
        ):  # fmt: skip
            return locked
        with audited(actor=actor, action=AuditAction.UPDATE, instance=locked,
                     verb="degrade", extra={"reason": reason}):  # fmt: skip
            locked.override_value = value
            locked.override_level = level
            locked.override_source = source[:200]
            locked.save(update_fields=["override_value", "override_level",
                                       "override_source", "updated_at"])  # fmt: skip
        _record(toggle=locked, actor_name=source, reason=reason)
    return locked


def toggle_override_clear(*, toggle: Toggle, source: str, reason: str, actor: Any = None) -> Toggle:
    """Give the toggle back its own settings."""
    with transaction.atomic():
        locked = Toggle.objects.select_for_update().get(pk=toggle.pk)
        if locked.override_level is None:
            return locked
        with audited(actor=actor, action=AuditAction.UPDATE, instance=locked,
                     verb="restore", extra={"reason": reason}):  # fmt: skip
            locked.override_value = None
            locked.override_level = None
            locked.override_source = ""
            locked.save(update_fields=["override_value", "override_level",
                                       "override_source", "updated_at"])  # fmt: skip
        _record(toggle=locked, actor_name=source, reason=reason)
    return locked


def toggle_delete(*, toggle: Toggle, actor: Any) -> None:
    with transaction.atomic():
        team_id = toggle.team_id
        with audited(actor=actor, action=AuditAction.DELETE, instance=toggle):
            toggle.delete()
        toggle_version_bump(team_id=team_id)


# --------------------------------------------------------------------------- gateway tokens

GATEWAY_TOKEN_PREFIX = "lcpg_"  # noqa: S105 - a public marker, not a secret


def gateway_token_create(*, team: Team, name: str, actor: Any) -> tuple[GatewayToken, str]:
    """A new read-only gateway token for the team; the secret is returned once and stored
    hashed."""
    return team_token_create(
        model=GatewayToken, prefix=GATEWAY_TOKEN_PREFIX, team=team, name=name, actor=actor
    )


def gateway_token_revoke(*, token: GatewayToken, actor: Any) -> GatewayToken:
    """Revoke the token: once this commits, the next read with it answers 401 in every
    server process (they forget the tokens they knew)."""
    with transaction.atomic():
        team_token_revoke(token=token, actor=actor)
        transaction.on_commit(tokens_changed)
    return token


def gateway_token_delete(*, token: GatewayToken, actor: Any) -> None:
    """Revoke the token and remove it (it answers 404 afterwards); the audit log keeps it."""
    with transaction.atomic():
        team_token_delete(token=token, actor=actor)
        transaction.on_commit(tokens_changed)


def gateway_token_touch(*, token_id: int) -> None:
    """Record a use of the token (its ``last_used_at``): the read path calls it at most once
    a minute per token and server process."""
    GatewayToken.objects.filter(pk=token_id).update(last_used_at=timezone.now())


# --------------------------------------------------------------------------- policies


def policy_clean(
    *, team: Team, deployment: Deployment, triggers: Any, levels: Any
) -> tuple[tuple[Trigger, ...], tuple[Level, ...]]:
    """The parsed triggers and levels of a policy for ``deployment``, checked against the
    inventory: SLOs of the deployment, toggles of the deployment or its team, level values
    valid for each toggle. Raises ValidationError naming the field."""
    errors: dict[str, str] = {}
    if deployment.team_id != team.pk:
        raise ValidationError({"deployment": "The deployment belongs to another team."})
    parsed_triggers: tuple[Trigger, ...] = ()
    parsed_levels: tuple[Level, ...] = ()
    try:
        parsed_triggers = triggers_parse(triggers)
    except SpecError as exc:
        errors["triggers"] = str(exc)
    try:
        parsed_levels = levels_parse(levels)
    except SpecError as exc:
        errors["levels"] = str(exc)
    slo_ids = {t.slo for t in parsed_triggers if t.slo is not None}
    if slo_ids:
        known = set(
            Slo.objects.filter(pk__in=slo_ids, deployment=deployment).values_list("pk", flat=True)
        )
        missing = sorted(slo_ids - known)
        if missing:
            errors["triggers"] = f"SLO {missing[0]} is not an SLO of {deployment.name}."
    signals = {t.signal for t in parsed_triggers if t.kind is TriggerKind.SIGNAL}
    unknown = sorted(signals - set(Signal.values))
    if unknown:
        errors["triggers"] = f"Unknown signal {unknown[0]!r}; see the metrics catalogue."
    toggles = policy_toggles(deployment=deployment, keys=toggles_named(parsed_levels))
    for index, level in enumerate(parsed_levels):
        for key, value in level.set.items():
            toggle = toggles.get(key)
            if toggle is None:
                errors["levels"] = (
                    f"levels[{index}].set: no toggle {key!r} for {deployment.name} or its team."
                )
                break
            problem = level_value_error(toggle=toggle, value=value)
            if problem:
                errors["levels"] = f"levels[{index}].set.{key}: {problem}"
                break
        if "levels" in errors:
            break
    if errors:
        raise ValidationError(errors)
    return parsed_triggers, parsed_levels


def policy_toggles(*, deployment: Deployment, keys: set[str]) -> dict[str, Toggle]:
    """The toggles ``keys`` name for the deployment: its own, else its team's."""
    found: dict[str, Toggle] = {}
    rows = Toggle.objects.filter(team_id=deployment.team_id, key__in=keys).filter(
        Q(deployment=deployment) | Q(deployment__isnull=True)
    )
    for toggle in rows.select_related("team", "deployment"):
        if toggle.deployment_id is not None or toggle.key not in found:
            found[toggle.key] = toggle
    return found


def _degraded_since(before: Any, *, from_level: int, to_level: int, now: Any) -> Any:
    """Since when the policy is degraded after moving from ``from_level`` to ``to_level``."""
    if to_level == 0:
        return None
    return now if from_level == 0 else before


def _dry_position_follow(state: DegradationState) -> None:
    """Out of dry run its position is the live one: a later dry run starts from there."""
    state.dry_level = state.level
    state.dry_level_since = state.level_since
    state.dry_degraded_since = state.degraded_since


def policy_level_apply(
    *,
    policy: DegradationPolicy,
    to_level: int,
    reason: str,
    actor: Any = None,
    evidence: dict[str, Any] | None = None,
    dry_run: bool | None = None,
    now: Any = None,
    enqueue: Callable[[int], object] | None = None,
) -> DegradationTransition | None:
    """Move ``policy`` to ``to_level`` (0: not degraded): set the merged settings of its
    levels 1..to_level as overrides on its toggles (clearing the ones no longer set),
    record the transition, audit it and queue it for the team's chat channels
    (``enqueue(channel id)`` starts a channel's sender after commit; without it the alerts
    app's periodic sweep sends it). In dry run only the transition is recorded (and sent),
    from the level the dry run would be at (``DegradationState.dry_level``), which moves
    instead. Returns None when the policy is (or, in dry run, would be) already at that
    level."""
    now = now or timezone.now()
    dry = policy.dry_run if dry_run is None else dry_run
    _, levels = policy_clean(
        team=policy.team, deployment=policy.deployment, triggers=policy.triggers,
        levels=policy.levels,
    )  # fmt: skip
    if not 0 <= to_level <= len(levels):
        raise ValidationError({"level": f"Level must be between 0 and {len(levels)}."})
    actor_name = _actor_name(actor) if actor is not None else f"policy:{policy.name}"
    with transaction.atomic():
        state, _ = DegradationState.objects.select_for_update().get_or_create(policy=policy)
        from_level = state.dry_level if dry else state.level
        if from_level == to_level:
            return None
        transition = DegradationTransition.objects.create(
            policy=policy, at=now, from_level=from_level, to_level=to_level, reason=reason,
            evidence=evidence or {}, dry_run=dry, actor=actor_name[:150],
        )  # fmt: skip
        if dry:
            state.dry_degraded_since = _degraded_since(
                state.dry_degraded_since, from_level=from_level, to_level=to_level, now=now
            )
            state.dry_level = to_level
            state.dry_level_since = now
            state.save(update_fields=["dry_level", "dry_level_since", "dry_degraded_since"])
            transition_notify(transition=transition, enqueue=enqueue)
            return transition
        settings = level_settings(levels, to_level)
        toggles = policy_toggles(deployment=policy.deployment, keys=toggles_named(levels))
        source = f"policy:{policy.name}"
        for key, toggle in sorted(toggles.items()):
            if key in settings:
                toggle_override_set(toggle=toggle, value=settings[key], level=to_level,
                                    source=source, reason=reason, actor=actor)  # fmt: skip
            elif toggle.override_source == source:
                toggle_override_clear(toggle=toggle, source=source, reason=reason, actor=actor)
        with audited(actor=actor, action=AuditAction.UPDATE, instance=state,
                     verb="degrade" if to_level > from_level else "recover",
                     extra={"reason": reason}):  # fmt: skip
            state.degraded_since = _degraded_since(
                state.degraded_since, from_level=from_level, to_level=to_level, now=now
            )
            state.level = to_level
            state.level_since = now
            _dry_position_follow(state)
            state.save()
        transition_notify(transition=transition, enqueue=enqueue)
    return transition


def policy_pin(
    *, policy: DegradationPolicy, level: int, actor: Any, reason: str, until: Any = None
) -> DegradationState:
    """Hold the policy at ``level`` (applied now) until unpinned or ``until``: automation
    leaves a pinned policy alone."""
    if not reason.strip():
        raise ValidationError({"reason": "Say why the level is pinned."})
    with transaction.atomic():
        policy_level_apply(policy=policy, to_level=level, reason=f"pinned: {reason}",
                           actor=actor, dry_run=False)  # fmt: skip
        state = DegradationState.objects.select_for_update().get(policy=policy)
        with audited(actor=actor, action=AuditAction.UPDATE, instance=state, verb="pin",
                     extra={"reason": reason}):  # fmt: skip
            state.pinned_level = level
            state.pinned_by = _actor_name(actor)[:150]
            state.pin_reason = reason
            state.pinned_until = until
            state.save()
    return state


def policy_unpin(*, policy: DegradationPolicy, actor: Any, reason: str) -> DegradationState:
    """Hand the policy back to automation (its level stays until the next evaluation)."""
    with transaction.atomic():
        state, _ = DegradationState.objects.select_for_update().get_or_create(policy=policy)
        with audited(actor=actor, action=AuditAction.UPDATE, instance=state, verb="unpin",
                     extra={"reason": reason}):  # fmt: skip
            state.pinned_level = None
            state.pinned_by = ""
            state.pin_reason = ""
            state.pinned_until = None
            state.save()
    return state


def policy_delete(*, policy: DegradationPolicy, actor: Any) -> None:
    """Delete the policy, giving its toggles back their own settings first (the overrides
    it set would otherwise outlive it)."""
    source = f"policy:{policy.name}"
    with transaction.atomic():
        for toggle in Toggle.objects.filter(team_id=policy.team_id, override_source=source):
            toggle_override_clear(toggle=toggle, source=source, actor=actor,
                                  reason=f"policy {policy.name} deleted")  # fmt: skip
        with audited(actor=actor, action=AuditAction.DELETE, instance=policy):
            policy.delete()


def degradation_switch_set(*, automatic: bool, actor: Any, reason: str) -> DegradationSwitch:
    """The global off switch: with ``automatic=False`` no policy changes a level."""
    if not reason.strip():
        raise ValidationError({"reason": "Say why automatic degradation is switched."})
    with transaction.atomic():
        switch, _ = DegradationSwitch.objects.select_for_update().get_or_create(pk=1)
        with audited(actor=actor, action=AuditAction.UPDATE, instance=switch,
                     extra={"reason": reason}):  # fmt: skip
            switch.automatic = automatic
            switch.changed_by = _actor_name(actor)[:150]
            switch.changed_at = timezone.now()
            switch.reason = reason
            switch.save()
    return switch


# --------------------------------------------------------------------------- automatic degradation


def _engine_state(*, state: DegradationState, dry: bool) -> EngineState:
    """The position the engine moves: the dry-run one while the policy is in dry run."""
    return EngineState(
        level=state.dry_level if dry else state.level,
        level_since=state.dry_level_since if dry else state.level_since,
        degraded_since=state.dry_degraded_since if dry else state.degraded_since,
        triggered_since=state.triggered_since,
        clear_since=state.clear_since,
        expired=state.expired,
        pinned_level=state.pinned_level,
        pinned_until=state.pinned_until,
    )


def _failure_record(
    *, policy: DegradationPolicy, state: DegradationState, step: Step, error: str, now: Any
) -> DegradationTransition | None:
    """A level change that could not be applied (e.g. the fallback stopped serving), stored as
    a transition that stays where it is, with the error; once per wanted level and error."""
    level = state.dry_level if policy.dry_run else state.level
    last = DegradationTransition.objects.filter(policy=policy).order_by("-at", "-id").first()
    if (
        last is not None
        and last.evidence.get("error") == error
        and last.evidence.get("wanted_level") == step.to_level
    ):
        return None
    return DegradationTransition.objects.create(
        policy=policy, at=now, from_level=level, to_level=level,
        reason=f"could not move to level {step.to_level} ({step.reason}): {error}",
        evidence={**step.evidence, "error": error, "wanted_level": step.to_level},
        dry_run=policy.dry_run, actor=f"policy:{policy.name}"[:150],
    )  # fmt: skip


def degradation_evaluate(
    *,
    policy: DegradationPolicy,
    now: Any = None,
    enqueue: Callable[[int], object] | None = None,
) -> Step | None:
    """One automatic evaluation of ``policy``: observe its triggers, run the engine, apply the
    level it chose (in dry run: record it), store the timers, and send every transition (or a
    failure to apply one) to the team's chat channels; ``enqueue(channel id)`` starts a
    channel's sender after commit. Returns the engine's step (None: the spec is invalid).
    The caller holds the policy's lock; the state row is locked too, so a pin made meanwhile
    waits for this evaluation and then wins."""
    now = now or timezone.now()
    log = logger.bind(policy=policy.pk, deployment=policy.deployment_id)
    try:
        triggers = triggers_parse(policy.triggers)
        levels = levels_parse(policy.levels)
    except SpecError as exc:
        log.error("degradation-policy-invalid", error=str(exc))
        return None
    switch = DegradationSwitch.objects.filter(pk=1).first()
    spec = EngineSpec(
        level_names=tuple(level.name for level in levels),
        min_hold_s=policy.min_hold_s,
        clear_for_s=policy.clear_for_s,
        max_duration_s=policy.max_duration_s,
        enabled=policy.enabled,
        automatic=switch.automatic if switch is not None else True,
    )
    with transaction.atomic():
        DegradationState.objects.get_or_create(policy=policy)
        state = DegradationState.objects.select_for_update().get(policy=policy)
        if state.pinned_until is not None and now >= state.pinned_until:
            policy_unpin(policy=policy, actor=None, reason="the pin ran out")
            state.refresh_from_db()
        if not policy.dry_run and (state.dry_level, state.dry_level_since) != (
            state.level, state.level_since,
        ):  # fmt: skip
            _dry_position_follow(state)
        observations = triggers_observe(deployment=policy.deployment, triggers=triggers, now=now)
        step = degradation_step(
            spec, _engine_state(state=state, dry=policy.dry_run), observations, now
        )
        state.triggered_since = step.triggered_since
        state.clear_since = step.clear_since
        state.expired = step.expired
        state.evaluated_at = now
        state.save(update_fields=[
            "triggered_since", "clear_since", "expired", "evaluated_at",
            "dry_level", "dry_level_since", "dry_degraded_since",
        ])  # fmt: skip
        if step.to_level is None:
            return step
        transition: DegradationTransition | None
        try:
            transition = policy_level_apply(
                policy=policy, to_level=step.to_level, reason=step.reason,
                evidence=step.evidence, now=now, enqueue=enqueue,
            )  # fmt: skip
        except ValidationError as exc:
            error = "; ".join(exc.messages)
            log.warning("degradation-apply-failed", to_level=step.to_level, error=error)
            failure = _failure_record(policy=policy, state=state, step=step, error=error, now=now)
            if failure is not None:
                transition_notify(transition=failure, enqueue=enqueue)
        else:
            if transition is not None:
                log.info(
                    "degradation-level-changed", from_level=transition.from_level,
                    to_level=transition.to_level, dry_run=transition.dry_run,
                )  # fmt: skip
    return step
