"""The console's Logs page against a real store, on each backend: the search with its
histogram, the metric chart, context lines, the team scoping (a forged team id shows
nothing of that team), invalid LogQL and refused queries as messages, the live tail over
the console's session, and the links from deployments, decisions and alerts."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from apps.logs.links import LINK_MARGIN, console_logs_url, deployment_stream_selector, logs_link
from apps.logs.query import line_hash
from tests.factories.alerts import AlertFactory
from tests.factories.autoscaling import DecisionRecordFactory
from tests.factories.inventory import DeploymentFactory
from tests.integration.logs.pushes import MINUTE, SECOND, T0, no_deployment, stream

pytestmark = pytest.mark.django_db

URL = "/console/logs/"
START = datetime.fromtimestamp((T0 - MINUTE) // SECOND, tz=UTC)
RANGE = {
    "start": START.strftime("%Y-%m-%dT%H:%M:%S"),
    "end": (START + timedelta(minutes=31)).strftime("%Y-%m-%dT%H:%M:%S"),
}


@pytest.fixture
def stored(served_log_store, readers):
    """The team's ``{app="chat"}`` lines (one every 10 s for 10 minutes, every fourth an
    error) and the other team's lines with the same labels and the word "secret"."""
    team, other = readers["team"], readers["other"]
    lines = [
        (T0 + i * 10 * SECOND, f"{'error: CUDA out of memory' if i % 4 == 0 else 'ok'} #{i}")
        for i in range(60)
    ]
    served_log_store.write(
        team_id=team.pk,
        streams=[stream({"app": "chat", "pod": "chat-0"}, *lines)],
        resolve=no_deployment,
    )
    served_log_store.write(
        team_id=other.pk,
        streams=[stream({"app": "chat", "pod": "chat-0"}, (T0, "secret of the other team"))],
        resolve=no_deployment,
    )
    client = Client()
    client.force_login(readers["user"])
    return {**readers, "console": client}


def _get(client, **params):
    response = client.get(URL, {**RANGE, **params})
    assert response.status_code == 200
    return response.content.decode()


def _chart(body: str, element_id: str) -> dict:
    block = re.search(
        rf'<script id="{element_id}-data" type="application/json">(.*?)</script>', body
    )
    assert block, f"no chart {element_id}"
    return json.loads(block.group(1))


def _lines(body: str) -> list[str]:
    return [unescape(m) for m in re.findall(r'<td class="line"><code>(.*?)</code></td>', body)]


def test_logs_page__search__histogram_and_lines_newest_first(stored):
    body = _get(stored["console"], query='{app="chat"} |= "CUDA"', limit=5)
    assert _lines(body) == [f"error: CUDA out of memory #{i}" for i in (56, 52, 48, 44, 40)]
    histogram = _chart(body, "log-histogram")
    assert histogram["bars"] is True
    assert sum(histogram["y"][0]) == 15
    assert 'data-total="15"' in body
    assert "More lines match" in body
    oldest = _get(stored["console"], query='{app="chat"} |= "CUDA"', limit=2, direction="forward")
    assert _lines(oldest) == ["error: CUDA out of memory #0", "error: CUDA out of memory #4"]


def test_logs_page__htmx__the_search_partial(stored):
    response = stored["console"].get(
        URL, {**RANGE, "query": '{app="chat"}'}, headers={"HX-Request": "true"}
    )
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="log-search">')
    assert "<html" not in body
    assert len(_lines(body)) == 60


def test_logs_page__other_team_id__refused_and_never_shown(stored):
    body = _get(stored["console"], query='{app="chat"}', team=stored["other"].pk)
    assert "secret" not in body
    assert "Select a valid choice" in body
    assert _lines(body) == []
    # Without a team: the user's own, never the other team's lines with the same labels.
    own = _get(stored["console"], query='{app="chat"} |= "secret"')
    assert _lines(own) == []
    assert "No line matches in this range." in own


def test_logs_page__invalid_logql__positioned_form_error(stored):
    response = stored["console"].get(URL, {**RANGE, "query": '{app="chat"} |= '})
    assert response.status_code == 200
    body = response.content.decode()
    assert re.search(r'<strong class="field-error">parse error at line 1, col \d+', body)
    assert 'aria-invalid="true"' in body


def test_logs_page__end_before_start__form_error(stored):
    body = _get(stored["console"], query='{app="chat"}', start=RANGE["end"], end=RANGE["start"])
    assert "The end must be after the start." in body
    assert _lines(body) == []


def test_logs_page__metric_query__chart_not_lines(stored):
    body = _get(stored["console"], query='sum(count_over_time({app="chat"} |= "CUDA" [10m]))')
    chart = _chart(body, "log-metric")
    assert chart["labels"] == ["{}"]
    assert max(v for v in chart["y"][0] if v is not None) == 15
    assert _lines(body) == []
    assert "log-histogram" not in body


def test_logs_page__more_than_max_scan__refused_with_advice(stored, monkeypatch):
    from apps.console.views import logs

    monkeypatch.setattr(logs, "MAX_SCAN", 10)
    body = _get(stored["console"], query='{app="chat"} |~ "o+k"')
    assert "The query was refused: the query selects more than 10 lines" in body
    assert "narrow the stream selector" in body


def test_logs_context__lines_of_the_stream_around_a_line(stored):
    body = _get(stored["console"], query='{app="chat"} |= "#30"')
    [url] = re.findall(r'<a href="(/console/logs/context/\?[^"]+)"', body)
    url = unescape(url)
    context = stored["console"].get(url + "&lines=2", headers={"HX-Request": "true"})
    lines = _lines(context.content.decode())
    cuda = "error: CUDA out of memory"
    assert lines == [f"{cuda} #28", "ok #29", "ok #30", "ok #31", f"{cuda} #32"]
    assert '<tr class="current">' in context.content.decode()
    page = stored["console"].get(url).content.decode()
    assert "<h1>Log context</h1>" in page
    assert len(_lines(page)) == 21


def test_logs_context__other_team__nothing_shown(stored):
    params = {
        "stream": "x",
        "timestamp": T0,
        "line_hash": line_hash("secret of the other team"),
    }
    forged = stored["console"].get("/console/logs/context/", {**params, "team": stored["other"].pk})
    assert "secret" not in forged.content.decode()
    assert "Select a valid choice" in forged.content.decode()
    own = stored["console"].get("/console/logs/context/", params).content.decode()
    assert "No such line in your team's logs" in own


def test_live_tail__console_session__reads_own_team_only(stored, served_log_store, settings):
    """The page's tail URL is the REST API's SSE endpoint, which takes the session."""
    settings.LOGS_TAIL_MAX_S = 1.0
    settings.LOGS_TAIL_POLL_S = 0.05
    body = _get(stored["console"], query='{app="chat"} |= "CUDA"')
    [tail_url] = re.findall(r'data-tail-url="([^"]+)"', body)
    tail_url = unescape(tail_url)
    params = parse_qs(urlsplit(tail_url).query)
    assert params["team"] == [str(stored["team"].pk)]
    assert params["query"] == ['{app="chat"} |= "CUDA"']
    # As a browser's EventSource asks: it accepts only text/event-stream.
    response = stored["console"].get(tail_url, headers={"Accept": "text/event-stream"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    assert next(iter(response.streaming_content)).startswith(b"retry: 1000\nevent: open")
    forged = stored["console"].get(
        urlsplit(tail_url).path,
        {"query": '{app="chat"}', "team": stored["other"].pk},
        headers={"Accept": "text/event-stream"},
    )
    assert forged.status_code == 403
    assert "not a member" in forged.json()["detail"]


def _console_params(url: str) -> dict[str, str]:
    parts = urlsplit(unescape(url))
    assert parts.path == URL
    return {k: v[0] for k, v in parse_qs(parts.query).items()}


def test_console_logs_url__same_range_as_the_api_link():
    deployment = DeploymentFactory(prometheus_selector='{namespace="llm", deployment="chat"}')
    at = datetime(2026, 1, 10, 12, 0, 30, tzinfo=UTC)
    until = at + timedelta(minutes=5)
    params = _console_params(console_logs_url(deployment=deployment, at=at, until=until))
    link = logs_link(deployment=deployment, at=at, until=until)
    assert params == {
        "query": '{namespace="llm", deployment="chat"}',
        "team": str(deployment.team_id),
        "start": "2026-01-10T11:45:30",
        "end": "2026-01-10T12:20:30",
    }
    assert datetime.fromisoformat(link["start"]) == at - LINK_MARGIN
    assert datetime.fromisoformat(link["end"]) == until + LINK_MARGIN
    assert _console_params(console_logs_url(deployment=deployment, since="6h"))["since"] == "6h"


def test_links__deployment_decision_and_alert_pages__range_filled(stored):
    team = stored["team"]
    chat = DeploymentFactory(team=team, name="chat")
    at = timezone.now().replace(microsecond=0) - timedelta(hours=1)
    DecisionRecordFactory(deployment=chat, at=at)
    AlertFactory(team=team, deployment=chat, starts_at=at, ends_at=at + timedelta(minutes=5))
    selector = deployment_stream_selector(chat)
    fmt = "%Y-%m-%dT%H:%M:%S"

    body = stored["console"].get(f"/console/deployments/{chat.pk}/", {"range": "6h"})
    page = body.content.decode()
    [own] = re.findall(r'<a href="([^"]+)" id="deployment-logs">', page)
    assert _console_params(own) == {"query": selector, "team": str(team.pk), "since": "6h"}
    links = [_console_params(u) for u in re.findall(r'<a href="(/console/logs/\?[^"]+)">', page)]
    decision_range = {"start": (at - LINK_MARGIN).strftime(fmt), "end": (at + LINK_MARGIN)
                      .strftime(fmt), "query": selector, "team": str(team.pk)}  # fmt: skip
    alert_range = {**decision_range, "end": (at + timedelta(minutes=5) + LINK_MARGIN).strftime(fmt)}
    assert decision_range in links
    assert alert_range in links

    alerts = stored["console"].get("/console/alerts/").content.decode()
    [alert_link] = re.findall(r'<a href="([^"]+)" class="logs-link">', alerts)
    assert _console_params(alert_link) == alert_range
    # The link runs: the page opens on the deployment's query and range.
    opened = stored["console"].get(unescape(alert_link))
    assert opened.status_code == 200
    assert f'value="{alert_range["start"]}"' in opened.content.decode()
