"""Evaluating a toggle for an evaluation context: one pure function, no I/O.

A toggle resolves, for a context (the attributes a gateway sends: tenant, API-key tier,
priority class, region, ... and the ``targetingKey``), to a value, a variant name and one of
OpenFeature's reasons, in this order:

1. a **degradation override** (a policy's level or a pin) serves its value to everyone:
   reason ``STATIC``, variant ``level-<n>``;
2. a **disabled** toggle serves its off value: reason ``DISABLED``, variant ``off``;
3. the first **rule** whose conditions all hold serves its value (``TARGETING_MATCH``) or,
   when it splits, the value of the targeting key's bucket (``SPLIT``);
4. otherwise the toggle's value: ``STATIC`` when it has no rules, ``DEFAULT`` when rules
   exist and none matched.

A split needs a targeting key: without one the answer is an error
(``TARGETING_KEY_MISSING``), as OpenFeature defines it. A condition whose attribute is
missing or of the wrong kind does not hold (it is not an error): a gateway that does not
send ``region`` simply matches no region rule.

Buckets are stable: ``sha256(salt + "/" + targetingKey)`` read as a number in [0, 10,000),
so a user keeps its bucket as long as the rule's salt (the toggle key and the rule's
position, unless the rule names one) and weights stay the same.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from apps.core.regex import RegexError, regex_compile, regex_fullmatch

Json = Any

BUCKETS = 10_000


class ValueType(StrEnum):
    BOOLEAN = "boolean"
    NUMBER = "number"
    STRING = "string"
    OBJECT = "object"


class Reason(StrEnum):
    """OpenFeature's resolution reasons (the subset this evaluator gives)."""

    STATIC = "STATIC"
    TARGETING_MATCH = "TARGETING_MATCH"
    SPLIT = "SPLIT"
    DEFAULT = "DEFAULT"
    DISABLED = "DISABLED"
    ERROR = "ERROR"


class ErrorCode(StrEnum):
    """OpenFeature's error codes (the subset this evaluator gives)."""

    TARGETING_KEY_MISSING = "TARGETING_KEY_MISSING"
    TYPE_MISMATCH = "TYPE_MISMATCH"
    INVALID_CONTEXT = "INVALID_CONTEXT"
    GENERAL = "GENERAL"


class Op(StrEnum):
    """Condition operators over one context attribute."""

    EQ = "eq"
    NE = "ne"
    IN = "in"
    NOT_IN = "not_in"
    MATCHES = "matches"  # RE2, the whole value must match
    GT = "gt"
    GE = "ge"
    LT = "lt"
    LE = "le"


TARGETING_KEY = "targetingKey"
NUMERIC_OPS = frozenset({Op.GT, Op.GE, Op.LT, Op.LE})


@dataclass(frozen=True)
class Condition:
    attribute: str
    op: Op
    value: Json


@dataclass(frozen=True)
class SplitArm:
    variant: str
    value: Json
    weight: float


@dataclass(frozen=True)
class Rule:
    """Conditions that must all hold (none: always), then a value or a split."""

    conditions: tuple[Condition, ...] = ()
    value: Json = None
    variant: str = ""
    split: tuple[SplitArm, ...] = ()
    salt: str = ""


@dataclass(frozen=True)
class Override:
    """A value served to everyone, set by a degradation level or a pin."""

    value: Json
    level: int
    source: str  # "policy:<name>" (a pin holds a policy at a level)


@dataclass(frozen=True)
class FlagDefinition:
    key: str
    value_type: ValueType
    enabled: bool
    value: Json
    off_value: Json
    rules: tuple[Rule, ...] = ()
    override: Override | None = None
    metadata: Mapping[str, Json] = field(default_factory=dict)


@dataclass(frozen=True)
class Resolution:
    key: str
    value: Json
    variant: str
    reason: Reason
    error_code: ErrorCode | None = None
    error_details: str = ""
    metadata: Mapping[str, Json] = field(default_factory=dict)


class DefinitionError(ValueError):
    """A toggle definition that cannot be evaluated (bad type, rule, regex or weights)."""


# --- values ------------------------------------------------------------------------------


def value_matches_type(value: Json, value_type: ValueType) -> bool:
    if value_type is ValueType.BOOLEAN:
        return isinstance(value, bool)
    if value_type is ValueType.NUMBER:
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    if value_type is ValueType.STRING:
        return isinstance(value, str)
    return isinstance(value, dict | list)


def _number(value: Json) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            parsed = float(value.strip())
        except ValueError:
            return None
        return parsed if math.isfinite(parsed) else None
    return None


def _as_text(value: Json) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        if isinstance(value, float) and not value.is_integer():
            return repr(value)
        return str(int(value))
    return None


def bucket_of(*, salt: str, targeting_key: str) -> int:
    """The stable bucket in [0, BUCKETS) of a targeting key for one split."""
    digest = hashlib.sha256(f"{salt}/{targeting_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def split_pick(arms: Sequence[SplitArm], bucket: int) -> SplitArm:
    """The arm whose share of [0, BUCKETS) holds ``bucket`` (arms in order, shares
    proportional to their weights)."""
    total = sum(arm.weight for arm in arms)
    point = (bucket + 0.5) / BUCKETS * total
    running = 0.0
    for arm in arms:
        running += arm.weight
        if point < running:
            return arm
    return next(arm for arm in reversed(arms) if arm.weight > 0)


# --- conditions ---------------------------------------------------------------------------


def condition_holds(condition: Condition, context: Mapping[str, Json]) -> bool:
    if condition.attribute not in context:
        return False
    actual = context[condition.attribute]
    op = condition.op
    if op in NUMERIC_OPS:
        left, right = _number(actual), _number(condition.value)
        if left is None or right is None:
            return False
        if op is Op.GT:
            return left > right
        if op is Op.GE:
            return left >= right
        if op is Op.LT:
            return left < right
        return left <= right
    text = _as_text(actual)
    if text is None:
        return False
    if op is Op.EQ:
        return text == _as_text(condition.value)
    if op is Op.NE:
        return text != _as_text(condition.value)
    if op in (Op.IN, Op.NOT_IN):
        listed = {_as_text(item) for item in condition.value}
        return (text in listed) == (op is Op.IN)
    # MATCHES: RE2, whole value (checked when the definition was parsed; cached).
    try:
        return regex_fullmatch(condition.value, text)
    except RegexError:
        return False


# --- evaluation ---------------------------------------------------------------------------


def evaluate(flag: FlagDefinition, context: Mapping[str, Json]) -> Resolution:
    """The value, variant and reason of ``flag`` for ``context`` (see the module doc)."""
    metadata = dict(flag.metadata)
    if flag.override is not None:
        override = flag.override
        metadata.update(degradationLevel=override.level, source=override.source)
        return _typed(flag, override.value, f"level-{override.level}", Reason.STATIC, metadata)
    if not flag.enabled:
        return _typed(flag, flag.off_value, "off", Reason.DISABLED, metadata)
    for position, rule in enumerate(flag.rules):
        if not all(condition_holds(c, context) for c in rule.conditions):
            continue
        if rule.split:
            key = context.get(TARGETING_KEY)
            if not isinstance(key, str) or not key:
                return Resolution(
                    key=flag.key,
                    value=None,
                    variant="",
                    reason=Reason.ERROR,
                    error_code=ErrorCode.TARGETING_KEY_MISSING,
                    error_details=f"Toggle {flag.key!r} splits on the targeting key; the "
                    "context has no 'targetingKey'.",
                    metadata=metadata,
                )
            salt = rule.salt or f"{flag.key}#{position}"
            arm = split_pick(rule.split, bucket_of(salt=salt, targeting_key=key))
            return _typed(flag, arm.value, arm.variant, Reason.SPLIT, metadata)
        variant = rule.variant or f"rule-{position + 1}"
        return _typed(flag, rule.value, variant, Reason.TARGETING_MATCH, metadata)
    reason = Reason.DEFAULT if flag.rules else Reason.STATIC
    return _typed(flag, flag.value, "default", reason, metadata)


def _typed(
    flag: FlagDefinition, value: Json, variant: str, reason: Reason, metadata: dict[str, Json]
) -> Resolution:
    if not value_matches_type(value, flag.value_type):
        return Resolution(
            key=flag.key,
            value=None,
            variant="",
            reason=Reason.ERROR,
            error_code=ErrorCode.TYPE_MISMATCH,
            error_details=f"Toggle {flag.key!r} holds a value that is not a {flag.value_type}.",
            metadata=metadata,
        )
    return Resolution(key=flag.key, value=value, variant=variant, reason=reason, metadata=metadata)


# --- building definitions from stored JSON -----------------------------------------------


def rules_parse(raw: Json, *, value_type: ValueType) -> tuple[Rule, ...]:
    """The rules of their stored JSON form, checked: a list of
    ``{"conditions": [{"attribute", "op", "value"}], "value" | "split": [{"variant",
    "value", "weight"}], "variant"?, "salt"?}``. Raises :class:`DefinitionError` with
    the path of the first problem."""
    if raw in (None, ""):
        return ()
    if not isinstance(raw, list):
        raise DefinitionError("rules: expected a list.")
    return tuple(_rule_parse(item, f"rules[{i}]", value_type) for i, item in enumerate(raw))


def _rule_parse(raw: Json, where: str, value_type: ValueType) -> Rule:
    if not isinstance(raw, dict):
        raise DefinitionError(f"{where}: expected an object.")
    unknown = set(raw) - {"conditions", "value", "variant", "split", "salt"}
    if unknown:
        raise DefinitionError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}.")
    conditions_raw = raw.get("conditions") or []
    if not isinstance(conditions_raw, list):
        raise DefinitionError(f"{where}.conditions: expected a list.")
    conditions = tuple(
        _condition_parse(c, f"{where}.conditions[{i}]") for i, c in enumerate(conditions_raw)
    )
    variant = raw.get("variant", "")
    salt = raw.get("salt", "")
    if not isinstance(variant, str) or not isinstance(salt, str):
        raise DefinitionError(f"{where}: 'variant' and 'salt' are strings.")
    has_value, has_split = "value" in raw, "split" in raw
    if has_value == has_split:
        raise DefinitionError(f"{where}: give exactly one of 'value' and 'split'.")
    if has_value:
        if not value_matches_type(raw["value"], value_type):
            raise DefinitionError(f"{where}.value: expected a {value_type}.")
        return Rule(conditions=conditions, value=raw["value"], variant=variant, salt=salt)
    arms_raw = raw["split"]
    if not isinstance(arms_raw, list) or not arms_raw:
        raise DefinitionError(f"{where}.split: expected a non-empty list.")
    arms = []
    for i, arm in enumerate(arms_raw):
        at = f"{where}.split[{i}]"
        if not isinstance(arm, dict) or set(arm) - {"variant", "value", "weight"}:
            raise DefinitionError(f"{at}: expected {{variant, value, weight}}.")
        weight = arm.get("weight")
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise DefinitionError(f"{at}.weight: expected a number.")
        if not math.isfinite(weight) or weight < 0:
            raise DefinitionError(f"{at}.weight: must be a finite number >= 0.")
        if not value_matches_type(arm.get("value"), value_type):
            raise DefinitionError(f"{at}.value: expected a {value_type}.")
        name = arm.get("variant") or f"arm-{i + 1}"
        if not isinstance(name, str):
            raise DefinitionError(f"{at}.variant: expected a string.")
        arms.append(SplitArm(variant=name, value=arm["value"], weight=float(weight)))
    if sum(arm.weight for arm in arms) <= 0:
        raise DefinitionError(f"{where}.split: the weights add up to 0.")
    return Rule(conditions=conditions, split=tuple(arms), variant=variant, salt=salt)


def _condition_parse(raw: Json, where: str) -> Condition:
    if not isinstance(raw, dict) or set(raw) != {"attribute", "op", "value"}:
        raise DefinitionError(f"{where}: expected {{attribute, op, value}}.")
    attribute = raw["attribute"]
    if not isinstance(attribute, str) or not attribute:
        raise DefinitionError(f"{where}.attribute: expected a non-empty string.")
    try:
        op = Op(raw["op"])
    except ValueError:
        raise DefinitionError(
            f"{where}.op: {raw['op']!r} is not one of {', '.join(o.value for o in Op)}."
        ) from None
    value = raw["value"]
    if op in NUMERIC_OPS:
        if _number(value) is None:
            raise DefinitionError(f"{where}.value: {op} compares numbers; give a number.")
    elif op in (Op.IN, Op.NOT_IN):
        if not isinstance(value, list) or any(_as_text(v) is None for v in value):
            raise DefinitionError(f"{where}.value: {op} takes a list of strings or numbers.")
    elif op is Op.MATCHES:
        if not isinstance(value, str):
            raise DefinitionError(f"{where}.value: expected a regular expression string.")
        try:
            regex_compile(value)
        except RegexError as exc:
            raise DefinitionError(f"{where}.value: invalid regular expression: {exc}") from None
    elif _as_text(value) is None:
        raise DefinitionError(f"{where}.value: expected a string, number or boolean.")
    return Condition(attribute=attribute, op=op, value=value)
