"""Each transport against a local receiver that checks shapes and signatures, and the
mapping of every platform's error answers onto retryable and permanent failures."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest
import requests

from apps.integrations.chat import (
    DeliveryRecord,
    Transport,
    TransportError,
    sample_notification,
    transport_for,
)
from apps.integrations.chat.signing import verify_webhook_signature

from .conftest import (
    DINGTALK_SECRET,
    DINGTALK_TOKEN,
    FEISHU_SECRET,
    WEBHOOK_SECRET,
    WECOM_KEY,
    Received,
    Receiver,
    Reply,
    alert,
    as_json,
    as_text,
    dingtalk_endpoint,
    feishu_endpoint,
    notification,
    slack_endpoint,
    teams_endpoint,
    webhook_endpoint,
    wecom_endpoint,
)

CHANNELS: dict[str, tuple[Callable[[Receiver], dict[str, Any]], Callable[[Received], Reply]]] = {
    "slack": (lambda r: {"webhook_url": r.url("/services/T0/B0/xyz")}, slack_endpoint),
    "feishu": (
        lambda r: {"webhook_url": r.url("/open-apis/bot/v2/hook/abc"), "secret": FEISHU_SECRET},
        feishu_endpoint(FEISHU_SECRET),
    ),
    "dingtalk": (
        lambda r: {
            "webhook_url": r.url(f"/robot/send?access_token={DINGTALK_TOKEN}"),
            "secret": DINGTALK_SECRET,
        },
        dingtalk_endpoint(DINGTALK_SECRET),
    ),
    "wecom": (
        lambda r: {"webhook_url": r.url(f"/cgi-bin/webhook/send?key={WECOM_KEY}")},
        wecom_endpoint,
    ),
    "teams": (lambda r: {"webhook_url": r.url("/workflows/x/invoke?sig=s")}, teams_endpoint),
    "webhook": (
        lambda r: {"webhook_url": r.url("/alerts"), "secret": WEBHOOK_SECRET},
        webhook_endpoint(WEBHOOK_SECRET),
    ),
}


def _transport(kind: str, receiver: Receiver, **options: Any) -> Transport:
    config, endpoint = CHANNELS[kind]
    receiver.handler = endpoint
    return transport_for(kind, config(receiver), **options)


# -- success against each platform's fake ------------------------------------------------


@pytest.mark.parametrize("language", ["en", "zh"])
@pytest.mark.parametrize("kind", sorted(CHANNELS))
def test_send_test__platform_fake_verifies_shape_and_signature__delivered(
    receiver: Receiver, kind: str, language: str
) -> None:
    transport = _transport(kind, receiver)
    result = transport.send_test(language, console_url="https://cp.example.com/")  # type: ignore[arg-type]
    assert result.kind == kind
    assert 200 <= result.status_code < 300
    assert result.latency_s >= 0
    assert len(receiver.received) == 1


def test_send_test__zh__chinese_text_reaches_the_platform(receiver: Receiver) -> None:
    transport = _transport("wecom", receiver)
    transport.send_test("zh")
    content = receiver.received[0].json()["markdown"]["content"]
    assert "告警中" in content
    assert "首 token 延迟" in content


def test_slack__payload__header_sections_and_console_button(receiver: Receiver) -> None:
    transport = _transport("slack", receiver)
    transport.notify(sample_notification("en", console_url="https://cp.example.com/x"))
    body = receiver.received[0].json()
    types = [b["type"] for b in body["blocks"]]
    assert types[0] == "header"
    assert "section" in types
    assert body["blocks"][-1]["elements"][0]["url"] == "https://cp.example.com/x"
    assert "1 firing, 1 resolved" in body["text"]


def test_slack__label_with_markup__escaped_in_mrkdwn(receiver: Receiver) -> None:
    transport = _transport("slack", receiver)
    a = alert(1, summary="queue <@here> & friends > 10")
    transport.notify(notification([a]))
    text = "".join(
        b["text"]["text"] for b in receiver.received[0].json()["blocks"] if b["type"] == "section"
    )
    assert "queue &lt;@here&gt; &amp; friends &gt; 10" in text
    assert "<@here>" not in text


def test_feishu__payload__interactive_card_with_signature_fields(receiver: Receiver) -> None:
    transport = _transport("feishu", receiver, clock=lambda: 1_767_000_000.9)
    receiver.handler = lambda req: as_json(200, {"code": 0, "msg": "success"})
    transport.notify(sample_notification("en"))
    body = receiver.received[0].json()
    assert body["msg_type"] == "interactive"
    assert body["timestamp"] == "1767000000"
    assert body["card"]["header"]["template"] == "red"
    assert body["card"]["elements"][0]["text"]["tag"] == "lark_md"


def test_feishu__no_secret__no_signature_fields(receiver: Receiver) -> None:
    receiver.handler = feishu_endpoint(None)
    transport = transport_for("feishu", {"webhook_url": receiver.url()})
    transport.send_test()
    body = receiver.received[0].json()
    assert "sign" not in body
    assert "timestamp" not in body


def test_feishu__wrong_secret__permanent_sign_failure(receiver: Receiver) -> None:
    receiver.handler = feishu_endpoint(FEISHU_SECRET)
    transport = transport_for("feishu", {"webhook_url": receiver.url(), "secret": "wrong"})
    with pytest.raises(TransportError) as err:
        transport.send_test()
    assert err.value.permanent
    assert err.value.platform_code == 19021
    assert "signature rejected" in err.value.message
    assert err.value.status_code == 200


def test_dingtalk__payload__markdown_and_signed_query(receiver: Receiver) -> None:
    transport = _transport("dingtalk", receiver)
    transport.notify(sample_notification("zh"))
    req = receiver.received[0]
    assert set(req.query) == {"access_token", "timestamp", "sign"}
    assert len(req.query["timestamp"][0]) == 13  # milliseconds
    body = req.json()
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["text"].startswith("### ")


def test_dingtalk__wrong_secret__permanent_security_failure(receiver: Receiver) -> None:
    receiver.handler = dingtalk_endpoint(DINGTALK_SECRET)
    transport = transport_for(
        "dingtalk",
        {
            "webhook_url": receiver.url(f"/robot/send?access_token={DINGTALK_TOKEN}"),
            "secret": "SECnot-the-right-one",
        },
    )
    with pytest.raises(TransportError) as err:
        transport.send_test()
    assert err.value.permanent
    assert err.value.platform_code == 310000
    assert "sign not match" in err.value.message


def test_dingtalk__stale_clock__signature_rejected(receiver: Receiver) -> None:
    transport = _transport("dingtalk", receiver, clock=lambda: 1_000_000_000.0)
    with pytest.raises(TransportError) as err:
        transport.send_test()
    assert err.value.permanent


def test_webhook__payload__full_structured_data_and_verifiable_signature(
    receiver: Receiver,
) -> None:
    transport = _transport("webhook", receiver)
    alerts = [alert(i) for i in range(30)]
    transport.notify(notification(alerts))
    req = receiver.received[0]
    body = req.json()
    assert body["event"] == "alert.notification"
    assert len(body["notification"]["alerts"]) == 30  # every alert, not only the listed
    assert "10 more alerts not listed" in body["text"]
    assert req.headers["Content-Type"] == "application/json; charset=utf-8"
    assert verify_webhook_signature(
        WEBHOOK_SECRET,
        body=req.body,
        timestamp=req.headers["X-Controlplane-Timestamp"],
        signature=req.headers["X-Controlplane-Signature"],
        now=float(req.headers["X-Controlplane-Timestamp"]),
    )


def test_webhook_signature__replayed_later_or_tampered__rejected(receiver: Receiver) -> None:
    transport = _transport("webhook", receiver)
    transport.send_test()
    req = receiver.received[0]
    ts = req.headers["X-Controlplane-Timestamp"]
    sig = req.headers["X-Controlplane-Signature"]
    kwargs = {"timestamp": ts, "signature": sig}
    assert not verify_webhook_signature(WEBHOOK_SECRET, body=req.body, now=int(ts) + 301, **kwargs)
    # A timestamp from the future is no fresher than one from the past: a request signed
    # with a clock set ahead could otherwise be replayed until that time comes.
    assert not verify_webhook_signature(WEBHOOK_SECRET, body=req.body, now=int(ts) - 301, **kwargs)
    assert not verify_webhook_signature(
        WEBHOOK_SECRET, body=req.body, now=int(ts) - 86400 * 365, **kwargs
    )
    # The tolerance is inclusive on both sides.
    assert verify_webhook_signature(WEBHOOK_SECRET, body=req.body, now=int(ts) + 300, **kwargs)
    assert verify_webhook_signature(WEBHOOK_SECRET, body=req.body, now=int(ts) - 300, **kwargs)
    assert not verify_webhook_signature(WEBHOOK_SECRET, body=req.body + b" ", now=int(ts), **kwargs)
    assert not verify_webhook_signature("other", body=req.body, now=int(ts), **kwargs)


def test_teams__payload__adaptive_card_with_facts_and_action(receiver: Receiver) -> None:
    transport = _transport("teams", receiver)
    transport.notify(sample_notification("en", console_url="https://cp.example.com/"))
    card = receiver.received[0].json()["attachments"][0]["content"]
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    facts = {f["title"]: f["value"] for f in card["body"][1]["facts"]}
    assert facts["Firing"] == "1"
    assert facts["deployment"] == "demo-llama-8b"
    assert card["actions"][0] == {
        "type": "Action.OpenUrl",
        "title": "Open console",
        "url": "https://cp.example.com/",
    }


def test_wecom__wrong_key__permanent_invalid_webhook(receiver: Receiver) -> None:
    receiver.handler = wecom_endpoint
    transport = transport_for(
        "wecom", {"webhook_url": receiver.url("/cgi-bin/webhook/send?key=nope")}
    )
    with pytest.raises(TransportError) as err:
        transport.send_test()
    assert err.value.permanent
    assert err.value.platform_code == 93000
    assert "removed" in err.value.message


# -- error mapping ------------------------------------------------------------------------

_ERROR_CASES = [
    # kind, reply, permanent, retry_after_s
    ("feishu", as_json(200, {"code": 19021, "msg": "sign match fail"}), True, None),
    ("feishu", as_json(200, {"code": 19024, "msg": "Key Words Not Found"}), True, None),
    ("feishu", as_json(200, {"code": 9499, "msg": "Bad Request"}), True, None),
    ("feishu", as_json(200, {"code": 11232, "msg": "frequency limited"}), False, 60),
    ("feishu", as_json(200, {"code": 12345, "msg": "something new"}), False, None),
    ("feishu", as_json(200, {"StatusCode": 19001, "StatusMessage": "token invalid"}), True, None),
    (
        "dingtalk",
        as_json(200, {"errcode": 310000, "errmsg": "keywords not in content"}),
        True,
        None,
    ),
    ("dingtalk", as_json(200, {"errcode": 300001, "errmsg": "token is not exist"}), True, None),
    ("dingtalk", as_json(200, {"errcode": 400102, "errmsg": "robot disabled"}), True, None),
    ("dingtalk", as_json(200, {"errcode": 130101, "errmsg": "send too fast"}), False, 600),
    ("dingtalk", as_json(200, {"errcode": -1, "errmsg": "系统繁忙"}), False, None),
    ("wecom", as_json(200, {"errcode": 93000, "errmsg": "invalid webhook url"}), True, None),
    ("wecom", as_json(200, {"errcode": 45009, "errmsg": "api freq out of limit"}), False, 60),
    ("wecom", as_json(200, {"errcode": 40058, "errmsg": "exceed max length"}), True, None),
    ("slack", as_text(404, "no_service"), True, None),
    ("slack", as_text(403, "invalid_token"), True, None),
    ("slack", as_text(410, "channel_is_archived"), True, None),
    ("slack", as_text(400, "invalid_payload"), True, None),
    ("slack", as_text(500, "rollup_error"), False, None),
    ("slack", as_text(429, "rate_limited", {"Retry-After": "7"}), False, 7),
    ("slack", as_text(503, "unavailable", {"Retry-After": "3"}), False, 3),
    ("teams", as_text(429, "", {"Retry-After": "12"}), False, 12),
    ("teams", as_text(429, ""), False, 30),
    ("teams", as_json(404, {"error": {"code": "WorkflowNotFound", "message": "gone"}}), True, None),
    ("teams", as_text(401, "unauthorized"), True, None),
    (
        "teams",
        as_json(400, {"error": {"code": "InvalidRequestContent", "message": "x"}}),
        True,
        None,
    ),
    ("teams", as_text(502, "Bad Gateway"), False, None),
    ("teams", as_text(200, "Microsoft Teams endpoint returned HTTP error 429 with id"), False, 30),
    ("webhook", as_text(500, "boom"), False, None),
    ("webhook", as_text(410, "gone"), True, None),
    ("webhook", as_text(302, "", {"Location": "https://elsewhere.example/"}), True, None),
    ("webhook", as_text(408, ""), False, None),
]


@pytest.mark.parametrize(("kind", "reply", "permanent", "retry_after"), _ERROR_CASES)
def test_notify__platform_error_answer__mapped_to_retryable_or_permanent(
    receiver: Receiver, kind: str, reply: Reply, permanent: bool, retry_after: float | None
) -> None:
    transport = _transport(kind, receiver)
    receiver.handler = lambda req: reply
    with pytest.raises(TransportError) as err:
        transport.send_test()
    error = err.value
    assert error.permanent is permanent
    assert error.retryable is not permanent
    assert error.retry_after_s == retry_after
    assert error.status_code == reply[0]
    assert error.latency_s is not None
    assert error.kind == kind
    # The stored answer is the status and the platform's error code, never the body.
    assert re.fullmatch(
        rf"HTTP {reply[0]}[A-Za-z ]*(; [A-Za-z ]+ code [\w.-]+)?", error.response_summary
    )
    if error.platform_code is not None:
        assert error.response_summary.endswith(f" code {error.platform_code}")
    # The message names the host, never the credential-bearing path or query.
    assert "127.0.0.1" in error.message
    assert "/services/" not in error.message
    assert "access_token" not in error.message


def test_notify__retry_after_http_date__seconds_from_now(receiver: Receiver) -> None:
    now = 1_767_000_000.0
    when = format_datetime(datetime.fromtimestamp(now + 90, UTC), usegmt=True)
    transport = _transport("webhook", receiver, clock=lambda: now)
    receiver.handler = lambda req: as_text(429, "slow down", {"Retry-After": when})
    with pytest.raises(TransportError) as err:
        transport.send_test()
    assert err.value.retry_after_s == pytest.approx(90)


def test_notify__redirect__not_followed(receiver: Receiver) -> None:
    transport = _transport("webhook", receiver)
    receiver.handler = lambda req: as_text(307, "", {"Location": receiver.url("/other")})
    with pytest.raises(TransportError):
        transport.send_test()
    assert [r.path for r in receiver.received] == ["/alerts"]


def test_notify__slow_answer__retryable_timeout(receiver: Receiver) -> None:
    transport = _transport("slack", receiver, timeout_s=0.2)

    def slow(req: Received) -> Reply:
        receiver.release.wait(10)
        return as_text(200, "ok")

    receiver.handler = slow
    with pytest.raises(TransportError) as err:
        transport.send_test()
    assert err.value.retryable
    assert err.value.status_code is None
    assert "no answer within 0.2s" in err.value.message


@pytest.mark.usefixtures("allow_loopback_outbound")
def test_notify__nothing_listening__retryable_unreachable() -> None:
    transport = transport_for("slack", {"webhook_url": "http://127.0.0.1:9/services/x"})
    with pytest.raises(TransportError) as err:
        transport.send_test()
    assert err.value.retryable
    assert err.value.status_code is None
    assert "cannot reach" in err.value.message


def test_deliver__failure__record_carries_status_error_and_latency(receiver: Receiver) -> None:
    transport = _transport("wecom", receiver)
    receiver.handler = lambda req: as_json(200, {"errcode": 45009, "errmsg": "freq"})
    record = transport.deliver(sample_notification())
    assert record == DeliveryRecord(
        kind="wecom",
        ok=False,
        status_code=200,
        latency_s=record.latency_s,
        response_summary="HTTP 200 OK; WeCom code 45009",
        error=record.error,
        permanent=False,
        retry_after_s=60,
    )
    assert "rate limited" in record.error
    assert record.latency_s is not None


def test_deliver__success__record_ok(receiver: Receiver) -> None:
    record = _transport("teams", receiver).deliver(sample_notification())
    assert record.ok
    assert record.status_code == 202
    assert record.error == ""


def test_notify__injected_session__used_for_the_post(receiver: Receiver) -> None:
    calls = []

    class CountingSession(requests.Session):
        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            calls.append((method, kwargs.get("timeout")))
            return super().request(method, url, *args, **kwargs)

    with CountingSession() as session:
        transport = _transport("slack", receiver, session=session, timeout_s=4, connect_timeout_s=2)
        transport.send_test()
    assert calls == [("POST", (2, 4))]


def test_notify__concurrent_sends__each_signed_and_delivered(receiver: Receiver) -> None:
    transport = _transport("feishu", receiver)
    errors: list[BaseException] = []

    def send() -> None:
        try:
            transport.send_test()
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(receiver.received) == 8
