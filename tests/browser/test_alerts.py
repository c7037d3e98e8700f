"""The alerts page in a real browser: alerts in their delivery groups, silencing an alert
from its labels with the preview following the edits, acknowledging, a channel's test
message to a local receiver, accessibility and screenshots."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from apps.accounts.models import Role
from apps.alerts.labels import fingerprint
from apps.alerts.models import Alert, AlertSource, Delivery, DeliveryStatus, Silence
from apps.alerts.services import alert_raise
from tests.browser.conftest import axe_serious
from tests.factories.accounts import MembershipFactory, TeamFactory
from tests.factories.alerts import ChannelFactory, RouteFactory
from tests.factories.inventory import DeploymentFactory
from tests.servers import RecordingServer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def receiver(allow_loopback_outbound: None) -> Iterator[RecordingServer]:
    """The channel's webhook receiver, on 127.0.0.1 (allowed for this test only)."""
    server = RecordingServer()
    yield server
    server.stop()


def _raise(team: Any, **labels: str) -> Alert:
    labels = {"severity": "warning", **labels}
    alert_raise(labels=labels, annotations={"summary": f"{labels['alertname']} on "
                f"{labels['deployment']}"}, source=AlertSource.API, team=team)  # fmt: skip
    return Alert.objects.get(team=team, fingerprint=fingerprint(labels))


@pytest.fixture
def alerting(transactional_db: None, receiver: RecordingServer) -> dict[str, Any]:
    """Three firing alerts of one team, routed to a webhook channel grouped by alert name."""
    team = TeamFactory(slug="llm")
    for name in ("chat-a", "chat-b"):
        DeploymentFactory(team=team, name=name)
    channel = ChannelFactory(team=team, name="oncall", webhook_url=receiver.url + "/hook")
    RouteFactory(team=team, name="default", channels=[channel])
    return {
        "queue-a": _raise(team, alertname="HighQueue", deployment="chat-a"),
        "queue-b": _raise(team, alertname="HighQueue", deployment="chat-b"),
        "ttft-a": _raise(team, alertname="SlowTTFT", deployment="chat-a"),
        "channel": channel,
        "operator": MembershipFactory(team=team, role=Role.OPERATOR).user,
    }


def test_alerts__silence_from_labels_acknowledge_test_message(
    console_page, alerting, receiver, screenshot
):
    page = console_page(alerting["operator"])
    page.get_by_role("link", name="Alerts", exact=True).click()
    page.wait_for_url("**/console/alerts/")
    groups = page.locator("#alert-groups h3")
    assert sorted(groups.all_inner_texts()) == ['alertname="HighQueue"', 'alertname="SlowTTFT"']
    assert "Route default → oncall" in page.locator("#alert-groups").inner_text()

    queue_a, queue_b = alerting["queue-a"], alerting["queue-b"]
    page.locator(f"#alert-{queue_a.pk}").get_by_role("link", name="Silence…").click()
    page.wait_for_url(f"**/console/alerts/{queue_a.pk}/silence/")
    assert page.get_by_label("Value of matcher 2").input_value() == "chat-a"
    page.wait_for_selector('#silence-preview [data-matched="1"]')
    # deployment="chat-a" becomes deployment=~"chat-.*": the preview follows as one types.
    page.get_by_label("Operator of matcher 2").select_option("=~")
    page.get_by_label("Value of matcher 2").fill("chat-.*")
    page.wait_for_selector('#silence-preview [data-matched="2"]')
    previewed = page.locator("#preview-alerts tbody").inner_text()
    assert "chat-a" in previewed
    assert "chat-b" in previewed
    assert "SlowTTFT" not in previewed
    # A bad pattern is explained in the preview; fixing it brings the matches back.
    page.get_by_label("Value of matcher 2").fill("chat-(")
    page.wait_for_selector("#silence-preview .errors")
    assert "invalid regular expression" in page.locator("#silence-preview").inner_text()
    page.get_by_label("Value of matcher 2").fill("chat-.*")
    page.wait_for_selector('#silence-preview [data-matched="2"]')
    page.get_by_label("Comment").fill("rolling out chat")
    assert axe_serious(page) == []
    screenshot(page, "alert-silence")
    page.get_by_role("button", name="Create silence").click()

    page.wait_for_url("**/console/alerts/#silence-*")
    silence = Silence.objects.get()
    assert {"name": "deployment", "op": "=~", "value": "chat-.*"} in silence.matchers
    row = page.locator(f"#silence-{silence.pk}")
    assert "rolling out chat" in row.inner_text()
    assert "active" in row.inner_text()
    for alert in (queue_a, queue_b):
        assert f"silenced by {silence.pk}" in page.locator(f"#alert-{alert.pk}").inner_text()
    assert "silenced" not in page.locator(f"#alert-{alerting['ttft-a'].pk}").inner_text()

    ttft = page.locator(f"#alert-{alerting['ttft-a'].pk}")
    ttft.get_by_label("Comment on acknowledging SlowTTFT").fill("on it")
    ttft.get_by_role("button", name="Acknowledge").click()
    page.wait_for_selector("text=SlowTTFT acknowledged; recorded in the audit log.")
    ttft = page.locator(f"#alert-{alerting['ttft-a'].pk}")
    assert "acknowledged by" in ttft.inner_text()
    assert Alert.objects.get(pk=alerting["ttft-a"].pk).ack_comment == "on it"

    page.get_by_role("button", name="Send test message to oncall").click()
    page.wait_for_selector("text=Test message sent to oncall (HTTP 200).")
    assert receiver.hits == ["/hook"]
    delivery = Delivery.objects.get(channel=alerting["channel"])
    assert delivery.status == DeliveryStatus.SUCCEEDED
    channel_table = page.locator(f"#channel-{alerting['channel'].pk}")
    assert "test message" in channel_table.inner_text()
    assert "Succeeded" in channel_table.inner_text()
    assert axe_serious(page) == []
    screenshot(page, "alerts")
    page.emulate_media(color_scheme="dark")
    assert axe_serious(page) == []
