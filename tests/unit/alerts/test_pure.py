"""Fingerprints, matchers, Alertmanager payload mapping and group timing: pure functions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.alerts import grouping
from apps.alerts.labels import MatcherError, fingerprint, matchers_match, matchers_parse
from apps.alerts.payloads import PayloadError, parse_alertmanager

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_fingerprint__label_sets__fnv1a_as_prometheus_and_order_independent():
    # FNV-1a 64 of the empty input is the offset basis.
    assert fingerprint({}) == "cbf29ce484222325"
    a = fingerprint({"alertname": "HighTTFT", "deployment": "chat"})
    assert a == fingerprint({"deployment": "chat", "alertname": "HighTTFT"})
    assert a != fingerprint({"alertname": "HighTTFT", "deployment": "chat2"})
    # The separator keeps name/value boundaries apart.
    assert fingerprint({"ab": "c"}) != fingerprint({"a": "bc"})
    assert len(a) == 16


# Label sets posted to a real Alertmanager (0.25.0, Debian prometheus-alertmanager
# 0.25.0-1+b4) through POST /api/v2/alerts, with the fingerprints GET /api/v2/alerts
# returned for them. A change of hash (FNV-1 for FNV-1a), separator, byte encoding or
# label order makes every one of these differ.
ALERTMANAGER_FINGERPRINTS = [
    ({"alertname": "Watchdog"}, "003b0a0f7d3fa569"),
    (
        {"alertname": "GPUHot", "gpu": "0", "instance": "10.0.0.7:9400", "job": "dcgm"},
        "01f07523dc91a715",
    ),
    (
        {"alertname": "HighLatency", "deployment": "llama-3-8b", "severity": "critical"},
        "1999fac594266cc5",
    ),
    (
        {"alertname": "Punct", "matcher": 'a="b",c!~"d|e"', "path": "/v1/chat/completions?x=1&y=2"},
        "42a4a605bff13342",
    ),
    ({"alertname": "Unicode", "summary": "température élevée — 東京"}, "7c7e24a576cda6c6"),
    ({"b": "1", "a": "2", "aa": "3", "alertname": "Order"}, "c52577a51e0b3aeb"),
    (
        {"alertname": "SLOBurnRate", "team": "ml", "slo": "availability", "window": "1h"},
        "f9e59cbdef645763",
    ),
]


@pytest.mark.parametrize(("labels", "expected"), ALERTMANAGER_FINGERPRINTS)
def test_fingerprint__label_sets__equal_to_alertmanager_recorded(labels, expected):
    assert fingerprint(labels) == expected


@pytest.mark.parametrize(
    ("spec", "labels", "expected"),
    [
        ('{severity="critical"}', {"severity": "critical"}, True),
        ('{severity!="critical"}', {"severity": "critical"}, False),
        ('{deployment=~"chat-.*"}', {"deployment": "chat-1"}, True),
        ('{deployment=~"chat"}', {"deployment": "chat-1"}, False),  # anchored
        ('{deployment!~"chat-.*"}', {"deployment": "embed"}, True),
        ('{team=""}', {"severity": "x"}, True),  # absent label is ""
        ([{"name": "a", "value": "x.*", "isRegex": True}], {"a": "xyz"}, True),
        ([{"name": "a", "value": "x", "isEqual": False}], {"a": "x"}, False),
        ([{"name": "a", "op": "!=", "value": "x"}], {"a": "y"}, True),
    ],
)
def test_matchers__each_operator__alertmanager_semantics(spec, labels, expected):
    assert matchers_match(matchers_parse(spec), labels) is expected


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ('{a=~"("}', "invalid regular expression"),
        ('{a=="x"}', "quoted value"),
        ([{"name": "a", "op": "<>", "value": "x"}], "op must be one of"),
        ([{"value": "x"}], "'name' is required"),
        (5, "selector string or a list"),
    ],
)
def test_matchers__malformed__error_names_problem(spec, fragment):
    with pytest.raises(MatcherError, match=fragment):
        matchers_parse(spec)


def _payload(**over):
    body = {
        "version": "4",
        "groupKey": '{}:{alertname="X"}',
        "status": "firing",
        "receiver": "controlplane",
        "groupLabels": {"alertname": "X"},
        "externalURL": "http://127.0.0.1:9093",
        "truncatedAlerts": 0,
        "somethingNew": {"ignored": True},
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "X", "deployment": "chat"},
                "annotations": {"summary": "s"},
                "startsAt": "2026-11-23T11:59:00.123456789Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prom/graph",
                "fingerprint": "ignored-ours-is-computed",
                "extra": 1,
            }
        ],
    }
    body.update(over)
    return body


def test_parse_alertmanager__v4_with_unknown_fields__mapped_with_nanoseconds_and_zero_end():
    payload = parse_alertmanager(_payload(), now=NOW)
    (alert,) = payload.alerts
    assert alert.labels == {"alertname": "X", "deployment": "chat"}
    assert alert.starts_at == datetime(2026, 11, 23, 11, 59, 0, 123456, tzinfo=UTC)
    assert alert.ends_at is None
    assert alert.fingerprint == fingerprint(alert.labels)
    assert payload.group_labels == {"alertname": "X"}


@pytest.mark.parametrize(
    ("over", "fragment"),
    [
        ({"version": "3"}, "version"),
        ({"alerts": "nope"}, "alerts: expected a list"),
        ({"alerts": [{"labels": {}}]}, "alerts[0].labels: an alert needs at least one label"),
        ({"alerts": [{"labels": {"a": 1}}]}, "alerts[0].labels.a"),
        ({"alerts": [{"labels": {"a": "b"}, "status": "weird"}]}, "alerts[0].status"),
        ({"alerts": [{"labels": {"a": "b"}, "startsAt": "yesterday"}]}, "alerts[0].startsAt"),
        ({"truncatedAlerts": -1}, "truncatedAlerts"),
    ],
)
def test_parse_alertmanager__malformed__payload_error_with_path(over, fragment):
    with pytest.raises(PayloadError) as info:
        parse_alertmanager(_payload(**over), now=NOW)
    assert fragment in str(info.value)


def test_parse_alertmanager__not_an_object__payload_error():
    with pytest.raises(PayloadError, match="JSON object"):
        parse_alertmanager([1, 2], now=NOW)


T = grouping.Timers(30, 300, 3600)


def _look(**kw):
    base = dict(
        firing=frozenset(),
        resolved=frozenset(),
        last_firing=None,
        last_resolved=frozenset(),
        last_notified_s=None,
        now_s=10_000.0,
        timers=T,
    )
    base.update(kw)
    return grouping.needs_update(**base)


def test_needs_update__alertmanager_cases__as_documented():
    a, b = "a", "b"
    assert _look(firing=frozenset({a})).send
    assert not _look().send
    # Nothing new: no resend before the repeat interval.
    same = dict(firing=frozenset({a}), last_firing=frozenset({a}), last_notified_s=9_000.0)
    assert not _look(**same).send
    assert _look(**{**same, "last_notified_s": 6_000.0}).send
    assert not _look(**{**same, "last_notified_s": 6_000.0}, all_acknowledged=True).send
    # A new alert fires.
    assert _look(firing=frozenset({a, b}), last_firing=frozenset({a}), last_notified_s=9_900.0).send
    # One of two resolved.
    assert _look(
        firing=frozenset({a}),
        resolved=frozenset({b}),
        last_firing=frozenset({a, b}),
        last_notified_s=9_900.0,
    ).send
    assert not _look(
        firing=frozenset({a}),
        resolved=frozenset({b}),
        last_firing=frozenset({a, b}),
        last_notified_s=9_900.0,
        send_resolved=False,
    ).send
    # All resolved.
    assert _look(resolved=frozenset({a}), last_firing=frozenset({a}), last_notified_s=9_900.0).send
    # Resolved before anything was notified: nothing to say.
    assert not _look(resolved=frozenset({a})).send


def test_needs_update__resolved_compared_as_sets_not_counts():
    # Last time: a and c fired, b was resolved. Now c has resolved and b has aged out of the
    # resolved list: as many resolved alerts as before, but one of them is new.
    swapped = _look(
        firing=frozenset({"a"}),
        resolved=frozenset({"c"}),
        last_firing=frozenset({"a", "c"}),
        last_resolved=frozenset({"b"}),
        last_notified_s=9_900.0,
    )
    assert swapped.send
    assert swapped.reason == "1 newly resolved"
    # Fewer resolved than last time (d aged out) and none new: nothing to say.
    shrunk = _look(
        firing=frozenset({"a"}),
        resolved=frozenset({"b"}),
        last_firing=frozenset({"a"}),
        last_resolved=frozenset({"b", "d"}),
        last_notified_s=9_900.0,
    )
    assert not shrunk.send
    assert shrunk.reason == "no change"


@given(
    firing=st.frozensets(st.sampled_from("abcdef")),
    last=st.frozensets(st.sampled_from("abcdef")),
    ago=st.floats(0, 10_000),
)
def test_needs_update__new_firing_alert__always_notified(firing, last, ago):
    flush = _look(firing=firing, last_firing=last, last_notified_s=10_000.0 - ago)
    if firing - last:
        assert flush.send


def test_group_key__group_by_and_all_labels():
    labels = {"alertname": "X", "deployment": "chat", "pod": "p1"}
    assert grouping.group_key(["deployment", "alertname"], labels) == {
        "alertname": "X",
        "deployment": "chat",
    }
    assert grouping.group_key(["cluster"], labels) == {"cluster": ""}
    assert grouping.group_key(["..."], labels) == labels
    with pytest.raises(ValueError, match="group_interval"):
        grouping.Timers(30, 0, 10)
