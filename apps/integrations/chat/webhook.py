"""The generic webhook: the full structured notification plus its rendered text, signed.

Request::

    POST <webhook_url>
    Content-Type: application/json; charset=utf-8
    X-Controlplane-Event: alert.notification
    X-Controlplane-Timestamp: 1700000000
    X-Controlplane-Signature: sha256=5f0c…(64 hex digits)

    {"version": 1, "event": "alert.notification", "title": "...", "text": "...",
     "notification": {"title", "status", "severity", "group_labels", "alerts": [...],
                      "firing_count", "resolved_count", "console_url", "language",
                      "omitted", "omitted_groups": [...]}}

``notification`` is :meth:`.messages.Notification.to_dict` (every alert, datetimes in ISO
8601); ``title``/``text`` are the rendered plain-text message (at most ``max_listed`` alerts
listed, the rest summarised).

Signature scheme (the same construction as Stripe's and Slack's request signing):

    signature = "sha256=" + hex(HMAC-SHA256(key=secret, msg=f"{timestamp}.".encode() + raw_body))

where ``timestamp`` is the ``X-Controlplane-Timestamp`` header (Unix seconds, the time of
sending) and ``raw_body`` the exact request body bytes. A receiver must

1. read the raw body before any JSON parsing (re-serialising changes the bytes);
2. reject the request if the timestamp is more than 5 minutes from its own clock — this
   is what stops a captured request from being replayed later, since the timestamp cannot
   be changed without breaking the signature;
3. recompute the signature and compare it in constant time (``hmac.compare_digest``).

:func:`.signing.verify_webhook_signature` does all three. Any 2xx answer is success; 429
(honouring ``Retry-After``), 408, 425 and 5xx are retried; other statuses are permanent
failures; redirects are not followed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import PreparedRequest, Transport, json_bytes
from .messages import Notification
from .ratelimit import RateWindow
from .rendering import Rendered
from .signing import WEBHOOK_SIGNATURE_HEADER, WEBHOOK_TIMESTAMP_HEADER, webhook_signature

__all__ = ["EVENT", "WebhookTransport"]

EVENT = "alert.notification"
_DEFAULT_PER_MINUTE = 60
_MAX_PER_MINUTE = 6000


class WebhookTransport(Transport):
    kind = "webhook"
    display_name = "Webhook"
    template_name = "webhook.txt"
    signing = "required"
    extra_config = ("max_per_minute",)

    @classmethod
    def _validate_extra(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        value = config.get("max_per_minute", _DEFAULT_PER_MINUTE)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("Webhook: max_per_minute must be a whole number")
        if not 1 <= value <= _MAX_PER_MINUTE:
            raise ValueError(f"Webhook: max_per_minute must be between 1 and {_MAX_PER_MINUTE}")
        return {"max_per_minute": value}

    def rate_limits(self) -> tuple[RateWindow, ...]:
        return (RateWindow(60, self.config["max_per_minute"]),)

    def escape_url(self, url: str) -> str:
        return url if url.startswith(("http://", "https://")) else ""

    def build(
        self, notification: Notification, rendered: Rendered, *, hard: bool
    ) -> dict[str, Any]:
        return {
            "version": 1,
            "event": EVENT,
            "title": rendered.title,
            "text": rendered.body,
            "notification": notification.to_dict(),
        }

    def within_limits(self, payload: Mapping[str, Any]) -> bool:
        return True  # the receiver is ours to size; the structured data is never cut

    def prepare(self, payload: Mapping[str, Any]) -> PreparedRequest:
        body = json_bytes(payload)
        timestamp = int(self.clock())
        return PreparedRequest(
            url=self.webhook_url,
            body=body,
            headers={
                "X-Controlplane-Event": EVENT,
                WEBHOOK_TIMESTAMP_HEADER: str(timestamp),
                WEBHOOK_SIGNATURE_HEADER: webhook_signature(self.secret, timestamp, body),
            },
        )
