"""Degradation presets: typed toggles whose values mean the same thing to every gateway.

A preset fixes a toggle's value type, its off value (what a gateway sees while the service
is not degraded) and what a valid value is. ``custom`` toggles have none of that: their
type is chosen and any value of the type is valid. What the gateway does with each value:

- ``max_output_tokens`` / ``max_context_tokens``: a positive integer caps the request's
  ``max_tokens`` / prompt length; 0 (the off value) means no cap.
- ``shed_fraction``: ``{"<priority class>": fraction}``; that fraction (0..1) of the class's
  requests is refused with 429/503 and ``Retry-After``. Classes not named are not shed.
- ``feature``: a switch for one expensive feature (streaming, tool use, long context, ...),
  named by the toggle key; ``true`` (the off value) means available.
- ``fallback_deployment``: the name of a deployment of the same team, active, that takes
  the traffic; "" (the off value) means none.
- ``cache_only``: serve cached answers only.
- ``maintenance``: a non-empty message puts the service in maintenance (503 with it).

Pure: the fallback deployment's existence and team are checked by the services.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .evaluation import ValueType, value_matches_type

MAX_TOKENS_CAP = 10_000_000
MAX_MESSAGE = 500
MAX_CLASSES = 32
_CLASS_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


class Preset(StrEnum):
    CUSTOM = "custom"
    MAX_OUTPUT_TOKENS = "max_output_tokens"
    MAX_CONTEXT_TOKENS = "max_context_tokens"
    SHED_FRACTION = "shed_fraction"
    FEATURE = "feature"
    FALLBACK_DEPLOYMENT = "fallback_deployment"
    CACHE_ONLY = "cache_only"
    MAINTENANCE = "maintenance"


@dataclass(frozen=True)
class PresetSpec:
    value_type: ValueType
    off_value: Any
    check: Callable[[Any], str | None]  # an error message, or None
    help: str


def _token_cap(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "expected a whole number of tokens."
    if not math.isfinite(value) or value != int(value):
        return "expected a whole number of tokens."
    if not 0 <= value <= MAX_TOKENS_CAP:
        return f"must be between 0 (no cap) and {MAX_TOKENS_CAP:,}."
    return None


def _fractions(value: Any) -> str | None:
    if not isinstance(value, dict):
        return 'expected {"<priority class>": fraction, ...}.'
    if len(value) > MAX_CLASSES:
        return f"at most {MAX_CLASSES} priority classes."
    for name, fraction in value.items():
        if not _CLASS_NAME.fullmatch(name):
            return (
                f"priority class {name!r}: 1 to 64 letters, digits, '_', '.' or '-' (the value "
                "a gateway compares with the request's priority header)."
            )
        if isinstance(fraction, bool) or not isinstance(fraction, int | float):
            return f"the fraction of {name!r} must be a number."
        if not (math.isfinite(fraction) and 0 <= fraction <= 1):
            return f"the fraction of {name!r} must be between 0 and 1."
    return None


def _any(value: Any) -> str | None:
    return None


def _deployment_name(value: Any) -> str | None:
    if not isinstance(value, str) or len(value) > 100:
        return "expected a deployment name."
    return None


def _message(value: Any) -> str | None:
    if not isinstance(value, str):
        return "expected a message."
    if len(value) > MAX_MESSAGE:
        return f"the message is longer than {MAX_MESSAGE} characters."
    return None


PRESETS: dict[Preset, PresetSpec] = {
    Preset.MAX_OUTPUT_TOKENS: PresetSpec(
        ValueType.NUMBER, 0, _token_cap, "Cap on output tokens per request; 0 means no cap."
    ),
    Preset.MAX_CONTEXT_TOKENS: PresetSpec(
        ValueType.NUMBER, 0, _token_cap, "Cap on prompt (context) tokens; 0 means no cap."
    ),
    Preset.SHED_FRACTION: PresetSpec(
        ValueType.OBJECT,
        {},
        _fractions,
        'Fraction of requests refused per priority class, e.g. {"low": 0.2}.',
    ),
    Preset.FEATURE: PresetSpec(
        ValueType.BOOLEAN, True, _any, "Whether the feature named by the key is available."
    ),
    Preset.FALLBACK_DEPLOYMENT: PresetSpec(
        ValueType.STRING,
        "",
        _deployment_name,
        "An active deployment of the same team that takes the traffic; empty: none.",
    ),
    Preset.CACHE_ONLY: PresetSpec(ValueType.BOOLEAN, False, _any, "Serve cached answers only."),
    Preset.MAINTENANCE: PresetSpec(
        ValueType.STRING, "", _message, "A non-empty message puts the service in maintenance."
    ),
}


def preset_value_error(*, preset: Preset, value_type: ValueType, value: Any) -> str | None:
    """Why ``value`` is not valid for a toggle of this preset and type, or None."""
    if not value_matches_type(value, value_type):
        return f"expected a {value_type} value."
    spec = PRESETS.get(preset)
    return spec.check(value) if spec is not None else None
