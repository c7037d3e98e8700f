"""The console's template helpers that write HTML themselves (the chart component and the
overview's rows): every value escaped, the chart's JSON unable to close its script."""

from __future__ import annotations

import json
import re

from apps.console.selectors import DeploymentRef, OverviewRow, chart_data
from apps.console.templatetags.console import chart, overview_rows

HOSTILE = '<img src=x onerror="alert(1)">&\'</script>'


def _json_block(html: str, element_id: str) -> object:
    match = re.search(
        rf'<script id="{element_id}" type="application/json">(.*?)</script>', html, re.S
    )
    assert match, html
    return json.loads(match.group(1))


def test_chart__hostile_title_and_labels__escaped_and_json_intact():
    data = chart_data(series={HOSTILE: [(1.0, 2.0), (2.0, 3.0)]})
    html = chart("c", data, title=HOSTILE, key=7)
    assert "<img" not in html
    assert "</script>'" not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;&#x27;&lt;/script&gt;" in html
    assert _json_block(html, "c-7-data") == data  # the JSON reads back as written
    assert 'data-points="2"' in html


def test_overview_rows__hostile_names__escaped():
    row = OverviewRow(
        deployment=DeploymentRef(
            pk=3, name=HOSTILE, status="active", framework="vllm",
            team_slug=HOSTILE, cluster_name=None,
        ),
        ready=1, starting=0, desired=2, queue=4.0, kv_cache=0.5, ttft_p95=0.9,
        ttft_objective=0.5, budget_left=-0.5, firing_alerts=2, paused=True, pinned=3,
        sparkline=chart_data(series={"replicas": [(1.0, 1.0)]}),
    )  # fmt: skip
    html = overview_rows([row])
    assert "<img" not in html
    assert html.count("&lt;img src=x") == 2  # name and team
    assert '<a href="/console/deployments/3/">' in html
    assert 'data-field="replicas">1 / 0 / 2<' in html
    assert '<td class="num bad">900 ms / 500 ms' in html  # over the objective, marked
    assert '<td class="num bad">exhausted (overspent 0.5x)</td>' in html  # budget overspent
    assert "paused</span>" in html
    assert "pinned 3</span>" in html
    assert "vLLM \u00b7 \u2013" in html  # no cluster: a dash
    assert _json_block(html, "spark-3-data") == row.sparkline
