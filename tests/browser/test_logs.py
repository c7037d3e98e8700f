"""The Logs page in a real browser: reached from a scale decision on the deployment page
with the deployment's query and range filled in, the histogram and lines, a line's
context, a live tail that shows a line pushed through the Loki push API after it started,
an invalid query's error, accessibility and screenshots."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from apps.accounts.models import Role
from apps.logs.services import ingest_token_create
from apps.logs.storage import log_store
from tests.browser.conftest import axe_serious
from tests.factories.accounts import MembershipFactory
from tests.factories.autoscaling import DecisionRecordFactory
from tests.factories.inventory import DeploymentFactory
from tests.integration.logs.conftest import sql_log_store  # noqa: F401 - empties the store
from tests.integration.logs.pushes import SECOND, no_deployment, stream

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LABELS = {"namespace": "llm", "deployment": "chat", "pod": "chat-0"}


@pytest.fixture
def logged(transactional_db: None, sql_log_store: Any, settings: Any) -> dict[str, Any]:  # noqa: F811
    """Deployment chat of one team with 40 lines in the last 20 minutes (every fifth a
    CUDA error), a scale decision 10 minutes ago, and another team's line."""
    settings.LOGS_TAIL_POLL_S = 0.1
    settings.LOGS_TAIL_HEARTBEAT_S = 1.0
    settings.LOGS_TAIL_MAX_S = 60.0
    chat = DeploymentFactory(name="chat")
    now = time.time_ns()
    lines = [
        (now - (40 - i) * 30 * SECOND, f"{'CUDA out of memory' if i % 5 == 0 else 'step ok'} #{i}")
        for i in range(40)
    ]
    log_store().write(team_id=chat.team_id, streams=[stream(LABELS, *lines)], resolve=no_deployment)
    other = DeploymentFactory(name="chat-elsewhere")
    log_store().write(
        team_id=other.team_id,
        streams=[stream(LABELS, (now - 60 * SECOND, "other team's secret"))],
        resolve=no_deployment,
    )
    at = datetime.now(tz=UTC).replace(microsecond=0) - timedelta(minutes=10)
    decision = DecisionRecordFactory(deployment=chat, at=at)
    viewer = MembershipFactory(team=chat.team, role=Role.VIEWER).user
    return {"chat": chat, "decision": decision, "viewer": viewer}


def test_logs__from_a_decision__search_context_live_tail(
    console_page, logged, live_server, screenshot
):
    chat = logged["chat"]
    page = console_page(logged["viewer"])
    page.goto(f"{live_server.url}/console/deployments/{chat.pk}/")
    page.locator("#decisions").get_by_role("link", name="Logs").first.click()
    page.wait_for_url("**/console/logs/?*")
    assert page.get_by_label("LogQL query").input_value() == (
        '{namespace="llm", deployment="chat"}'
    )
    at = logged["decision"].at
    # A datetime-local input shows whole minutes without their ":00" seconds.
    shown = datetime.fromisoformat(page.get_by_label("From (UTC)").input_value())
    assert shown == (at - timedelta(minutes=15)).replace(tzinfo=None)
    # 20 lines fall in the decision's +-15 minutes (one every 30 s up to now).
    rows = page.locator("#log-lines tbody tr")
    assert 1 <= rows.count() <= 40
    assert "secret" not in page.content()
    page.wait_for_selector('figure[data-chart="log-histogram-data"][data-drawn] canvas')
    assert page.locator("#histogram-total").get_attribute("data-total") == str(rows.count())

    # Search: only the CUDA errors, over the last hour.
    page.get_by_label("LogQL query").fill('{namespace="llm", deployment="chat"} |= "CUDA"')
    page.get_by_label("From (UTC)").fill("")
    page.get_by_label("Until (UTC)").fill("")
    page.get_by_label("Range").select_option("1h")
    page.get_by_role("button", name="Search").click()
    page.wait_for_selector('#histogram-total[data-total="8"]')
    lines = page.locator("#log-lines td.line").all_inner_texts()
    assert lines == [f"CUDA out of memory #{i}" for i in (35, 30, 25, 20, 15, 10, 5, 0)]
    page.wait_for_selector('figure[data-chart="log-histogram-data"][data-drawn] canvas')

    # Context of #20: the lines around it in its stream, the line itself marked.
    page.locator("#log-lines tbody tr", has_text="#20").get_by_role("link", name="Context").click()
    page.wait_for_selector("#context-lines tr.current")
    context = page.locator("#context-lines td.line").all_inner_texts()
    assert context == [f"{'CUDA out of memory' if i % 5 == 0 else 'step ok'} #{i}"
                       for i in range(10, 31)]  # fmt: skip
    assert "#20" in page.locator("#context-lines tr.current").inner_text()
    assert axe_serious(page) == []
    # Loading the context left the histogram drawn once (no redraw on each htmx swap).
    assert page.locator('figure[data-chart="log-histogram-data"] .uplot').count() == 1

    # Live tail: a line pushed through the Loki push API after the tail started.
    page.get_by_role("button", name="Start live tail").click()
    page.wait_for_selector("text=Following new lines")
    secret = ingest_token_create(team=chat.team, name="shipper", actor=None)[1]
    pushed = requests.post(
        f"{live_server.url}/loki/api/v1/push",
        json={"streams": [{"stream": LABELS, "values": [[str(time.time_ns()), "CUDA live #99"]]}]},
        headers={"Authorization": f"Bearer {secret}"},
        timeout=10,
    )
    assert pushed.status_code == 204, pushed.text
    page.wait_for_selector("#tail-lines tbody tr >> text=CUDA live #99")
    assert page.locator("#tail-lines tbody tr").count() == 1
    assert "1 new line" in page.locator("[data-tail-status]").inner_text()
    screenshot(page, "logs")
    page.get_by_role("button", name="Stop live tail").click()
    page.wait_for_selector("text=Stopped after 1 new line.")
    assert page.get_by_role("button", name="Start live tail").get_attribute("aria-pressed") == (
        "false"
    )
    assert axe_serious(page) == []

    # Invalid LogQL: the query's error under the field, with its position.
    page.get_by_label("LogQL query").fill('{namespace="llm"')
    page.get_by_role("button", name="Search").click()
    page.wait_for_selector(".field.invalid .field-error")
    assert page.locator(".field-error").inner_text().startswith("parse error at line 1, col")
    assert axe_serious(page) == []
    page.emulate_media(color_scheme="dark")
    assert axe_serious(page) == []
    screenshot(page, "logs-invalid-query")
