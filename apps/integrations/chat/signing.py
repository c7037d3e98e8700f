"""The request signatures of the signed channels, in one place.

* Feishu/Lark custom bot — https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot
  (section "签名校验" / "Signature verification"): ``timestamp`` is Unix seconds as a string,
  ``string_to_sign = f"{timestamp}\\n{secret}"`` is the HMAC-SHA256 *key* and the message is
  empty; ``sign`` is the base64 of the digest. Both go into the JSON body. Feishu rejects a
  timestamp more than an hour away from its clock (code 19021).
* DingTalk custom robot — https://open.dingtalk.com/document/robots/customize-robot-security-settings
  ("加签"): ``timestamp`` is Unix milliseconds; the HMAC-SHA256 key is the secret and the
  message is ``f"{timestamp}\\n{secret}"``; ``sign`` is the base64 of the digest, URL-encoded,
  and both are appended to the webhook URL as query parameters. DingTalk rejects a timestamp
  more than an hour old (errcode 310000).
* The generic webhook (our own scheme, documented in :mod:`apps.integrations.chat.webhook`):
  ``X-Controlplane-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}.".encode() + body)>``
  over the exact body bytes, with ``X-Controlplane-Timestamp`` (Unix seconds) bound into the
  signed material so that a captured request cannot be replayed later.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote_plus

__all__ = [
    "WEBHOOK_SIGNATURE_HEADER",
    "WEBHOOK_TIMESTAMP_HEADER",
    "WEBHOOK_TOLERANCE_S",
    "dingtalk_sign",
    "feishu_sign",
    "hmac_sha256",
    "verify_webhook_signature",
    "webhook_signature",
]

WEBHOOK_SIGNATURE_HEADER = "X-Controlplane-Signature"
WEBHOOK_TIMESTAMP_HEADER = "X-Controlplane-Timestamp"
# How far a receiver should let a webhook's timestamp be from its own clock.
WEBHOOK_TOLERANCE_S = 300


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def feishu_sign(timestamp_s: int, secret: str) -> str:
    """The ``sign`` body field of a Feishu/Lark custom bot request."""
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac_sha256(key, b"")).decode("ascii")


def dingtalk_sign(timestamp_ms: int, secret: str) -> str:
    """The ``sign`` query parameter of a DingTalk robot request, already URL-encoded."""
    digest = hmac_sha256(secret.encode(), f"{timestamp_ms}\n{secret}".encode())
    return quote_plus(base64.b64encode(digest).decode("ascii"))


def webhook_signature(secret: str, timestamp_s: int, body: bytes) -> str:
    """The ``X-Controlplane-Signature`` header value for ``body`` sent at ``timestamp_s``."""
    digest = hmac.new(secret.encode(), f"{timestamp_s}.".encode() + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def verify_webhook_signature(
    secret: str,
    *,
    body: bytes,
    timestamp: str,
    signature: str,
    now: float,
    tolerance_s: float = WEBHOOK_TOLERANCE_S,
) -> bool:
    """What a receiver of the generic webhook does: check freshness, then the HMAC in
    constant time. ``timestamp`` and ``signature`` are the raw header values."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs(now - ts) > tolerance_s:
        return False
    return hmac.compare_digest(webhook_signature(secret, ts, body), signature)
