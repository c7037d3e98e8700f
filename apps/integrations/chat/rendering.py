"""Turning a :class:`Notification` into a title and a body text with editable templates.

Default templates live in ``templates/alerts/notifications/<language>/``: ``title.txt`` for
the one-line title and one body template per channel kind, written in that platform's own
markup (Slack mrkdwn, lark_md, DingTalk/WeCom markdown, Adaptive Card markdown). A channel may
override either with its own template text (validate it with :func:`validate_template`).

The engine is Django's template language run standalone (``django.template.Engine``) with
autoescaping off — the output is chat markup, not HTML — and with every value in the context
already escaped for the target platform and clipped to a sane length. The context holds
only strings, numbers, lists and dicts, so a template cannot reach any Python object.
Variables available to templates:

``title status status_label severity severity_label group_labels`` (list of ``[key, value]``)
``firing_count resolved_count total console_url language omitted omitted_other`` and
``alerts`` — each with ``name status status_label severity severity_label summary description
labels starts_at ends_at duration fingerprint url`` — and ``omitted_groups`` — each with
``name status status_label count fingerprints hidden`` (``hidden``: fingerprints not shown).
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from django.template import Context, Engine, TemplateDoesNotExist, TemplateSyntaxError
from django.template.base import Template

from .messages import AlertItem, Language, Notification

__all__ = [
    "TEMPLATE_DIR",
    "TITLE_MAX_CHARS",
    "UI",
    "Rendered",
    "View",
    "clip",
    "compile_template",
    "default_template",
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
    chunks: list[str] = []
    current = ""
    for paragraph in text.split("\n\n"):
        for piece in _pieces(paragraph, max_chars):
            joined = f"{current}\n\n{piece}" if current else piece
            if len(joined) <= max_chars:
                current = joined
            else:
                chunks.append(current)
                current = piece
    if current:
        chunks.append(current)
    return chunks


def _pieces(paragraph: str, max_chars: int) -> list[str]:
    if len(paragraph) <= max_chars:
        return [paragraph] if paragraph else []
    pieces: list[str] = []
    current = ""
    for line in paragraph.split("\n"):
        line = clip(line, max_chars)
        joined = f"{current}\n{line}" if current else line
        if len(joined) <= max_chars:
            current = joined
        else:
            pieces.append(current)
            current = line
    if current:
        pieces.append(current)
    return pieces


# ---------------------------------------------------------------------------------------
# The template engine


@functools.cache
def _engine() -> Engine:
    engine = Engine(dirs=[str(TEMPLATE_DIR)], autoescape=False, string_if_invalid="")
    # {% debug %} would print the context and sys.modules into a chat message, and
    # {% load %} has no libraries to load here: neither belongs in a notification.
    builtins = []
    for library in engine.template_builtins:
        trimmed = copy.copy(library)
        trimmed.tags = {k: v for k, v in library.tags.items() if k not in {"debug", "load"}}
        builtins.append(trimmed)
    engine.template_builtins = builtins
    return engine


def compile_template(text: str) -> Template:
    """A template compiled from ``text``; ValueError with the parser's message if it is not
    valid Django template syntax."""
    try:
        return _engine().from_string(text)
    except TemplateSyntaxError as exc:
        raise ValueError(f"invalid notification template: {exc}") from None


def validate_template(text: str) -> None:
    """Raise ValueError if ``text`` cannot be used as a notification template: bad syntax,
    or it fails on the sample notification of either language."""
    from .messages import sample_notification

    template = compile_template(text)
    for language in ("en", "zh"):
        sample = sample_notification(language)
        try:
            template.render(Context(_context(sample, View(), _identity, _identity)))
        except Exception as exc:  # noqa: BLE001 - any failure makes the template unusable
            raise ValueError(f"notification template fails to render: {exc}") from None


@functools.cache
def default_template(language: Language, name: str) -> Template:
    try:
        return _engine().get_template(f"{language}/{name}")
    except TemplateDoesNotExist:
        raise ValueError(f"no default notification template {language}/{name}") from None


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
        return template.render(Context(dict(context), autoescape=False))
    except Exception as exc:  # a broken override must not stop the alert
        if template is fallback:
            raise
        logger.warning("notification_template_failed", template=what, error=str(exc))
        return fallback.render(Context(dict(context), autoescape=False))


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
