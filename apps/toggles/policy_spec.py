"""The stored shape of a degradation policy's triggers and levels, parsed and checked.
Pure: which SLOs, toggles and signals exist is checked by the services.

Triggers (any one that holds degrades the service)::

    {"kind": "slo_state", "slo": 12, "states": ["page", "ticket"]}
    {"kind": "alert", "matchers": "{alertname=\"KVCacheFull\", severity=~\"page|critical\"}"}
    {"kind": "autoscaler_at_max", "slo": 12}        # slo optional: any SLO of the deployment
    {"kind": "signal", "signal": "queue_depth", "op": "gt", "threshold": 50}

Levels (level 1 first; a level keeps what the levels below it set unless it sets the same
toggle)::

    [{"name": "cap tokens", "set": {"max_output_tokens": 512}},
     {"name": "shed low", "set": {"shed_fraction": {"low": 0.2}}},
     {"name": "fallback", "set": {"fallback_deployment": "chat-small"}}]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from apps.inventory.label_matchers import Matcher, MatcherError, parse_matchers

MAX_LEVELS = 10
MAX_TRIGGERS = 20
SLO_ALERTING_STATES = ("page", "ticket")


class TriggerKind(StrEnum):
    SLO_STATE = "slo_state"
    ALERT = "alert"
    AUTOSCALER_AT_MAX = "autoscaler_at_max"
    SIGNAL = "signal"


class Comparison(StrEnum):
    GT = "gt"
    GE = "ge"
    LT = "lt"
    LE = "le"

    def holds(self, left: float, right: float) -> bool:
        if self is Comparison.GT:
            return left > right
        if self is Comparison.GE:
            return left >= right
        if self is Comparison.LT:
            return left < right
        return left <= right


@dataclass(frozen=True)
class Trigger:
    kind: TriggerKind
    slo: int | None = None
    states: tuple[str, ...] = SLO_ALERTING_STATES
    matchers: tuple[Matcher, ...] = ()
    matchers_text: str = ""
    signal: str = ""
    op: Comparison = Comparison.GT
    threshold: float = 0.0

    def describe(self) -> str:
        if self.kind is TriggerKind.SLO_STATE:
            return f"SLO {self.slo} in {'/'.join(self.states)}"
        if self.kind is TriggerKind.ALERT:
            return f"an alert matching {self.matchers_text} firing"
        if self.kind is TriggerKind.AUTOSCALER_AT_MAX:
            which = f"SLO {self.slo}" if self.slo else "an SLO"
            return f"autoscaler at its maximum while {which} burns"
        return f"{self.signal} {self.op} {self.threshold:g}"


@dataclass(frozen=True)
class Level:
    name: str
    set: dict[str, Any]


class SpecError(ValueError):
    """A trigger or level list that is not valid; the message names where."""


def triggers_parse(raw: Any) -> tuple[Trigger, ...]:
    if not isinstance(raw, list) or not raw:
        raise SpecError("triggers: expected a non-empty list.")
    if len(raw) > MAX_TRIGGERS:
        raise SpecError(f"triggers: at most {MAX_TRIGGERS}.")
    return tuple(_trigger_parse(item, f"triggers[{i}]") for i, item in enumerate(raw))


def _trigger_parse(raw: Any, where: str) -> Trigger:
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: expected an object.")
    try:
        kind = TriggerKind(str(raw.get("kind")))
    except ValueError:
        choices = ", ".join(k.value for k in TriggerKind)
        raise SpecError(f"{where}.kind: expected one of {choices}.") from None
    allowed = {
        TriggerKind.SLO_STATE: {"kind", "slo", "states"},
        TriggerKind.ALERT: {"kind", "matchers"},
        TriggerKind.AUTOSCALER_AT_MAX: {"kind", "slo"},
        TriggerKind.SIGNAL: {"kind", "signal", "op", "threshold"},
    }[kind]
    unknown = set(raw) - allowed
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {', '.join(sorted(unknown))} for {kind}.")
    slo = raw.get("slo")
    if slo is not None and (isinstance(slo, bool) or not isinstance(slo, int)):
        raise SpecError(f"{where}.slo: expected an SLO id.")
    if kind is TriggerKind.SLO_STATE:
        if slo is None:
            raise SpecError(f"{where}.slo: required.")
        states = raw.get("states", list(SLO_ALERTING_STATES))
        if (
            not isinstance(states, list)
            or not states
            or any(s not in SLO_ALERTING_STATES for s in states)
        ):
            raise SpecError(f"{where}.states: a list of {', '.join(SLO_ALERTING_STATES)}.")
        return Trigger(kind=kind, slo=slo, states=tuple(dict.fromkeys(states)))
    if kind is TriggerKind.ALERT:
        text = raw.get("matchers")
        if not isinstance(text, str) or not text.strip():
            raise SpecError(f'{where}.matchers: expected label matchers, e.g. {{alertname="X"}}.')
        try:
            matchers = tuple(parse_matchers(text))
        except MatcherError as exc:
            raise SpecError(f"{where}.matchers: {exc}") from None
        if not matchers:
            raise SpecError(f"{where}.matchers: give at least one matcher.")
        return Trigger(kind=kind, matchers=matchers, matchers_text=text.strip())
    if kind is TriggerKind.AUTOSCALER_AT_MAX:
        return Trigger(kind=kind, slo=slo)
    signal = raw.get("signal")
    if not isinstance(signal, str) or not signal:
        raise SpecError(f"{where}.signal: expected a catalogue signal name.")
    try:
        op = Comparison(raw.get("op", "gt"))
    except ValueError:
        raise SpecError(f"{where}.op: expected gt, ge, lt or le.") from None
    threshold = raw.get("threshold")
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not math.isfinite(threshold)
    ):
        raise SpecError(f"{where}.threshold: expected a number.")
    return Trigger(kind=kind, signal=signal, op=op, threshold=float(threshold))


def levels_parse(raw: Any) -> tuple[Level, ...]:
    if not isinstance(raw, list) or not raw:
        raise SpecError("levels: expected a non-empty list (level 1 first).")
    if len(raw) > MAX_LEVELS:
        raise SpecError(f"levels: at most {MAX_LEVELS}.")
    levels = []
    for i, item in enumerate(raw):
        where = f"levels[{i}]"
        if not isinstance(item, dict) or set(item) - {"name", "set"}:
            raise SpecError(f"{where}: expected {{name, set}}.")
        name = item.get("name") or f"level {i + 1}"
        if not isinstance(name, str) or len(name) > 100:
            raise SpecError(f"{where}.name: expected a short text.")
        settings = item.get("set")
        if not isinstance(settings, dict) or not settings:
            raise SpecError(f"{where}.set: expected {{toggle key: value}} with one key or more.")
        levels.append(Level(name=name, set=dict(settings)))
    return tuple(levels)


def level_settings(levels: tuple[Level, ...], level: int) -> dict[str, Any]:
    """What the toggles serve at ``level`` (0: nothing overridden): levels 1..level merged,
    higher levels winning."""
    merged: dict[str, Any] = {}
    for spec in levels[: max(0, level)]:
        merged.update(spec.set)
    return merged


def toggles_named(levels: tuple[Level, ...]) -> set[str]:
    """Every toggle key any level sets."""
    return {key for spec in levels for key in spec.set}
