"""Turning a :class:`Notification` into a title and a body text with editable templates.

Default templates live in ``templates/alerts/notifications/<language>/``: ``title.txt`` for
the one-line title and one body template per channel kind, written in that platform's own
markup (Slack mrkdwn, lark_md, DingTalk/WeCom markdown, Adaptive Card markdown). A channel may
override either with its own template text (validate it with :func:`validate_template`).

The engine is Jinja2 in a bounded sandbox (:mod:`.sandbox`): no includes, imports or
``extends``, read-only data, and limits on steps, time, output and value sizes. Autoescaping
is off — the output is chat markup, not HTML — and every value in the context is already
escaped for the target platform and clipped to a sane length. The context holds only
strings, numbers, lists and dicts. A channel's own template is validated when it is saved
(:func:`validate_template`); one that fails when rendered (or no longer compiles) costs the
formatting, never the notification: the built-in template is used instead.

Variables available to templates:

``title status status_label severity severity_label group_labels`` (list of ``[key, value]``)
``firing_count resolved_count total console_url language omitted omitted_other`` and
``alerts`` — each with ``name status status_label severity severity_label summary description
labels starts_at ends_at duration fingerprint url`` — and ``omitted_groups`` — each with
``name status status_label count fingerprints hidden`` (``hidden``: fingerprints not shown).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import structlog
from jinja2.exceptions import SecurityError, TemplateSyntaxError

from .messages import AlertItem, Language, Notification
from .sandbox import DEFAULT_LIMITS, Limits, NotificationSandbox, render_bounded

__all__ = [
    "TEMPLATE_DIR",
    "TITLE_MAX_CHARS",
    "UI",
    "USER_LIMITS",
    "Rendered",
    "Template",
    "View",
    "clip",
    "compile_template",
    "default_template",
    "parse_template",
    "render_text",
    "severity_label",
    "split_text",
    "truncate_utf8",
    "utf8_len",
    "validate_template",
]

logger = structlog.get_logger("controlplane.integrations.chat")

TEMPLATE_DIR = Path(__file__).resolve().parents[3] / "templates" / "alerts" / "notifications"

# Slack's header block takes at most 150 characters; no platform shows a longer title well.
TITLE_MAX_CHARS = 150
_SUMMARY_MAX_CHARS = 300
_DESCRIPTION_MAX_CHARS = 1000
_LABEL_MAX_CHARS = 200
_LABELS_PER_ALERT = 8
# Labels every alert line would repeat; the group labels are shown once at the top instead.
_HIDDEN_ALERT_LABELS = frozenset({"alertname", "severity"})

UI: dict[str, dict[str, str]] = {
    "en": {
        "firing": "FIRING",
        "resolved": "RESOLVED",
        "open_console": "Open console",
        "details": "Details",
        "status": "Status",
        "severity": "Severity",
        "firing_count": "Firing",
        "resolved_count": "Resolved",
        "fallback": "{title}: {firing} firing, {resolved} resolved",
        "more_lines": "… {n} more lines",
    },
    "zh": {
        "firing": "告警中",
        "resolved": "已恢复",
        "open_console": "打开控制台",
        "details": "详情",
        "status": "状态",
        "severity": "级别",
        "firing_count": "告警数",
        "resolved_count": "恢复数",
        "fallback": "{title}：告警中 {firing} 条，已恢复 {resolved} 条",  # noqa: RUF001
        "more_lines": "… 还有 {n} 行",
    },
}

_SEVERITY_LABELS: dict[str, dict[str, str]] = {
    "en": {
        "critical": "Critical",
        "error": "Error",
        "warning": "Warning",
        "info": "Info",
        "none": "None",
    },
    "zh": {"critical": "严重", "error": "错误", "warning": "警告", "info": "提示", "none": "无"},
}


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def clip(text: str, max_chars: int) -> str:
    """``text`` cut to ``max_chars`` characters, ending in "…" when it was cut."""
    if len(text) <= max_chars:
        return text
    return text[: max(0, max_chars - 1)] + "…"


def _cut_bytes(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` that is at most ``max_bytes`` in UTF-8: the cut lands
    on a character boundary (a partial multibyte sequence at the end is dropped)."""
    return text.encode("utf-8")[: max(0, max_bytes)].decode("utf-8", errors="ignore")


def truncate_utf8(text: str, max_bytes: int, *, language: Language = "en") -> str:
    """``text`` fitted into ``max_bytes`` of UTF-8, keeping whole lines while they fit and
    ending with a "… N more lines" note saying how many were dropped.

    If even the first line does not fit it is cut on a character boundary. The result is
    never longer than ``max_bytes`` bytes, and never cuts a multibyte character in half.
    """
    if utf8_len(text) <= max_bytes:
        return text
    lines = text.split("\n")
    note_format = UI[language]["more_lines"]
    # Whole lines first: the most lines whose total plus the note still fits.
    used = 0
    kept = 0
    for i, line in enumerate(lines):
        cost = utf8_len(line) + (1 if i else 0)
        if used + cost > max_bytes:
            break
        used += cost
        kept += 1
    while kept > 0:
        note = "\n" + note_format.format(n=len(lines) - kept)
        head = "\n".join(lines[:kept])
        if utf8_len(head) + utf8_len(note) <= max_bytes:
            return head + note
        kept -= 1
    # Not even one whole line: cut inside the first one.
    rest = len(lines) - 1
    tail = "…" + ("\n" + note_format.format(n=rest) if rest else "")
    budget = max_bytes - utf8_len(tail)
    if budget <= 0:
        return _cut_bytes(text, max_bytes)
    return _cut_bytes(lines[0], budget) + tail


def split_text(text: str, max_chars: int) -> list[str]:
    """``text`` split into chunks of at most ``max_chars`` characters, at paragraph breaks
    where possible, then at line breaks; a single longer line is clipped."""
    paragraphs = text.split("\n\n")
    pieces = (piece for paragraph in paragraphs for piece in _pieces(paragraph, max_chars))
    return _pack(pieces, "\n\n", max_chars)


def _pieces(paragraph: str, max_chars: int) -> list[str]:
    if len(paragraph) <= max_chars:
        return [paragraph] if paragraph else []
    lines = (clip(line, max_chars) for line in paragraph.split("\n"))
    return _pack(lines, "\n", max_chars)


def _pack(parts: Iterable[str], separator: str, max_chars: int) -> list[str]:
    """``parts`` (each at most ``max_chars`` long) joined in order by ``separator``, a chunk
    closed when the next part would take it over ``max_chars`` characters."""
    chunks: list[str] = []
    current = ""
    for part in parts:
        joined = f"{current}{separator}{part}" if current else part
        if len(joined) <= max_chars:
            current = joined
        else:
            chunks.append(current)
            current = part
    if current:
        chunks.append(current)
    return chunks


# ---------------------------------------------------------------------------------------
# The template engine


@functools.cache
def _engine() -> NotificationSandbox:
    return NotificationSandbox()


# What a channel's own template may do, per render. The output limit is above every
# platform's message limit (the largest, Slack's 50 blocks of 3,000 characters, is 150,000
# bytes of mrkdwn at most; the others take 4-30 KB), so it never cuts a message a platform
# would have taken; the transports fit the text to the platform after rendering.
USER_LIMITS = DEFAULT_LIMITS
# The built-in templates are trusted code and list at most ``max_listed`` clipped alerts:
# the same sandbox with room to spare.
_BUILTIN_LIMITS = Limits(
    source_chars=64_000, output_chars=512 * 1024, value_chars=512 * 1024, steps=200_000
)


class Template:
    """A compiled notification template, or the reason it could not be compiled (a stored
    template from before a change of engine): rendering it then raises, and the caller
    falls back to the built-in template."""

    def __init__(
        self, source: str, compiled: jinja2.Template | None, error: str, limits: Limits
    ) -> None:
        self.source = source
        self.compiled = compiled
        self.error = error
        self.limits = limits

    def render(self, context: Mapping[str, Any]) -> str:
        if self.compiled is None:
            raise ValueError(self.error)
        text, _cut = render_bounded(self.compiled, dict(context), self.limits)
        return text


def _syntax_message(exc: TemplateSyntaxError) -> str:
    return f"line {exc.lineno}: {exc.message}" if exc.lineno else str(exc.message)


def parse_template(text: str, *, limits: Limits = USER_LIMITS) -> jinja2.Template:
    """``text`` compiled; ValueError naming the line and the problem if it is not a valid
    notification template (syntax, a tag or filter that is not available, too long)."""
    if len(text) > limits.source_chars:
        raise ValueError(
            f"invalid notification template: {len(text):,} characters; "
            f"at most {limits.source_chars:,}"
        )
    try:
        return _engine().from_string(text)
    except TemplateSyntaxError as exc:
        raise ValueError(f"invalid notification template: {_syntax_message(exc)}") from None


def compile_template(text: str) -> Template:
    """A channel's stored template, compiled. It was validated when saved; if it no longer
    compiles, rendering it raises and the built-in template is used instead."""
    try:
        return Template(text, parse_template(text), "", USER_LIMITS)
    except ValueError as exc:
        logger.warning("notification-template-invalid", error=str(exc))
        return Template(text, None, str(exc), USER_LIMITS)


def validate_template(text: str) -> None:
    """Raise ValueError if ``text`` cannot be used as a notification template: bad syntax
    (with its line), a tag that is not available (``include``, ``import``, ``extends``),
    or it fails on, or goes over a limit with, the sample notification of either language."""
    from .messages import sample_notification

    template = parse_template(text)
    for language in ("en", "zh"):
        sample = sample_notification(language)
        context = _context(sample, View(), _identity, _identity)
        try:
            _, cut = render_bounded(template, context, USER_LIMITS)
        except SecurityError as exc:
            raise ValueError(
                f"notification template over its limits or not allowed: {exc}"
            ) from None
        except Exception as exc:  # noqa: BLE001 - any failure makes the template unusable
            raise ValueError(f"notification template fails to render: {exc}") from None
        if cut:
            raise ValueError(
                "notification template over its limits: it produces more than "
                f"{USER_LIMITS.output_chars:,} characters for a two-alert sample"
            )


@functools.cache
def default_template(language: Language, name: str) -> Template:
    path = TEMPLATE_DIR / language / name
    if language not in ("en", "zh") or not path.is_file():
        raise ValueError(f"no default notification template {language}/{name}")
    text = path.read_text(encoding="utf-8")
    return Template(text, _engine().from_string(text), "", _BUILTIN_LIMITS)


# ---------------------------------------------------------------------------------------
# Context and rendering


@dataclass(frozen=True)
class View:
    """How much detail of the omitted groups a rendering shows."""

    fingerprints_per_group: int = 5
    group_lines: int = 20


@dataclass(frozen=True)
class Rendered:
    title: str
    body: str
    shown: Notification  # what was rendered: alerts listed individually, the rest omitted


def _identity(text: str) -> str:
    return text


def _time(value: datetime | None) -> str:
    if value is None:
        return ""
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _duration(start: datetime, end: datetime | None, language: Language) -> str:
    if end is None or end < start:
        return ""
    minutes = int((end - start).total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    units = ("d", "h", "m") if language == "en" else ("天", "小时", "分钟")
    parts = [f"{n}{u}" for n, u in zip((days, hours, minutes), units, strict=True) if n]
    return (" " if language == "en" else "").join(parts[:2]) or f"0{units[2]}"


def severity_label(severity: str, language: Language) -> str:
    return _SEVERITY_LABELS[language].get(severity.lower(), severity)


def _alert_context(
    alert: AlertItem,
    notification: Notification,
    esc: Callable[[str], str],
    esc_url: Callable[[str], str],
) -> dict[str, Any]:
    language = notification.language
    labels = [
        [esc(k), esc(clip(v, _LABEL_MAX_CHARS))]
        for k, v in alert.labels.items()
        if k not in _HIDDEN_ALERT_LABELS and notification.group_labels.get(k) != v
    ][:_LABELS_PER_ALERT]
    return {
        "name": esc(alert.name),
        "status": alert.status,
        "status_label": UI[language][alert.status],
        "severity": esc(alert.severity),
        "severity_label": esc(severity_label(alert.severity, language)),
        "summary": esc(clip(" ".join(alert.summary.split()), _SUMMARY_MAX_CHARS)),
        "description": esc(clip(" ".join(alert.description.split()), _DESCRIPTION_MAX_CHARS)),
        "labels": labels,
        "starts_at": _time(alert.starts_at),
        "ends_at": _time(alert.ends_at),
        "duration": _duration(alert.starts_at, alert.ends_at, language),
        "fingerprint": esc(alert.fingerprint),
        "url": esc_url(alert.url),
    }


def _context(
    n: Notification, view: View, esc: Callable[[str], str], esc_url: Callable[[str], str]
) -> dict[str, Any]:
    language = n.language
    groups = []
    shown_in_groups = 0
    for group in n.omitted_groups[: view.group_lines]:
        fingerprints = [esc(f) for f in group.fingerprints[: view.fingerprints_per_group]]
        groups.append(
            {
                "name": esc(group.name),
                "status": group.status,
                "status_label": UI[language][group.status],
                "count": group.count,
                "fingerprints": fingerprints,
                "hidden": group.count - len(fingerprints),
            }
        )
        shown_in_groups += group.count
    return {
        "title": esc(" ".join(n.title.split())),
        "status": n.status,
        "status_label": UI[language][n.status],
        "severity": esc(n.severity),
        "severity_label": esc(severity_label(n.severity, language)),
        "group_labels": [
            [esc(k), esc(clip(v, _LABEL_MAX_CHARS))] for k, v in n.group_labels.items()
        ],
        "firing_count": n.firing_count,
        "resolved_count": n.resolved_count,
        "total": n.total,
        "console_url": esc_url(n.console_url),
        "language": language,
        "alerts": [_alert_context(a, n, esc, esc_url) for a in n.alerts],
        "omitted": n.omitted,
        "omitted_groups": groups,
        # Alerts counted in ``omitted`` but in no group line shown.
        "omitted_other": n.omitted - shown_in_groups,
    }


_BLANK_RUNS = re.compile(r"\n{3,}")


def _tidy(text: str) -> str:
    """Template output with trailing spaces and runs of blank lines (left by tag-only
    lines) removed."""
    text = "\n".join(line.rstrip() for line in text.replace("\r", "").split("\n"))
    return _BLANK_RUNS.sub("\n\n", text).strip()


def _render(template: Template, fallback: Template, context: Mapping[str, Any], what: str) -> str:
    try:
        return template.render(context)
    except Exception as exc:  # a broken override must not stop the alert
        if template is fallback:
            raise
        logger.warning("notification-template-failed", template=what, error=str(exc))
        return fallback.render(context)


def render_text(
    n: Notification,
    *,
    template_name: str,
    view: View,
    escape: Callable[[str], str] = _identity,
    escape_url: Callable[[str], str] = _identity,
    body_template: Template | None = None,
    title_template: Template | None = None,
) -> Rendered:
    """The title and body of ``n`` (whose listed alerts are all shown individually).

    An override template that fails while rendering falls back to the default one, so a
    bad edit can cost formatting but never the notification.
    """
    context = _context(n, view, escape, escape_url)
    default_body = default_template(n.language, template_name)
    default_title = default_template(n.language, "title.txt")
    body = _tidy(_render(body_template or default_body, default_body, context, "body"))
    title = _render(title_template or default_title, default_title, context, "title")
    title = clip(" ".join(title.split()), TITLE_MAX_CHARS)
    return Rendered(title=title, body=body, shown=n)
