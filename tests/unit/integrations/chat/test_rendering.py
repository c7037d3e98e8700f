"""Templates, overrides, and keeping every platform's message within its size limits."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.integrations.chat import sample_notification, transport_for, validate_template
from apps.integrations.chat.messages import OmittedGroup
from apps.integrations.chat.rendering import TEMPLATE_DIR, split_text, truncate_utf8
from apps.integrations.chat.wecom import MAX_CONTENT_BYTES

from .conftest import (
    CONFIGS,
    WECOM_KEY,
    ZH,
    Receiver,
    alert,
    notification,
    wecom_endpoint,
    within_platform_limits,
)


def test_default_templates__every_kind_and_language__files_exist() -> None:
    for language in ("en", "zh"):
        names = {p.name for p in (TEMPLATE_DIR / language).iterdir()}
        assert names == {
            "title.txt",
            "slack.txt",
            "feishu.md",
            "dingtalk.md",
            "wecom.md",
            "teams.md",
            "webhook.txt",
        }


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_render__zh_notification__chinese_labels_and_title(kind: str) -> None:
    message = transport_for(kind, CONFIGS[kind]).render(sample_notification("zh"))
    assert message.title.startswith("【告警中 1 条】")
    assert "已恢复" in message.text or kind == "teams"
    assert "首 token 延迟" in message.text


def test_render__body_override__used_instead_of_default() -> None:
    transport = transport_for(
        "wecom",
        CONFIGS["wecom"],
        body_template="{% for a in alerts %}{{ a.name }}/{{ a.fingerprint }};{% endfor %}",
        title_template="ALERT {{ title|upper }}",
    )
    message = transport.render(sample_notification())
    assert message.text == "LLMHighTimeToFirstToken/0a1b2c3d4e5f6071;" * 1 + (
        "LLMHighTimeToFirstToken/8192a3b4c5d6e7f8;"
    )
    assert message.title == "ALERT TEST NOTIFICATION: HIGH TIME TO FIRST TOKEN"


def test_render__override_failing_at_render_time__falls_back_to_default() -> None:
    transport = transport_for("slack", CONFIGS["slack"], body_template="{% url 'nowhere' %}")
    message = transport.render(sample_notification())
    assert "LLMHighTimeToFirstToken" in message.text


@pytest.mark.parametrize(
    "text",
    ["{% for a in alerts %}", "{% debug %}", "{% load static %}", "{{ x|nosuchfilter }}"],
)
def test_validate_template__unusable_text__value_error(text: str) -> None:
    with pytest.raises(ValueError, match="invalid notification template: line 1"):
        validate_template(text)
    # Stored anyway (before validation existed): the built-in template is used instead.
    message = transport_for("slack", CONFIGS["slack"], body_template=text).render(
        sample_notification()
    )
    assert "LLMHighTimeToFirstToken" in message.text


def test_validate_template__render_time_failure__value_error() -> None:
    with pytest.raises(ValueError, match="fails to render"):
        validate_template("{{ firing_count / (total - total) }}")


def test_validate_template__good_text__accepted() -> None:
    validate_template("{{ title }}: {{ firing_count }} {% for g in omitted_groups %}x{% endfor %}")


@pytest.mark.parametrize("kind", sorted(CONFIGS))
@pytest.mark.parametrize("language", ["en", "zh"])
def test_render__thousand_alerts_long_chinese_text__within_limits_and_all_counted(
    kind: str, language: str
) -> None:
    alerts = [
        alert(i, name=f"Alert{i % 40}", summary=ZH * 3, description=ZH * 10) for i in range(1000)
    ]
    n = notification(alerts, language=language)
    message = transport_for(kind, CONFIGS[kind]).render(n)
    assert within_platform_limits(kind, message.payload)
    assert message.listed + message.summarised == 1000
    assert str(message.summarised) in message.text


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_render__enormous_group_labels__last_resort_cut_within_limits(kind: str) -> None:
    labels = {f"标签{i}": ZH * 4 for i in range(200)}
    n = notification([alert(1)], group_labels=labels, language="zh")
    message = transport_for(kind, CONFIGS[kind]).render(n)
    assert within_platform_limits(kind, message.payload)


def test_render__omitted_groups_beyond_detail__counted_in_other_line() -> None:
    groups = [
        OmittedGroup(name=f"A{i}", status="firing", count=3, fingerprints=(f"f{i}a", f"f{i}b"))
        for i in range(30)
    ]
    n = notification([alert(1)], omitted=95, omitted_groups=groups)
    message = transport_for("webhook", CONFIGS["webhook"]).render(n)
    assert "95 more alerts not listed" in message.text
    assert "- A0 (FIRING) x3: f0a, f0b +1" in message.text
    assert "A19" in message.text
    assert "A20" not in message.text
    # 30 groups x 3 = 90 in groups, 20 shown (60), so 35 more are in the last line.
    assert "- … 35 more" in message.text


def test_wecom__multibyte_content_over_4096_bytes__truncated_within_limit(
    receiver: Receiver,
) -> None:
    receiver.handler = wecom_endpoint
    transport = transport_for(
        "wecom", {"webhook_url": receiver.url(f"/cgi-bin/webhook/send?key={WECOM_KEY}")}
    )
    labels = {f"标签{i}": ZH * 4 for i in range(60)}
    n = notification([alert(1, summary=ZH)], group_labels=labels, language="zh")
    message = transport.render(n)
    assert message.truncated
    transport.notify(n)  # the fake answers 40058 if over 4096 bytes
    content = receiver.received[0].json()["markdown"]["content"]
    assert len(content.encode("utf-8")) <= MAX_CONTENT_BYTES
    assert "… 还有" in content


def test_truncate_utf8__chinese_lines__whole_lines_and_note() -> None:
    text = "\n".join(f"第{i}行 {ZH}" for i in range(200))
    cut = truncate_utf8(text, 4096, language="zh")
    encoded = cut.encode("utf-8")
    assert len(encoded) <= 4096
    kept, note = cut.rsplit("\n", 1)
    assert text.startswith(kept + "\n")
    dropped = 200 - len(kept.split("\n"))
    assert note == f"… 还有 {dropped} 行"


def test_truncate_utf8__single_long_line__cut_on_character_boundary() -> None:
    text = "🚨" + ZH * 500
    cut = truncate_utf8(text, 4096)
    assert len(cut.encode("utf-8")) <= 4096
    assert cut.endswith("…")
    assert text.startswith(cut[:-1])


@settings(max_examples=300, deadline=None)
@given(text=st.text(min_size=0, max_size=3000), max_bytes=st.integers(0, 5000))
def test_truncate_utf8__any_text__never_over_budget_and_unchanged_when_fits(
    text: str, max_bytes: int
) -> None:
    cut = truncate_utf8(text, max_bytes, language="zh")
    assert len(cut.encode("utf-8")) <= max_bytes
    if len(text.encode("utf-8")) <= max_bytes:
        assert cut == text


@settings(max_examples=200, deadline=None)
@given(text=st.text(min_size=0, max_size=5000), max_chars=st.integers(10, 400))
def test_split_text__any_text__chunks_within_size(text: str, max_chars: int) -> None:
    chunks = split_text(text, max_chars)
    assert all(0 < len(c) <= max_chars for c in chunks)


def test_render__resolved_only__green_and_resolved_title() -> None:
    n = notification([alert(1, status="resolved")])
    message = transport_for("feishu", CONFIGS["feishu"]).render(n)
    assert message.payload["card"]["header"]["template"] == "green"
    assert message.title == "[RESOLVED] HighTTFT"
    assert "lasted 10m" in message.text


def test_render__non_http_alert_url__not_linked() -> None:
    n = notification([replace(alert(1), url="javascript:alert(1)")])
    message = transport_for("dingtalk", CONFIGS["dingtalk"]).render(n)
    assert "javascript:" not in message.text
