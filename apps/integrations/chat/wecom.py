"""WeCom (企业微信) group robots — https://developer.work.weixin.qq.com/document/path/91770

The message is ``msgtype: "markdown"`` whose ``content`` may use WeCom's markdown subset,
including ``<font color="info|comment|warning">``. The content is limited to 4096 bytes of
UTF-8; a message that cannot be shortened by summarising is cut on a character boundary
with a "… N more lines" note (:func:`.rendering.truncate_utf8`). The webhook URL carries
the robot's ``key``; there is no signature. Rate: 20 messages per minute per robot.

Errors come back as HTTP 200 with ``{"errcode": non-zero, "errmsg": ...}``: 93000 invalid
webhook URL (wrong key, robot removed), 45009 API frequency limit, 40008 invalid message
type, 40058 an invalid or too long field, 44004 empty content
(https://developer.work.weixin.qq.com/document/path/90313 lists all codes).
"""

from __future__ import annotations

from .base import MarkdownRobotTransport, Rule
from .rendering import Rendered

__all__ = ["MAX_CONTENT_BYTES", "WeComTransport"]

MAX_CONTENT_BYTES = 4096

_CODES: dict[int, Rule] = {
    93000: Rule(
        "invalid webhook URL: the key is wrong or the robot was removed from the group",
        permanent=True,
    ),
    40014: Rule("invalid webhook key", permanent=True),
    40008: Rule("WeCom does not accept this message type", permanent=True),
    40058: Rule("WeCom rejected a field of the message as invalid or too long", permanent=True),
    44004: Rule("WeCom rejected the message as empty", permanent=True),
    45009: Rule(
        "rate limited (20 messages per minute per robot)",
        permanent=False,
        rate_limited=True,
        retry_after_s=60,
    ),
    45033: Rule("too many concurrent calls", permanent=False, rate_limited=True, retry_after_s=5),
}


class WeComTransport(MarkdownRobotTransport):
    kind = "wecom"
    display_name = "WeCom"
    template_name = "wecom.md"
    url_query_param = "key"
    default_retry_after_s = 60.0
    # https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=… (document 91770, above).
    platform_hosts = ("qyapi.weixin.qq.com",)
    text_key = "content"
    max_text_bytes = MAX_CONTENT_BYTES
    error_codes = _CODES

    def markdown_text(self, rendered: Rendered) -> str:
        return f"**{rendered.title}**\n{rendered.body}"
