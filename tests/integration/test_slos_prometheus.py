"""SLO evaluation end to end: the fleet simulator, a real Prometheus, the control plane.

Windows are compressed 1440x (one day of a 30-day SLO becomes one minute; short windows
floor at 30 s) so that burns and recoveries happen within a test.
"""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
import requests

from apps.devstack.prometheus import EmbeddedPrometheus, ScrapeTarget
from apps.fleetsim.exposition import serve
from apps.fleetsim.fleet import Fleet
from apps.slos.models import SloEvent, SloState, SloStatus
from apps.slos.rules import rule_file, slo_rule_groups
from apps.slos.services import slos_evaluate, slos_evaluate_all
from tests.factories.inventory import SimulatedDeploymentFactory
from tests.factories.slos import SloFactory
from tests.integration.fleets import steady_deployment
from tests.servers import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

COMPRESSION = 1440
THRESHOLD = 2.5
OBJECTIVE = 0.99
# How long a test waits for something to happen before it gives up (not a timing claim).
WAIT_S = 180.0


def _ttft_slo(deployment, *, min_requests: int):
    return SloFactory(
        deployment=deployment,
        name=f"{deployment.name}-ttft",
        threshold_seconds=THRESHOLD,
        objective_percent=Decimal("99"),
        window="30d",
        min_requests=min_requests,
    )


@pytest.fixture
def stack(prometheus_binary, settings, tmp_path):
    fleet = Fleet(
        [
            steady_deployment("chat", "llama", "A100-80GB", replicas=2, rate=6.0, seed=3),
            steady_deployment("quiet", "llama", "A100-80GB", replicas=1, rate=0.1, seed=4),
        ]
    )
    server, port = serve(fleet)
    fleet.run_realtime()
    chat = SimulatedDeploymentFactory(
        name="chat",
    )
    quiet = SimulatedDeploymentFactory(
        team=chat.team,
        name="quiet",
    )
    slo_chat = _ttft_slo(chat, min_requests=20)
    slo_quiet = _ttft_slo(quiet, min_requests=200)
    prom = EmbeddedPrometheus(
        targets=[ScrapeTarget("fleetsim", f"127.0.0.1:{port}", 1)], binary=prometheus_binary
    )
    prom.start()
    settings.PROMETHEUS_URL = prom.url
    settings.SLO_WINDOW_COMPRESSION = COMPRESSION
    try:
        yield fleet, prom, slo_chat, slo_quiet
    finally:
        prom.cleanup()
        fleet.stop()
        server.stop()


def _state(slo) -> SloStatus:
    return SloStatus.objects.get(slo=slo)


def _raw_burn(prom_url: str, deployment: str, window_s: int, at: float) -> float:
    """Burn rate from the raw counter samples in the window (last minus first, per series),
    computed here without any of the control plane's queries."""

    def delta(selector: str) -> float:
        body = requests.get(
            f"{prom_url}/api/v1/query",
            params={"query": f"{selector}[{window_s}s]", "time": f"{at:.3f}"},
            timeout=5,
        ).json()
        return sum(
            float(r["values"][-1][1]) - float(r["values"][0][1]) for r in body["data"]["result"]
        )

    sel = f'deployment="{deployment}"'
    d_good = delta(f'vllm:time_to_first_token_seconds_bucket{{{sel},le="2.5"}}')
    d_total = delta(f"vllm:time_to_first_token_seconds_count{{{sel}}}")
    return (1 - d_good / d_total) / (1 - OBJECTIVE)


def test_slo__latency_regression__pages_then_resolves__quiet_deployment_never_pages(stack):
    fleet, prom, slo_chat, slo_quiet = stack
    time.sleep(20)  # healthy traffic first
    slos_evaluate_all()
    assert _state(slo_chat).state == SloState.OK, _state(slo_chat).reason

    for dep in fleet.deployments:
        dep.inject_latency(5.0)  # every first token now takes over 5 s
    quiet_states = set()

    def evaluated(predicate):
        def look():
            slos_evaluate_all()
            quiet_states.add(_state(slo_quiet).state)
            return predicate()

        return look

    # The 6x condition may page first; the fast-burn one follows as bad requests pile up.
    # (The timeouts only stop a broken run; how fast the burn shows is for the benchmarks.)
    wait_for(
        evaluated(lambda: "page:1h/5m" in _state(slo_chat).firing),
        WAIT_S,
        "the chat SLO pages on the fast burn",
        interval_s=1.0,
    )
    status = _state(slo_chat)
    assert status.state == SloState.PAGE
    assert SloEvent.objects.filter(slo=slo_chat, to_state=SloState.PAGE).exists()

    # Burn rates agree with ones computed from raw counters at the same instant.
    at = time.time() - 1
    [result] = [r for r in slos_evaluate(slos=[slo_chat], at=at)]
    expected = _raw_burn(prom.url, "chat", status.windows["5m"], at)
    assert result.evaluation is not None
    assert result.evaluation.burn_rates["5m"] == pytest.approx(expected, rel=0.1, abs=0.5)

    # The quiet deployment burns as hard, on a few requests: keep the regression on until its
    # burn shows, and check the minimum-traffic guard holds it back from paging.
    wait_for(
        evaluated(lambda: _state(slo_quiet).state == SloState.LOW_TRAFFIC),
        WAIT_S,
        "the quiet SLO's burn shows and is held back by the traffic guard",
        interval_s=1.0,
    )
    assert (_state(slo_quiet).burn_rates["5m"] or 0) >= 14.4
    assert "minimum 200" in _state(slo_quiet).reason

    for dep in fleet.deployments:
        dep.inject_latency(0.0)
    wait_for(
        evaluated(lambda: _state(slo_chat).state != SloState.PAGE),
        WAIT_S,
        "the chat SLO stops paging once latency is back",
        interval_s=1.0,
    )
    assert SloEvent.objects.filter(slo=slo_chat, from_state=SloState.PAGE).exists()
    assert SloState.PAGE not in quiet_states


def test_slo__exported_recording_rules__match_control_plane_evaluation(stack, tmp_path):
    fleet, prom, slo_chat, _ = stack
    fleet.get("llm", "chat").inject_latency(3.0)  # some bad requests, so ratios are not 0
    groups = slo_rule_groups(slo_chat, [slo_chat.deployment], compression=COMPRESSION)
    path = tmp_path / "slo-rules.yml"
    path.write_text(rule_file(groups))
    prom.rule_files = [path]
    prom.reload()
    time.sleep(25)
    fleet.get("llm", "chat").inject_latency(0.0)
    time.sleep(8)

    def query(expr: str, at: float | None = None):
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        body = requests.get(f"{prom.url}/api/v1/query", params=params, timeout=5).json()
        return body["data"]["result"]

    selector = 'llmcp_slo:error_ratio{slo=~".*/chat-ttft"}'
    # An instant answer is stamped with the query time; timestamp() gives the time at which
    # the rule group actually evaluated, which is when our own evaluation must run too.
    # Prometheus starts a reloaded group at a hashed offset within its 30 s interval, so the
    # first evaluation can come later than the waits above on a busy machine: wait for it.
    stamped = wait_for(
        lambda: query(f"timestamp({selector})"),
        WAIT_S,
        "Prometheus evaluates the recording rules",
        interval_s=1.0,
    )
    rule_time = max(float(r["value"][1]) for r in stamped)
    recorded = query(selector, at=rule_time)
    assert {r["metric"]["window"] for r in recorded} >= {"5m", "1h", "period"}
    [result] = slos_evaluate(slos=[slo_chat], at=rule_time)
    assert result.evaluation is not None
    compared = 0
    for row in recorded:
        window = row["metric"]["window"]
        ratio = float(row["value"][1])
        rate = result.evaluation.burn_rates.get(window)
        if rate is None or ratio != ratio:
            continue
        assert rate * (1 - OBJECTIVE) == pytest.approx(ratio, abs=0.02), window
        compared += 1
    assert compared >= 3
    alerts = query("ALERTS")
    assert all(a["metric"]["alertname"].startswith("SLOBurnRate") for a in alerts)
