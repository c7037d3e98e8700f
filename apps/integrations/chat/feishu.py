"""Feishu / Lark custom bots ("自定义机器人") —
https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot
(Lark: https://open.larksuite.com/document/client-docs/bot-v3/add-custom-bot)

The message is a card (``msg_type: "interactive"``, card JSON 1.0:
https://open.feishu.cn/document/common-capabilities/message-card/message-cards-content/card-structure/card-content):
a coloured header with the title, ``div`` elements whose text is ``lark_md`` and an action
button to the console. With a signing secret the body also carries ``timestamp`` and
``sign`` (see :func:`.signing.feishu_sign`).

Size: the custom-bot page limits a request body to 20 KB; we keep every body (signature
fields included) under that, which also satisfies the ~30 KB card limit of app bots.

Errors come back as HTTP 200 with ``{"code": non-zero, "msg": ...}`` (older deployments:
``StatusCode``/``StatusMessage``): 19021 signature mismatch or timestamp more than an hour
off, 19022 IP not allowed, 19024 custom keyword missing, 19001 invalid hook token, 9499 bad
request, 11232 frequency limited (100/min, 5/s per bot).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import PreparedRequest, Rule, Transport, fit_text, json_bytes, json_code_rule
from .messages import Notification, severity_rank
from .rendering import UI, Rendered, split_text
from .signing import feishu_sign

__all__ = ["FeishuTransport"]

_MAX_BODY_BYTES = 20 * 1024
_SIGNATURE_ROOM = 256  # "timestamp" and "sign" fields added at send time, with margin
_DIV_MAX_CHARS = 2000

_CODES: dict[int, Rule] = {
    19001: Rule(
        "the webhook URL is invalid: the bot was removed or its token changed", permanent=True
    ),
    19021: Rule(
        "signature rejected: check the secret, and that this server's clock is within an "
        "hour of real time",
        permanent=True,
    ),
    19022: Rule("the bot's IP allow-list does not include this server", permanent=True),
    19024: Rule(
        "the bot requires a custom keyword that the message lacks; add it to the template "
        "or switch the bot to signature verification",
        permanent=True,
    ),
    9499: Rule("Feishu rejected the request as malformed", permanent=True),
    11232: Rule(
        "rate limited (100 messages per minute, 5 per second per bot)",
        permanent=False,
        rate_limited=True,
        retry_after_s=60,
    ),
}


def _header_color(n: Notification) -> str:
    if n.status == "resolved":
        return "green"
    rank = severity_rank(n.severity)
    if rank <= severity_rank("error"):
        return "red"
    if rank == severity_rank("warning"):
        return "orange"
    return "yellow"


class FeishuTransport(Transport):
    kind = "feishu"
    display_name = "Feishu"
    template_name = "feishu.md"
    signing = "optional"
    default_retry_after_s = 60.0
    # https://open.feishu.cn/open-apis/bot/v2/hook/… and, for Lark,
    # https://open.larksuite.com/open-apis/bot/v2/hook/… (the pages cited above).
    platform_hosts = ("open.feishu.cn", "open.larksuite.com")

    def _card(self, notification: Notification, title: str, body: str) -> dict[str, Any]:
        elements: list[dict[str, Any]] = [
            {"tag": "div", "text": {"tag": "lark_md", "content": chunk}}
            for chunk in split_text(body, _DIV_MAX_CHARS)
        ]
        console = self.escape_url(notification.console_url)
        if console:
            elements.append({"tag": "hr"})
            elements.append(
                {
                    "tag": "action",
                    "actions": [
                        {
                            "tag": "button",
                            "text": {
                                "tag": "plain_text",
                                "content": UI[notification.language]["open_console"],
                            },
                            "type": "primary",
                            "url": console,
                        }
                    ],
                }
            )
        return {
            "msg_type": "interactive",
            "card": {
                "config": {"wide_screen_mode": True},
                "header": {
                    "template": _header_color(notification),
                    "title": {"tag": "plain_text", "content": title},
                },
                "elements": elements,
            },
        }

    def build(
        self, notification: Notification, rendered: Rendered, *, hard: bool
    ) -> dict[str, Any]:
        if not hard:
            return self._card(notification, rendered.title, rendered.body)
        return fit_text(
            lambda body: self._card(notification, rendered.title, body),
            rendered.body,
            max_bytes=_MAX_BODY_BYTES,
            language=notification.language,
            within=self.within_limits,
        )

    def within_limits(self, payload: Mapping[str, Any]) -> bool:
        return len(json_bytes(payload)) + _SIGNATURE_ROOM <= _MAX_BODY_BYTES

    def prepare(self, payload: Mapping[str, Any]) -> PreparedRequest:
        if self.secret:
            timestamp = int(self.clock())
            payload = {
                "timestamp": str(timestamp),
                "sign": feishu_sign(timestamp, self.secret),
                **payload,
            }
        return PreparedRequest(url=self.webhook_url, body=json_bytes(payload))

    def classify(self, status: int, text: str, data: Any) -> Rule | None:
        return json_code_rule(
            data,
            platform="Feishu",
            code_keys=("code", "StatusCode"),
            message_keys=("msg", "StatusMessage"),
            rules=_CODES,
        )
