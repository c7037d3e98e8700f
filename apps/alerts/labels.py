"""Label sets: fingerprints and matchers, with Alertmanager's semantics.

The fingerprint is the one Prometheus and Alertmanager compute for a label set (64-bit
FNV-1a over the sorted label names and values, each followed by the byte 0xff; printed as
16 hex digits), so an alert has the same fingerprint here as in Alertmanager's UI and API
(github.com/prometheus/common, ``model/signature.go`` ``LabelsToSignature``).

Matchers are Prometheus's (``=``, ``!=``, ``=~``, ``!~``); an absent label matches as the
empty string, as in Alertmanager. Regular expressions are RE2's, anchored at both ends and
matched in time linear in the label value (``apps.core.regex``): silences, routes and inhibit
rules are evaluated against every alert, so a backtracking engine would let one matcher such
as ``(a+)+$`` stall every listing and every flush.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from apps.inventory.label_matchers import Matcher, MatcherError, parse_matchers

__all__ = [
    "Matcher",
    "MatcherError",
    "fingerprint",
    "matchers_dump",
    "matchers_load",
    "matchers_match",
    "matchers_parse",
]

_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_MASK = (1 << 64) - 1
_SEPARATOR = 0xFF


def fingerprint(labels: Mapping[str, str]) -> str:
    h = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode("utf-8"):
                h = ((h ^ byte) * _FNV_PRIME) & _MASK
            h = ((h ^ _SEPARATOR) * _FNV_PRIME) & _MASK
    return f"{h:016x}"


_OPS = ("=", "!=", "=~", "!~")


def matchers_parse(value: Any) -> list[Matcher]:
    """Matchers from a selector string (``{severity="critical", team=~"llm|ml"}``) or a list
    of ``{"name", "op", "value"}`` objects (``op`` defaults to ``=``; Alertmanager's
    ``isRegex``/``isEqual`` flags are accepted too). Raises MatcherError naming the problem."""
    if isinstance(value, str):
        return parse_matchers(value)
    if not isinstance(value, list):
        raise MatcherError('give a selector string or a list of {"name", "op", "value"} objects')
    out: list[Matcher] = []
    for i, item in enumerate(value, 1):
        if isinstance(item, str):
            out.extend(parse_matchers(item))
            continue
        if not isinstance(item, Mapping):
            raise MatcherError(f"matcher {i}: expected an object")
        name, raw = item.get("name"), item.get("value")
        if not isinstance(name, str) or not name:
            raise MatcherError(f"matcher {i}: 'name' is required")
        if not isinstance(raw, str):
            raise MatcherError(f"matcher {i}: 'value' must be a string")
        op = item.get("op")
        if op is None:
            regex, equal = bool(item.get("isRegex")), item.get("isEqual", True) is not False
            op = ("=~" if regex else "=") if equal else ("!~" if regex else "!=")
        if op not in _OPS:
            raise MatcherError(f"matcher {i}: op must be one of {', '.join(_OPS)}")
        # One parser validates names and regexes for both forms.
        out.extend(parse_matchers(Matcher(name, op, raw).render()))
    return out


def matchers_dump(matchers: Iterable[Matcher]) -> list[dict[str, str]]:
    return [{"name": m.name, "op": m.op, "value": m.value} for m in matchers]


def matchers_load(stored: Sequence[Mapping[str, str]] | None) -> list[Matcher]:
    return [Matcher(m["name"], m["op"], m["value"]) for m in stored or ()]


def matchers_match(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels.get(m.name, "")) for m in matchers)
