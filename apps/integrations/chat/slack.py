"""Slack incoming webhooks — https://api.slack.com/messaging/webhooks

The payload is Block Kit (https://api.slack.com/reference/block-kit/blocks): a ``header``
block with the title, ``section`` blocks with the body in mrkdwn and an ``actions`` block
with a button to the console, plus the top-level ``text`` that notifications and old
clients show. Limits: at most 50 blocks per message, 3000 characters per section text,
150 per header text. Text is escaped as Slack asks (``&``, ``<``, ``>``):
https://api.slack.com/reference/surfaces/formatting#escaping

Slack answers ``200 ok``, or an HTTP error whose body is a short error code
(https://api.slack.com/messaging/webhooks#handling_errors), and ``429`` with
``Retry-After`` when rate limited (https://api.slack.com/apis/rate-limits).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Rule, Transport
from .messages import Notification
from .rendering import TITLE_MAX_CHARS, UI, Rendered, clip, split_text

__all__ = ["SlackTransport"]

_MAX_BLOCKS = 50
_SECTION_MAX_CHARS = 3000
_NOTE_ROOM = 40  # room kept in the last section for a "… N more lines" note

_ERRORS: dict[str, Rule] = {
    "invalid_payload": Rule("Slack rejected the message as malformed", permanent=True),
    "no_text": Rule("Slack rejected the message as empty", permanent=True),
    "too_many_attachments": Rule("Slack rejected the message's attachments", permanent=True),
    "user_not_found": Rule("the user this webhook posts to no longer exists", permanent=True),
    "channel_not_found": Rule("the channel this webhook posts to no longer exists", permanent=True),
    "channel_is_archived": Rule("the channel this webhook posts to is archived", permanent=True),
    "action_prohibited": Rule(
        "a workspace admin has restricted posting to this channel", permanent=True
    ),
    "posting_to_general_channel_denied": Rule(
        "only admins may post to this channel", permanent=True
    ),
    "no_service": Rule(
        "the webhook was removed or its app disabled; create a new webhook", permanent=True
    ),
    "no_service_id": Rule("the webhook URL is incomplete", permanent=True),
    "no_team": Rule("the workspace of this webhook no longer exists", permanent=True),
    "team_disabled": Rule("the workspace of this webhook was disabled", permanent=True),
    "invalid_token": Rule(
        "the webhook's token is invalid or revoked; create a new webhook", permanent=True
    ),
    "rollup_error": Rule("Slack failed internally (rollup_error)", permanent=False),
}


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackTransport(Transport):
    kind = "slack"
    display_name = "Slack"
    template_name = "slack.txt"
    default_retry_after_s = 1.0
    # Incoming webhook URLs are https://hooks.slack.com/services/T…/B…/… (see the page
    # cited above); GovSlack or a proxy are added with CHAT_SLACK_HOSTS.
    platform_hosts = ("hooks.slack.com",)

    def escape_text(self, text: str) -> str:
        return _escape(text)

    def escape_url(self, url: str) -> str:
        # Inside <url|text> only these three characters need encoding.
        if not url.startswith(("http://", "https://")):
            return ""
        return url.replace("|", "%7C").replace("<", "%3C").replace(">", "%3E")

    def build(
        self, notification: Notification, rendered: Rendered, *, hard: bool
    ) -> dict[str, Any]:
        ui = UI[notification.language]
        console = self.escape_url(notification.console_url)
        fixed = 1 + (1 if console else 0)
        room = _MAX_BLOCKS - fixed
        if hard:
            sections = split_text(rendered.body, _SECTION_MAX_CHARS - _NOTE_ROOM)
            if len(sections) > room:
                dropped = sum(s.count("\n") + 1 for s in sections[room:])
                sections = sections[:room]
                sections[-1] += "\n" + ui["more_lines"].format(n=dropped)
        else:
            sections = split_text(rendered.body, _SECTION_MAX_CHARS)
        blocks: list[dict[str, Any]] = [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": clip(rendered.title, TITLE_MAX_CHARS),
                    "emoji": True,
                },
            }
        ]
        blocks += [{"type": "section", "text": {"type": "mrkdwn", "text": s}} for s in sections]
        if console:
            blocks.append(
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "button",
                            "text": {"type": "plain_text", "text": ui["open_console"]},
                            "url": console,
                        }
                    ],
                }
            )
        fallback = ui["fallback"].format(
            title=rendered.title,
            firing=notification.firing_count,
            resolved=notification.resolved_count,
        )
        return {"text": fallback, "blocks": blocks}

    def within_limits(self, payload: Mapping[str, Any]) -> bool:
        blocks = payload["blocks"]
        if len(blocks) > _MAX_BLOCKS:
            return False
        for block in blocks:
            if block["type"] == "section" and len(block["text"]["text"]) > _SECTION_MAX_CHARS:
                return False
            if block["type"] == "header" and len(block["text"]["text"]) > TITLE_MAX_CHARS:
                return False
        return True

    def classify(self, status: int, text: str, data: Any) -> Rule | None:
        if 200 <= status < 300:
            return None
        rule = _ERRORS.get(text.strip())
        if rule is None:
            return None
        return Rule(f"{rule.reason} ({text.strip()})", permanent=rule.permanent, code=text.strip())
