"""DingTalk custom robots ("自定义机器人") —
https://open.dingtalk.com/document/robots/custom-robot-access
Message types: https://open.dingtalk.com/document/robots/message-types-and-data-format

The message is ``msgtype: "markdown"`` with a ``title`` (shown in the conversation list)
and the ``text``. With a signing secret (it starts with ``SEC``) the request URL carries
``timestamp`` (ms) and ``sign`` query parameters (see :func:`.signing.dingtalk_sign`,
https://open.dingtalk.com/document/robots/customize-robot-security-settings).

Size: we keep the markdown text within 20,000 bytes of UTF-8 (the documented limit is
about 20,000 characters; bytes are the stricter reading). Rate: 20 messages per minute per
robot; past that DingTalk throttles the robot for 10 minutes.

Errors come back as HTTP 200 with ``{"errcode": non-zero, "errmsg": ...}``: 310000 the
security settings rejected the message (signature, keyword or IP allow-list — ``errmsg``
says which), 300001/300005/400101 invalid or unknown access token, 400102 robot disabled,
400106 robot missing, 400013 group dissolved, 430101-430104 content rejected, 130101 and
410100 sending too fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import MarkdownRobotTransport, PreparedRequest, Rule, json_bytes
from .rendering import Rendered
from .signing import dingtalk_sign

__all__ = ["DingTalkTransport"]

_MAX_TEXT_BYTES = 20_000
_THROTTLE_S = 600  # "会限流 10 分钟": the robot stays throttled for ten minutes

_INVALID_HOOK = "the access token is invalid or the robot was deleted; copy the webhook URL again"
_CONTENT = "DingTalk rejected the message content"
_RATE_LIMITED = Rule(
    "rate limited (20 messages per minute; DingTalk then throttles for 10 minutes)",
    permanent=False,
    rate_limited=True,
    retry_after_s=_THROTTLE_S,
)
_CODES: dict[int, Rule] = {
    310000: Rule(
        "the robot's security settings rejected the message: a signature mismatch (check "
        "the secret and this server's clock), a missing custom keyword or an IP outside "
        "the allow-list",
        permanent=True,
    ),
    300001: Rule(_INVALID_HOOK, permanent=True),
    300005: Rule(_INVALID_HOOK, permanent=True),
    400101: Rule(_INVALID_HOOK, permanent=True),
    400102: Rule("the robot was disabled", permanent=True),
    400106: Rule("the robot does not exist", permanent=True),
    400013: Rule("the group chat was dissolved", permanent=True),
    400105: Rule("DingTalk does not accept this message type", permanent=True),
    430101: Rule(_CONTENT, permanent=True),
    430102: Rule(_CONTENT, permanent=True),
    430103: Rule(_CONTENT, permanent=True),
    430104: Rule(_CONTENT, permanent=True),
    130101: _RATE_LIMITED,
    410100: _RATE_LIMITED,
}


class DingTalkTransport(MarkdownRobotTransport):
    kind = "dingtalk"
    display_name = "DingTalk"
    template_name = "dingtalk.md"
    signing = "optional"
    signing_prefix = "SEC"
    url_query_param = "access_token"
    default_retry_after_s = 60.0
    # https://oapi.dingtalk.com/robot/send?access_token=… (custom-robot-access, above).
    platform_hosts = ("oapi.dingtalk.com",)
    text_key = "text"
    max_text_bytes = _MAX_TEXT_BYTES
    error_codes = _CODES

    def markdown_text(self, rendered: Rendered) -> str:
        return f"### {rendered.title}\n\n{rendered.body}"

    def markdown(self, rendered: Rendered, text: str) -> dict[str, Any]:
        return {"title": rendered.title, "text": text}

    def prepare(self, payload: Mapping[str, Any]) -> PreparedRequest:
        url = self.webhook_url
        if self.secret:
            timestamp = int(self.clock() * 1000)
            separator = "&" if "?" in url else "?"
            # dingtalk_sign is already URL-encoded, as the documentation's example does.
            sign = dingtalk_sign(timestamp, self.secret)
            url = f"{url}{separator}timestamp={timestamp}&sign={sign}"
        return PreparedRequest(url=url, body=json_bytes(payload))
