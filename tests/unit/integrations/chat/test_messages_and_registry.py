"""The Notification data model, the registry of kinds and config validation."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from apps.integrations.chat import (
    TRANSPORTS,
    AlertItem,
    Notification,
    OmittedGroup,
    sample_notification,
    transport_for,
    validate_config,
)
from apps.integrations.chat.ratelimit import RateWindow

from .conftest import T0, alert, notification


def test_notification__to_dict_through_json__round_trips() -> None:
    n = notification(
        [alert(1), alert(2, status="resolved", description="d")],
        omitted=4,
        omitted_groups=[OmittedGroup(name="X", status="firing", count=3, fingerprints=("a",))],
        language="zh",
    )
    assert Notification.from_dict(json.loads(json.dumps(n.to_dict()))) == n


def test_notification__listing__folds_the_rest_without_loss() -> None:
    n = notification([alert(i, name=f"N{i % 2}") for i in range(6)])
    shown = n.listing(2)
    assert [a.fingerprint for a in shown.alerts] == ["fp000000", "fp000001"]
    assert shown.omitted == 4
    assert {(g.name, g.count) for g in shown.omitted_groups} == {("N0", 2), ("N1", 2)}
    assert shown.total == n.total == 6


def test_notification__status_from_choices_string__normalised() -> None:
    class Status(str):
        pass

    n = notification([alert(1)], title="t")
    assert Notification(**{**n.__dict__, "status": Status("firing")}).status == "firing"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"status": "pending"}, "status must be"),
        ({"language": "fr"}, "language must be"),
        ({"firing_count": -1}, "negative"),
        (
            {"omitted": 1, "omitted_groups": [OmittedGroup(name="x", status="firing", count=2)]},
            "less than",
        ),
    ],
)
def test_notification__invalid_fields__value_error(changes: dict, message: str) -> None:
    base = notification([alert(1)]).__dict__
    with pytest.raises(ValueError, match=message):
        Notification(**{**base, **changes})


def test_alert_item__naive_datetime__value_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        AlertItem(labels={}, status="firing", starts_at=datetime(2026, 1, 1))


def test_alert_item__no_alertname__named_alert() -> None:
    assert AlertItem(labels={}, status="firing", starts_at=T0).name == "alert"


def test_omitted_group__more_fingerprints_than_count__value_error() -> None:
    with pytest.raises(ValueError, match="fingerprints"):
        OmittedGroup(name="x", status="firing", count=1, fingerprints=("a", "b"))


def test_sample_notification__both_languages__two_alerts_mixed_status() -> None:
    for language in ("en", "zh"):
        n = sample_notification(language)  # type: ignore[arg-type]
        assert n.language == language
        assert {a.status for a in n.alerts} == {"firing", "resolved"}


def test_transports__registry__all_six_kinds() -> None:
    assert set(TRANSPORTS) == {"slack", "feishu", "dingtalk", "wecom", "teams", "webhook"}
    assert all(cls.kind == kind for kind, cls in TRANSPORTS.items())


def test_transport_for__unknown_kind__value_error_lists_kinds() -> None:
    with pytest.raises(ValueError, match=r"unknown notification channel kind 'email'.*slack"):
        transport_for("email", {"webhook_url": "https://x.example"})


@pytest.mark.parametrize(
    ("kind", "config", "message"),
    [
        ("slack", {}, "webhook_url is required"),
        ("slack", {"webhook_url": "ftp://hooks.slack.com/x"}, "http:// or https://"),
        ("slack", {"webhook_url": "hooks.slack.com/services/x"}, "http:// or https://"),
        ("slack", {"webhook_url": "https://hooks.slack.com/x", "secret": "s"}, "not signed"),
        ("slack", {"webhook_url": "https://hooks.slack.com/x", "channel": "#a"}, "unknown Slack"),
        ("teams", {"webhook_url": "https://a.logic.azure.com/x", "secret": "s"}, "not signed"),
        ("wecom", {"webhook_url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"}, "key="),
        ("dingtalk", {"webhook_url": "https://oapi.dingtalk.com/robot/send"}, "access_token="),
        (
            "dingtalk",
            {"webhook_url": "https://oapi.dingtalk.com/robot/send?access_token=a", "secret": "x"},
            "starts with 'SEC'",
        ),
        ("feishu", {"webhook_url": "https://open.feishu.cn/x", "secret": 5}, "must be a string"),
        ("webhook", {"webhook_url": "https://h.example/x"}, "secret is required"),
        (
            "webhook",
            {"webhook_url": "https://h.example/x", "secret": "s", "max_per_minute": 0},
            "between 1 and",
        ),
        (
            "webhook",
            {"webhook_url": "https://h.example/x", "secret": "s", "max_per_minute": "9"},
            "whole number",
        ),
    ],
)
def test_validate_config__bad_config__clear_value_error(
    kind: str, config: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        validate_config(kind, config)


def test_validate_config__feishu_without_secret__accepted_and_normalised() -> None:
    assert validate_config(
        "feishu", {"webhook_url": " https://open.feishu.cn/x ", "secret": ""}
    ) == {"webhook_url": "https://open.feishu.cn/x"}


def test_webhook__max_per_minute__becomes_its_rate_limit() -> None:
    transport = transport_for(
        "webhook", {"webhook_url": "https://h.example/x", "secret": "s", "max_per_minute": 6}
    )
    assert transport.rate_limits() == (RateWindow(60, 6),)


def test_transport__repr__hides_the_credential_in_the_url() -> None:
    transport = transport_for("slack", {"webhook_url": "https://hooks.slack.com/services/T/B/tok"})
    assert "tok" not in repr(transport)
    assert "hooks.slack.com" in repr(transport)
