"""Regular expressions that users supply (label matchers of silences, routes, inhibit rules
and deployment selectors), compiled with RE2.

Why not Python's ``re``: it backtracks, so a pattern such as ``(a+)+$`` takes time
exponential in the length of the text it is matched against. One silence with that matcher
made every listing of alerts take seconds, doubling with each character of a label value.
RE2 (``google-re2``) runs in time linear in the text for every pattern it accepts, and
its syntax is the one Prometheus and Alertmanager use (Go's ``regexp`` implements the same
RE2 syntax), so a matcher means here what it means there:

- fully anchored: the pattern ``p`` is compiled as ``^(?:p)$`` (Alertmanager's
  ``pkg/labels`` ``NewMatcher``; Prometheus's ``model/labels`` ``NewFastRegexMatcher``);
- ``.`` does not match a newline unless the pattern says ``(?s)``, as in Alertmanager
  (Prometheus 3 compiles PromQL matchers with ``(?s:p)``; for the selectors checked here the
  difference never changes a decision, since only the empty string is matched locally);
- ``\\d``, ``\\w``, ``\\s`` and ``\\b`` are ASCII-only; ``\\pL`` and friends are Unicode;
- what RE2 refuses is refused, with the reason: lookaround (``(?=x)``, ``(?!x)``,
  ``(?<=x)``, ``(?<!x)``), backreferences (``\\1``), possessive quantifiers (``a*+``),
  atomic groups (``(?>x)``), ``\\Z`` and other Perl-only escapes; ``\\C`` (one byte), which
  C++ RE2 accepts but Go does not, is refused too so that everything accepted here is
  accepted by Prometheus and Alertmanager.

Besides the linear matching time, the cost of one pattern is bounded: at most
``MAX_PATTERN_LENGTH`` characters, a compiled program of at most ``MAX_PROGRAM_SIZE``
instructions and ``MAX_MEMORY`` bytes of RE2 memory (RE2 refuses a program larger than its
budget with "pattern too large"). Compiled patterns are kept in a bounded LRU cache, since
the same few matchers are evaluated against every alert on every listing and flush.

Python's ``re`` stays in use for the code's own constant patterns.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2

__all__ = [
    "MAX_MEMORY",
    "MAX_PATTERN_LENGTH",
    "MAX_PROGRAM_SIZE",
    "RegexError",
    "regex_compile",
    "regex_fullmatch",
]

MAX_PATTERN_LENGTH = 4096
MAX_PROGRAM_SIZE = 10_000
MAX_MEMORY = 256 << 10  # per pattern: program plus DFA cache; past it RE2 uses its NFA
CACHE_SIZE = 512


class RegexError(ValueError):
    """The pattern is refused; the message says why in terms a user can act on."""


# RE2's error text starts with a short code; each gets a hint naming the construct, since
# "invalid perl operator: (?<=" alone does not tell a user that lookbehind is the problem.
_HINTS: tuple[tuple[str, str], ...] = (
    ("invalid perl operator: (?=", "lookahead assertions are not supported in RE2 syntax"),
    ("invalid perl operator: (?!", "negative lookahead assertions are not supported in RE2 syntax"),
    ("invalid perl operator: (?<=", "lookbehind assertions are not supported in RE2 syntax"),
    (
        "invalid perl operator: (?<!",
        "negative lookbehind assertions are not supported in RE2 syntax",
    ),
    ("invalid perl operator: (?>", "atomic groups are not supported in RE2 syntax"),
    # RE2 cuts "(?P=name)" and "(?P>name)" to "(?P" in its message.
    (
        "invalid perl operator: (?P",
        "named backreferences and recursion are not supported in RE2 syntax",
    ),
    ("bad repetition operator: *+", "possessive quantifiers are not supported in RE2 syntax"),
    ("bad repetition operator: ++", "possessive quantifiers are not supported in RE2 syntax"),
    ("bad repetition operator: ?+", "possessive quantifiers are not supported in RE2 syntax"),
    ("pattern too large", f"the compiled pattern needs more than {MAX_MEMORY // 1024} KiB"),
)
_BACKREFERENCE_DIGITS = "123456789"


def _hint(message: str) -> str:
    for prefix, hint in _HINTS:
        if message.startswith(prefix):
            return hint
    if message.startswith("invalid escape sequence: \\") and message[26:27]:
        if message[26] in _BACKREFERENCE_DIGITS:
            return "backreferences are not supported in RE2 syntax"
    if message.startswith("bad repetition operator: ") and message.endswith("}+"):
        return "possessive quantifiers are not supported in RE2 syntax"
    return ""


def _refuse_one_byte_escape(pattern: str) -> None:
    """C++ RE2 accepts ``\\C`` (any single byte); Go's regexp, and so Prometheus and
    Alertmanager, do not. Text inside ``\\Q...\\E`` is literal and is skipped."""
    i, n = 0, len(pattern)
    while i < n - 1:
        if pattern[i] != "\\":
            i += 1
            continue
        nxt = pattern[i + 1]
        if nxt == "C":
            raise RegexError(r"\C (match one byte) is not supported")
        if nxt == "Q":
            end = pattern.find("\\E", i + 2)
            i = n if end < 0 else end + 2
            continue
        i += 2


def _options() -> Any:
    options = re2.Options()
    options.max_mem = MAX_MEMORY
    options.never_capture = True  # only a yes/no answer is needed; groups cost memory
    options.log_errors = False  # refusals are reported to the caller, not to stderr
    return options


def _re2_compile(pattern: str, options: Any) -> Any:
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        raw = exc.args[0] if exc.args else b""
        message = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        hint = _hint(message)
        raise RegexError(f"{hint}: {message}" if hint else message) from None


def _compile(pattern: str) -> Any:
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise RegexError(f"the pattern is longer than {MAX_PATTERN_LENGTH} characters")
    try:
        pattern.encode("utf-8")
    except UnicodeEncodeError:
        raise RegexError("the pattern is not valid UTF-8 (lone surrogate)") from None
    _refuse_one_byte_escape(pattern)
    options = _options()
    # The pattern is parsed on its own first: wrapped straight away, "a)|(b" would become
    # "^(?:a)|(b)$", valid but no longer anchored at both ends.
    _re2_compile(pattern, options)
    compiled = _re2_compile(f"^(?:{pattern})$", options)
    if compiled.programsize > MAX_PROGRAM_SIZE:
        raise RegexError(
            f"the pattern compiles to {compiled.programsize} instructions, "
            f"more than {MAX_PROGRAM_SIZE}; simplify it"
        )
    return compiled


@lru_cache(maxsize=CACHE_SIZE)
def _cached(pattern: str) -> tuple[Any, str | None]:
    # Refusals are cached too: a pattern stored before these rules (Python's re accepted
    # lookbehind) is evaluated against every alert and must not be recompiled each time.
    try:
        return _compile(pattern), None
    except RegexError as exc:
        return None, str(exc)


def regex_compile(pattern: str) -> Any:
    """The RE2 object for ``^(?:pattern)$``; raises RegexError naming what is refused."""
    if not isinstance(pattern, str):
        raise RegexError("the pattern must be a string")
    compiled, error = _cached(pattern)
    if error is not None:
        raise RegexError(error)
    return compiled


def regex_fullmatch(pattern: str, text: str) -> bool:
    """Whether ``text`` matches all of ``pattern`` (Prometheus/Alertmanager semantics).

    The text is handed to RE2 as UTF-8 bytes: that skips the wrapper's character-offset
    bookkeeping, and a lone surrogate in a label value (JSON allows ``"\\udc80"``) is matched
    as the bytes it would be rather than raising."""
    data = text.encode("utf-8", "surrogatepass")
    return regex_compile(pattern).fullmatch(data) is not None
