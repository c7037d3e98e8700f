"""A local HTTP receiver per test, and fakes of each platform's webhook endpoint.

The fakes verify signatures the way each platform documents them, computed here from the
documentation rather than with the code under test, and answer with the platform's own
error shapes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from apps.integrations.chat import AlertItem, Notification
from tests.servers import RecordingServer, Request

FEISHU_SECRET = "feishu-secret-3f9a"
DINGTALK_SECRET = "SEC0f1e2d3c4b5a69788796a5b4c3d2e1f0"
DINGTALK_TOKEN = "dt-access-token"
WECOM_KEY = "6f0c1d2e-wecom-key"
WEBHOOK_SECRET = "webhook-secret-771"
ZH = "模型推理服务首个令牌延迟过高，请检查副本队列长度与显存占用情况。"  # noqa: RUF001

CONFIGS = {
    "slack": {"webhook_url": "https://hooks.slack.com/services/T/B/x"},
    "feishu": {"webhook_url": "https://open.feishu.cn/open-apis/bot/v2/hook/x"},
    "dingtalk": {"webhook_url": "https://oapi.dingtalk.com/robot/send?access_token=x"},
    "wecom": {"webhook_url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=x"},
    "teams": {"webhook_url": "https://example.logic.azure.com/workflows/x"},
    "webhook": {"webhook_url": "https://receiver.example/hook", "secret": "s"},
}


def within_platform_limits(kind: str, payload: dict) -> bool:
    """The documented limits, checked independently of the transports' own checks."""
    size = len(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode())
    if kind == "wecom":
        return len(payload["markdown"]["content"].encode()) <= 4096
    if kind == "dingtalk":
        return len(payload["markdown"]["text"].encode()) <= 20_000
    if kind == "slack":
        blocks = payload["blocks"]
        return len(blocks) <= 50 and all(
            len(b["text"]["text"]) <= (3000 if b["type"] == "section" else 150)
            for b in blocks
            if b["type"] in ("section", "header")
        )
    if kind == "feishu":
        return size + 100 <= 20 * 1024  # room for timestamp and sign
    if kind == "teams":
        return size <= 28_000
    return True


@dataclass
class Received:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Receiver:
    base_url: str
    handler: Callable[[Received], Reply] = field(default=lambda req: (200, {}, b"ok"), repr=False)
    received: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str = "/hook") -> str:
        return self.base_url + path


@pytest.fixture
def receiver(allow_loopback_outbound: None) -> Iterator[Receiver]:
    """A receiver on 127.0.0.1, which the outbound guard is told to allow."""

    def respond(request: Request) -> Reply:
        parts = urlsplit(request.path)
        req = Received(parts.path, parse_qs(parts.query), request.headers, request.body)
        recv.received.append(req)
        return recv.handler(req)

    server = RecordingServer(respond)
    recv = Receiver(base_url=server.url)
    try:
        yield recv
    finally:
        recv.release.set()
        server.stop()


def as_json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
    return (
        status,
        {"Content-Type": "application/json", **(headers or {})},
        json.dumps(payload).encode(),
    )


def as_text(status: int, text: str, headers: dict[str, str] | None = None) -> Reply:
    return status, {"Content-Type": "text/plain", **(headers or {})}, text.encode()


# -- platform fakes ------------------------------------------------------------------------


def slack_endpoint(req: Received) -> Reply:
    body = req.json()
    blocks = body.get("blocks")
    if not isinstance(body.get("text"), str) or not isinstance(blocks, list) or not blocks:
        return as_text(400, "invalid_payload")
    if len(blocks) > 50:
        return as_text(400, "invalid_blocks")
    for block in blocks:
        if block["type"] == "section" and len(block["text"]["text"]) > 3000:
            return as_text(400, "invalid_blocks")
    return as_text(200, "ok")


def feishu_endpoint(secret: str | None) -> Callable[[Received], Reply]:
    """https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot"""

    def handle(req: Received) -> Reply:
        body = req.json()
        if secret is not None:
            timestamp = str(body.get("timestamp", ""))
            string_to_sign = f"{timestamp}\n{secret}"
            digest = hmac.new(string_to_sign.encode(), b"", hashlib.sha256).digest()
            expected = base64.b64encode(digest).decode()
            fresh = timestamp.isdigit() and abs(time.time() - int(timestamp)) <= 3600
            if not fresh or not hmac.compare_digest(str(body.get("sign", "")), expected):
                return as_json(
                    200,
                    {
                        "code": 19021,
                        "data": {},
                        "msg": "sign match fail or timestamp is not within one hour "
                        "from current time",
                    },
                )
        card = body.get("card") or {}
        if body.get("msg_type") != "interactive" or not card.get("elements"):
            return as_json(200, {"code": 9499, "data": {}, "msg": "Bad Request"})
        if len(req.body) > 20 * 1024:
            return as_json(200, {"code": 9499, "data": {}, "msg": "request body too large"})
        return as_json(200, {"code": 0, "data": {}, "msg": "success"})

    return handle


def dingtalk_endpoint(secret: str | None) -> Callable[[Received], Reply]:
    """https://open.dingtalk.com/document/robots/customize-robot-security-settings"""

    def handle(req: Received) -> Reply:
        if req.query.get("access_token") != [DINGTALK_TOKEN]:
            return as_json(200, {"errcode": 300001, "errmsg": "token is not exist"})
        if secret is not None:
            timestamp = (req.query.get("timestamp") or [""])[0]
            # parse_qs has already URL-decoded the sign.
            sign = (req.query.get("sign") or [""])[0]
            string_to_sign = f"{timestamp}\n{secret}"
            digest = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha256).digest()
            expected = base64.b64encode(digest).decode()
            fresh = timestamp.isdigit() and abs(time.time() * 1000 - int(timestamp)) <= 3600_000
            if not fresh or not hmac.compare_digest(sign, expected):
                return as_json(200, {"errcode": 310000, "errmsg": "sign not match"})
        body = req.json()
        markdown = body.get("markdown") or {}
        if body.get("msgtype") != "markdown" or not markdown.get("title"):
            return as_json(200, {"errcode": 40035, "errmsg": "缺少参数 json"})
        if len(markdown.get("text", "").encode()) > 20_000:
            return as_json(200, {"errcode": 460101, "errmsg": "message too long"})
        return as_json(200, {"errcode": 0, "errmsg": "ok"})

    return handle


def wecom_endpoint(req: Received) -> Reply:
    """https://developer.work.weixin.qq.com/document/path/91770"""
    if req.query.get("key") != [WECOM_KEY]:
        return as_json(200, {"errcode": 93000, "errmsg": "invalid webhook url, hint: [x]"})
    body = req.json()
    content = (body.get("markdown") or {}).get("content", "")
    if body.get("msgtype") != "markdown" or not content:
        return as_json(200, {"errcode": 44004, "errmsg": "empty content"})
    if len(content.encode("utf-8")) > 4096:
        return as_json(200, {"errcode": 40058, "errmsg": "markdown.content exceed max length 4096"})
    return as_json(200, {"errcode": 0, "errmsg": "ok"})


def teams_endpoint(req: Received) -> Reply:
    body = req.json()
    try:
        [attachment] = body["attachments"]
        card = attachment["content"]
        ok = (
            body["type"] == "message"
            and attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
            and card["type"] == "AdaptiveCard"
            and card["version"] == "1.4"
            and card["body"][0]["type"] == "TextBlock"
        )
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok or len(req.body) > 28_000:
        return as_json(400, {"error": {"code": "InvalidRequestContent", "message": "bad card"}})
    return 202, {}, b""


def webhook_endpoint(secret: str) -> Callable[[Received], Reply]:
    """Verifies the scheme documented in apps.integrations.chat.webhook, independently."""

    def handle(req: Received) -> Reply:
        timestamp = req.headers.get("X-Controlplane-Timestamp", "")
        signature = req.headers.get("X-Controlplane-Signature", "")
        mac = hmac.new(secret.encode(), timestamp.encode() + b"." + req.body, hashlib.sha256)
        fresh = timestamp.isdigit() and abs(time.time() - int(timestamp)) <= 300
        if not fresh or not hmac.compare_digest(signature, "sha256=" + mac.hexdigest()):
            return as_text(401, "bad signature")
        return 204, {}, b""

    return handle


# -- notifications ---------------------------------------------------------------------------

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def alert(
    i: int,
    *,
    name: str = "HighTTFT",
    status: str = "firing",
    summary: str = "",
    description: str = "",
    extra: dict[str, str] | None = None,
) -> AlertItem:
    return AlertItem(
        labels={
            "alertname": name,
            "severity": "critical" if i % 3 == 0 else "warning",
            "deployment": f"llama-{i % 7}",
            "replica": f"r{i}",
            **(extra or {}),
        },
        status=status,  # type: ignore[arg-type]
        starts_at=T0 + timedelta(seconds=i),
        ends_at=T0 + timedelta(seconds=i + 600) if status == "resolved" else None,
        summary=summary or f"p95 TTFT high on replica r{i}",
        description=description,
        fingerprint=f"fp{i:06d}",
        url=f"https://cp.example.com/deployments/{i % 7}",
    )


def notification(
    alerts: list[AlertItem], *, title: str = "HighTTFT", language: str = "en", **kw: Any
) -> Notification:
    return Notification(
        title=title,
        status="firing" if any(a.status == "firing" for a in alerts) else "resolved",
        severity=kw.pop("severity", "critical"),
        group_labels=kw.pop("group_labels", {"alertname": title}),
        alerts=alerts,
        firing_count=sum(a.status == "firing" for a in alerts),
        resolved_count=sum(a.status == "resolved" for a in alerts),
        console_url=kw.pop("console_url", "https://cp.example.com/alerts/"),
        language=language,  # type: ignore[arg-type]
        **kw,
    )
