"""The load test end to end, as the product runs it: ``manage.py loadtest`` and the service
behind the API drive the real engine against a fleet simulator replica over HTTP, store the
run, feed the go-live checks, hand the stress test's capacity to the scaling policy, and
connect only where the outbound address check allows."""

from __future__ import annotations

from collections.abc import Iterator

import aiohttp
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.autoscaling.models import AutoscalingPolicy
from apps.fleetsim.fleet import Fleet, SimulatedDeployment
from apps.fleetsim.replica_http import ReplicaHTTPServer
from apps.golive import services
from apps.golive.models import CheckResult, LoadTestRun
from apps.golive.outbound import checked_session_factory
from tests.factories.autoscaling import AutoscalingPolicyFactory
from tests.factories.inventory import LLMModelFactory, SimulatedDeploymentFactory
from tests.servers import run_coroutine

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

MODEL = "llama-3.1-8b"
SPEED = 20.0  # simulated seconds per wall second: SLOs below are divided by it


@pytest.fixture
def replica_url() -> Iterator[str]:
    fleet = Fleet([SimulatedDeployment("chat", MODEL, "llm", "H100-80GB", 1, ())])
    server = ReplicaHTTPServer(fleet, tick_s=0.01)
    server.start()
    fleet.run_realtime(speed=SPEED)
    try:
        yield f"http://127.0.0.1:{server.endpoints()[0]['port']}"
    finally:
        fleet.stop()
        server.stop()


@pytest.fixture
def deployment(roster, replica_url, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    model = LLMModelFactory(team=roster.team, name=MODEL)
    return SimulatedDeploymentFactory(
        team=roster.team, name="chat", model=model, endpoint_url=f"{replica_url}/v1"
    )


def test_loadtest_command__functional__stored_passed_and_checked(deployment, capsys) -> None:
    call_command("loadtest", f"{deployment.team.slug}/{deployment.name}", "--mode", "functional")
    run = LoadTestRun.objects.get(deployment=deployment)
    assert (run.status, run.passed) == ("done", True), run.error
    checks = run.result["functional"]
    assert checks
    assert all(check["passed"] for check in checks), checks
    assert {"models-listed", "stream-framing"} <= {check["name"] for check in checks}
    assert CheckResult.objects.filter(
        deployment=deployment, key="tests.functional", status="pass"
    ).exists()
    assert "status done, passed True" in capsys.readouterr().out


def test_loadtest_command__other_model_in_inventory__fails(deployment) -> None:
    deployment.model = LLMModelFactory(team=deployment.team, name="org/another-model")
    deployment.save()
    with pytest.raises(CommandError, match="did not pass"):
        call_command("loadtest", str(deployment.pk), "--mode", "functional")
    run = LoadTestRun.objects.get(deployment=deployment)
    assert (run.status, run.passed) == ("done", False)
    assert CheckResult.objects.get(deployment=deployment, key="tests.functional").status == "fail"


def test_loadtest_stress__capacity_stored_and_applied_to_the_policy(deployment) -> None:
    AutoscalingPolicyFactory(deployment=deployment)
    run = services.loadtest_create(
        deployment=deployment,
        params={
            "mode": "stress",
            "rate_rps": 2.0,
            "rate_factor": 2.0,
            "duration_s": 2.0,
            "max_rate_rps": 200.0,
            "max_total_s": 40.0,
            # Generous objectives (10 s and 1 s simulated): the first steps meet them even
            # on a loaded machine, which is all this test needs (the capacity's accuracy
            # is test_loadtest_capacity's).
            "slo_ttft_s": 10.0 / SPEED,
            "slo_itl_s": 1.0 / SPEED,
            "workload_preset": "chat",
            "max_prompt_tokens": 1000,
            "request_timeout_s": 10.0,
        },
        confirm_production=False,
        actor=None,
    )
    done = services.loadtest_execute(run_id=run.pk)
    assert done is not None
    assert done.status == "done", done.error
    assert done.capacity_rps_per_replica is not None
    assert done.capacity_rps_per_replica >= 2.0
    steps = done.result["steps"]
    assert steps[0]["slo_met"], steps
    policy = services.capacity_apply(run=done, actor=None)
    assert policy.capacity_initial_per_replica == pytest.approx(done.capacity_rps_per_replica)
    assert AutoscalingPolicy.objects.get(pk=policy.pk).capacity_initial_per_replica == (
        pytest.approx(done.capacity_rps_per_replica)
    )


def _models_status(url: str) -> int:
    async def fetch() -> int:
        async with checked_session_factory(4)() as session, session.get(url) as response:
            return response.status

    return run_coroutine(fetch())


def test_engine_connections__name_resolving_to_loopback__refused_unless_allowed(
    replica_url, settings
) -> None:
    """The engine's session checks the addresses a name resolves to when it connects, not
    only when the run was queued: "localhost" is loopback, refused unless allowed."""
    url = replica_url.replace("127.0.0.1", "localhost") + "/v1/models"
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    with pytest.raises(aiohttp.ClientConnectorError) as refused:
        _models_status(url)
    assert "localhost resolves to 127.0.0.1, a loopback address" in str(refused.value.os_error)
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]
    assert _models_status(url) == 200


def test_loadtest_run__endpoint_no_longer_allowed__failed_without_traffic(
    deployment, settings
) -> None:
    run = services.loadtest_create(
        deployment=deployment, params={"mode": "functional"}, confirm_production=False, actor=None
    )
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    done = services.loadtest_execute(run_id=run.pk)
    assert done is not None
    assert done.status == "failed"
    assert "loopback" in done.error
