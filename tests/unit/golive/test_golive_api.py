"""The go-live API: the gate on activation and enforce mode, overrides, stages, artifacts,
load tests (the engine replaced by a stand-in: the one function ``_run_engine``), regression
alerts, team scoping and bad input."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.core.management import call_command

from apps.alerts.models import Alert, AlertStatus
from apps.audit.models import AuditEntry
from apps.autoscaling.models import AutoscalingPolicy
from apps.golive import services
from apps.golive.models import CheckResult, DeploymentStage, GateOverride, LoadTestRun
from apps.inventory.models import Deployment, DeploymentStatus
from tests.assertions import nothing_stored
from tests.factories.golive import checks_recorded
from tests.factories.inventory import DeploymentFactory, SimulatedDeploymentFactory

pytestmark = pytest.mark.django_db

BASE = "/api/v1/golive/deployments"


@pytest.fixture
def deployment(roster):
    return SimulatedDeploymentFactory(
        team=roster.team, name="chat", endpoint_url="http://127.0.0.1:9/v1", max_replicas=4
    )


def test_inventory_activation__checks_not_passing__400_naming_them_then_passing__active(
    roster, client_for, deployment
):
    url = f"/api/v1/deployments/{deployment.pk}/"
    operator = client_for(roster.operator)
    checks_recorded(deployment, monitoring__logs="fail")
    with nothing_stored():
        refused = operator.patch(url, {"status": "active"}, format="json")
    assert refused.status_code == 400
    message = refused.json()["errors"]["status"][0]
    assert "monitoring.logs (fail)" in message
    assert "model.served_version" not in message
    checks_recorded(deployment)
    assert operator.patch(url, {"status": "active"}, format="json").status_code == 200
    assert Deployment.objects.get(pk=deployment.pk).status == DeploymentStatus.ACTIVE
    body = operator.get(f"{BASE}/{deployment.pk}/").json()
    assert body["stage"] == "production"
    assert body["gate"] == {"open": True, "failing": []}


def test_inventory_create_active__refused(roster, client_for, deployment, settings):
    payload = {
        "team": roster.team.pk,
        "name": "born-active",
        "model": deployment.model_id,
        "framework": "vllm",
        "target_kind": "simulated",
        "gpu_type": "a100-80gb",
        "prometheus_selector": '{deployment="x"}',
        "status": "active",
    }
    with nothing_stored():
        response = client_for(roster.operator).post("/api/v1/deployments/", payload, format="json")
    assert response.status_code == 400
    assert "cannot be created active" in response.json()["errors"]["status"][0]
    settings.INVENTORY_ACTIVATION_GUARD = ""  # documented: no gate
    response = client_for(roster.operator).post("/api/v1/deployments/", payload, format="json")
    assert response.status_code == 201, response.json()


def test_stage_production__gate_closed__409_then_admin_override__active_and_audited(
    roster, client_for, deployment
):
    operator, admin = client_for(roster.operator), client_for(roster.admin)
    with nothing_stored():
        refused = operator.post(f"{BASE}/{deployment.pk}/stage/", {"stage": "production"})
    assert refused.status_code == 409
    body = refused.json()
    assert {"key": "model.artifacts", "status": "unknown"} in body["failing_checks"]
    assert "model.artifacts" in body["detail"]

    with nothing_stored():
        assert (
            operator.post(
                f"{BASE}/{deployment.pk}/override/", {"target": "production", "reason": "hotfix"}
            ).status_code
            == 403
        )
        blank = admin.post(f"{BASE}/{deployment.pk}/override/", {"target": "production"})
    assert blank.status_code == 400
    assert "reason" in blank.json()["errors"]

    done = admin.post(
        f"{BASE}/{deployment.pk}/override/",
        {"target": "production", "reason": "incident 42: capacity needed now"},
    )
    assert done.status_code == 201, done.json()
    assert done.json()["actor"] == "alpha-admin"
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.ACTIVE
    override = GateOverride.objects.get()
    assert len(override.failing_checks) == 15
    assert DeploymentStage.objects.get(deployment=deployment).stage == "production"
    verbs = set(AuditEntry.objects.values_list("verb", flat=True))
    assert {"override", "golive-override"} <= verbs


def test_stage__checks_pass__production_then_operations_then_back(roster, client_for, deployment):
    operator = client_for(roster.operator)
    checks_recorded(deployment)
    url = f"{BASE}/{deployment.pk}/stage/"
    assert operator.post(url, {"stage": "validation"}).json()["stage"] == "validation"
    moved = operator.post(url, {"stage": "production", "require_tls": True})
    assert moved.status_code == 200, moved.json()
    assert moved.json()["require_tls"] is True
    assert Deployment.objects.get(pk=deployment.pk).status == "active"
    assert operator.post(url, {"stage": "operations"}).json()["stage"] == "operations"
    back = operator.post(url, {"stage": "validation"})
    assert back.json()["stage"] == "validation"
    assert Deployment.objects.get(pk=deployment.pk).status == "provisioning"
    assert operator.post(url, {"stage": "nowhere"}).status_code == 400


def test_enforce_mode__gate_closed__400_then_override__enforce(roster, client_for, deployment):
    operator, admin = client_for(roster.operator), client_for(roster.admin)
    created = operator.post(
        "/api/v1/autoscaling/policies/", {"deployment": deployment.pk}, format="json"
    )
    assert created.status_code == 201
    url = f"/api/v1/autoscaling/policies/{deployment.pk}/"
    refused = operator.patch(url, {"mode": "enforce"}, format="json")
    assert refused.status_code == 400
    assert "Enforce mode needs every required go-live check" in refused.json()["errors"]["mode"][0]
    assert AutoscalingPolicy.objects.get(deployment=deployment).mode == "dry-run"
    done = admin.post(
        f"{BASE}/{deployment.pk}/override/", {"target": "enforce", "reason": "tested by hand"}
    )
    assert done.status_code == 201
    assert AutoscalingPolicy.objects.get(deployment=deployment).mode == "enforce"
    # Once checks pass, an operator may switch it back and forth through the API.
    checks_recorded(deployment)
    assert operator.patch(url, {"mode": "dry-run"}, format="json").status_code == 200
    assert operator.patch(url, {"mode": "enforce"}, format="json").status_code == 200


def test_other_team__404_everywhere(roster, client_for, deployment):
    outsider = client_for(roster.outsider)
    for path in ("", "history/", "artifacts/", "loadtests/"):
        assert outsider.get(f"{BASE}/{deployment.pk}/{path}").status_code == 404
    with nothing_stored():
        for path, body in [
            ("run-checks/", {}),
            ("stage/", {"stage": "production"}),
            ("override/", {"target": "production", "reason": "x"}),
            ("loadtests/", {"mode": "functional"}),
        ]:
            assert outsider.post(f"{BASE}/{deployment.pk}/{path}", body).status_code == 404
    assert outsider.get(f"{BASE}/").json()["count"] == 0


def test_artifacts__reported_then_checked_against_model_checksum(roster, client_for, deployment):
    files = [{"path": "model.safetensors", "sha256": "a" * 64}]
    from apps.golive.checks import manifest_digest

    deployment.model.checksum = manifest_digest(files)
    deployment.model.save()
    operator = client_for(roster.operator)
    with nothing_stored():
        bad = operator.post(
            f"{BASE}/{deployment.pk}/artifacts/",
            {"files": [{"path": "x", "sha256": "XYZ"}], "digest": "md5:1"},
            format="json",
        )
        assert bad.status_code == 400
        assert set(bad.json()["errors"]) == {"files", "digest"}
        assert (
            client_for(roster.viewer)
            .post(f"{BASE}/{deployment.pk}/artifacts/", {"files": files}, format="json")
            .status_code
            == 403
        )
    created = operator.post(f"{BASE}/{deployment.pk}/artifacts/", {"files": files}, format="json")
    assert created.status_code == 201, created.json()
    services.checks_run(deployment=deployment, keys=["model.artifacts"])
    assert CheckResult.objects.get(key="model.artifacts").status == "pass"
    operator.post(
        f"{BASE}/{deployment.pk}/artifacts/", {"digest": "sha256:" + "0" * 64}, format="json"
    )
    services.checks_run(deployment=deployment, keys=["model.artifacts"])
    latest = CheckResult.objects.filter(key="model.artifacts").first()
    assert latest is not None
    assert latest.status == "fail"


def test_run_checks__every_check_recorded_none_crashes(roster, client_for, deployment, settings):
    settings.PROMETHEUS_URL = None
    response = client_for(roster.operator).post(f"{BASE}/{deployment.pk}/run-checks/")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert len(body["checks"]) == 15
    by_key = {c["key"]: c for c in body["checks"]}
    # The endpoint (port 9 on loopback) is refused by the outbound guard: unknown, not a crash.
    assert by_key["model.served_version"]["status"] == "unknown"
    assert "guard" in by_key["model.served_version"]["message"]
    assert by_key["environment.gpu"]["status"] == "unknown"
    assert by_key["configuration.credentials"]["status"] == "pass"
    assert by_key["monitoring.slo"]["status"] == "fail"
    assert client_for(roster.viewer).post(f"{BASE}/{deployment.pk}/run-checks/").status_code == 403
    history = client_for(roster.viewer).get(f"{BASE}/{deployment.pk}/history/?key=monitoring.slo")
    assert [r["key"] for r in history.json()["results"]] == ["monitoring.slo"]


def test_credentials_check__inline_kubeconfig__fail(roster):
    inline = DeploymentFactory(team=roster.team)  # the factory's cluster stores a kubeconfig
    services.checks_run(deployment=inline, keys=["configuration.credentials"])
    row = CheckResult.objects.get(deployment=inline)
    assert row.status == "fail"
    assert "kubeconfig" in row.message


def test_regression__active_deployment_check_fails__alert_raised_then_resolved(deployment):
    checks_recorded(deployment)
    deployment.status = DeploymentStatus.ACTIVE
    deployment.save()
    services.checks_run(deployment=deployment, keys=["monitoring.slo"])  # no SLO: fail
    alert = Alert.objects.get(name="GoLiveCheckRegressed")
    assert alert.status == AlertStatus.FIRING
    assert alert.labels["check"] == "monitoring.slo"
    assert alert.source == "golive"
    from apps.slos.models import Slo

    Slo.objects.create(
        team=deployment.team,
        deployment=deployment,
        name="errors",
        sli_kind="error_ratio",
        objective_percent=99,
    )
    services.checks_run(deployment=deployment, keys=["monitoring.slo"])
    alert.refresh_from_db()
    assert alert.status == AlertStatus.RESOLVED


def _fake_engine(result, seen):
    def run(plan, *, should_stop, on_progress):
        seen.append(plan)
        on_progress({"step": 1})
        return result

    return run


def test_loadtest__functional_run__stored_passed_and_check_passes(
    roster, client_for, deployment, monkeypatch, settings, django_capture_on_commit_callbacks
):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    plans: list[dict] = []
    result = SimpleNamespace(
        functional=[("well-formed", True, {}), ("streaming", True, {})],
        steps=[],
        capacity_rps_per_replica=None,
        stopped_reason="completed",
        to_dict=lambda: {"functional": "ok"},
    )
    monkeypatch.setattr(services, "_run_engine", _fake_engine(result, plans))
    queued: list[int] = []
    monkeypatch.setattr("apps.golive.api.run_loadtest.delay", queued.append)
    operator = client_for(roster.operator)
    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post(
            f"{BASE}/{deployment.pk}/loadtests/", {"mode": "functional", "rate_rps": 2}
        )
    assert response.status_code == 202, response.json()
    run_id = response.json()["id"]
    assert queued == [run_id]  # enqueued once committed
    again = operator.post(f"{BASE}/{deployment.pk}/loadtests/", {"mode": "functional"})
    assert again.status_code == 409
    assert "one at a time" in again.json()["detail"]
    services.loadtest_execute(run_id=run_id)
    run = LoadTestRun.objects.get(pk=run_id)
    assert (run.status, run.passed, run.result) == ("done", True, {"functional": "ok"})
    assert plans[0]["base_url"] == "http://127.0.0.1:9"
    assert plans[0]["model"] == deployment.model.name
    assert plans[0]["rate_rps"] == 2.0
    assert CheckResult.objects.get(key="tests.functional").status == "pass"
    assert CheckResult.objects.get(key="tests.stress").status == "fail"
    assert services.loadtest_execute(run_id=run_id) is None  # not queued any more


def test_loadtest__stress_capacity__stored_and_applied_to_policy(
    roster, client_for, deployment, monkeypatch, settings
):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    AutoscalingPolicy.objects.create(deployment=deployment)
    result = SimpleNamespace(
        functional=[], steps=[], capacity_rps_per_replica=3.25, stopped_reason="slo-broken",
        to_dict=lambda: {"capacity_rps_per_replica": 3.25},
    )  # fmt: skip
    monkeypatch.setattr(services, "_run_engine", _fake_engine(result, []))
    operator = client_for(roster.operator)
    created = operator.post(
        f"{BASE}/{deployment.pk}/loadtests/",
        {"mode": "stress", "rate_rps": 1, "max_rate_rps": 20, "max_total_s": 120},
    )
    assert created.status_code == 202, created.json()
    run_id = created.json()["id"]
    services.loadtest_execute(run_id=run_id)
    run = LoadTestRun.objects.get(pk=run_id)
    assert (run.status, run.passed, run.capacity_rps_per_replica) == ("done", True, 3.25)
    applied = operator.post(f"/api/v1/golive/loadtests/{run_id}/apply-capacity/")
    assert applied.status_code == 200, applied.json()
    assert AutoscalingPolicy.objects.get(deployment=deployment).capacity_initial_per_replica == 3.25
    assert AuditEntry.objects.filter(verb="capacity-from-loadtest").exists()
    listed = operator.get(f"{BASE}/{deployment.pk}/").json()
    assert listed["measured_capacity_rps_per_replica"] == 3.25
    assert listed["policy_capacity_rps_per_replica"] == 3.25


def test_loadtest__two_stress_runs_at_different_counts__pooling_fitted_and_applied(
    roster, client_for, deployment, monkeypatch, settings
):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    AutoscalingPolicy.objects.create(deployment=deployment)
    operator = client_for(roster.operator)
    runs = {}
    # Per replica: 0.648 req/s on 4 replicas, 0.696 on 8 (square-root staffing, pooling 0.4).
    for replicas, capacity in ((4, 0.648), (8, 0.696), (2, 0.5)):
        result = SimpleNamespace(
            functional=[], steps=[], capacity_rps_per_replica=capacity, stopped_reason="slo-broken",
            to_dict=lambda c=capacity: {"capacity_rps_per_replica": c},
        )  # fmt: skip
        monkeypatch.setattr(services, "_run_engine", _fake_engine(result, []))
        created = operator.post(
            f"{BASE}/{deployment.pk}/loadtests/",
            {"mode": "stress", "rate_rps": 1, "max_rate_rps": 20, "replicas": replicas},
        )
        assert created.status_code == 202, created.json()
        services.loadtest_execute(run_id=created.json()["id"])
        runs[replicas] = created.json()["id"]
    url = f"/api/v1/golive/loadtests/{runs[8]}/apply-capacity/"
    applied = operator.post(url, {"pooling_with": runs[4]}, format="json")
    assert applied.status_code == 200, applied.json()
    body = applied.json()
    assert body["capacity_initial_per_replica"] == 0.696
    assert body["capacity_pool_size"] == 8
    assert body["capacity_pooling"] == pytest.approx(0.40, abs=0.01)
    policy = AutoscalingPolicy.objects.get(deployment=deployment)
    capacity = policy.to_engine().capacity
    assert (capacity.pool_size, capacity.pooling) == (8, body["capacity_pooling"])
    audit = AuditEntry.objects.filter(verb="capacity-from-loadtest").latest("pk")
    assert audit.changes["pooling_with"] == runs[4]
    # Without pooling_with the pool size follows the run and the pooling stays.
    alone = operator.post(f"/api/v1/golive/loadtests/{runs[2]}/apply-capacity/")
    assert alone.status_code == 200, alone.json()
    assert (alone.json()["capacity_pool_size"], alone.json()["capacity_pooling"]) == (
        2,
        body["capacity_pooling"],
    )
    # Another team's stress run is not one this token can name.
    elsewhere = LoadTestRun.objects.create(
        deployment=DeploymentFactory(),
        mode="stress",
        plan={"replicas": 4},
        status="done",
        capacity_rps_per_replica=0.6,
    )
    # Same count, another team's, unknown or malformed: refused with the reason, nothing
    # changed.
    with nothing_stored():
        same = operator.post(url, {"pooling_with": runs[8]}, format="json")
        assert same.status_code == 409
        assert "two replica counts" in same.json()["detail"]
        for bad in (
            {"pooling_with": elsewhere.pk},
            {"pooling_with": 999999},
            {"pooling_with": "x"},
            {"pooling_with": 0},
        ):
            refused = operator.post(url, bad, format="json")
            assert refused.status_code == 400, refused.content
            assert "pooling_with" in refused.json()["errors"]


def test_loadtest__engine_error__failed_with_message(roster, deployment, monkeypatch, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]

    def broken(plan, *, should_stop, on_progress):
        raise services.PlanInvalid("rate_rps must be positive")

    monkeypatch.setattr(services, "_run_engine", broken)
    run = services.loadtest_create(
        deployment=deployment, params={"mode": "performance"}, confirm_production=False,
        actor=roster.operator,
    )  # fmt: skip
    services.loadtest_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == "failed"
    assert "rate_rps must be positive" in run.error
    assert CheckResult.objects.get(key="tests.performance").status == "fail"


def test_loadtest__production_needs_confirmation__caps_and_bad_input_4xx(
    roster, client_for, deployment, settings, monkeypatch
):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.GOLIVE_LOADTEST_MAX_RATE_RPS = 10.0
    monkeypatch.setattr("apps.golive.api.run_loadtest.delay", lambda pk: None)
    operator = client_for(roster.operator)
    url = f"{BASE}/{deployment.pk}/loadtests/"
    with nothing_stored():
        capped = operator.post(url, {"mode": "stress", "max_rate_rps": 50})
        assert capped.status_code == 400
        assert "GOLIVE_LOADTEST_MAX_RATE_RPS" in str(capped.json()["errors"])
        for body in ({"mode": "soak"}, {"mode": "functional", "rate_rps": -1}, {}):
            bad = operator.post(url, body, format="json")
            assert bad.status_code == 400, bad.content
            assert bad.json()["errors"]
        assert client_for(roster.viewer).post(url, {"mode": "functional"}).status_code == 403
    deployment.status = DeploymentStatus.ACTIVE
    deployment.save()
    with nothing_stored():
        refused = operator.post(url, {"mode": "functional"})
    assert refused.status_code == 409
    assert "confirm_production" in refused.json()["detail"]
    confirmed = operator.post(url, {"mode": "functional", "confirm_production": True})
    assert confirmed.status_code == 202
    assert confirmed.json()["confirmed_production"] is True
    run_id = confirmed.json()["id"]
    cancelled = operator.post(f"/api/v1/golive/loadtests/{run_id}/cancel/")
    assert cancelled.json()["status"] == "cancelled"
    assert operator.post(f"/api/v1/golive/loadtests/{run_id}/cancel/").status_code == 409
    assert operator.post(f"/api/v1/golive/loadtests/{run_id}/apply-capacity/").status_code == 409


def test_loadtest__endpoint_outside_allowed_networks__400(roster, client_for, deployment):
    with nothing_stored():
        response = client_for(roster.operator).post(
            f"{BASE}/{deployment.pk}/loadtests/", {"mode": "functional"}
        )
    assert response.status_code == 400
    assert "loopback" in str(response.json()["errors"]["deployment"])


def test_seed_demo__deployments_in_production_with_a_system_override():
    call_command("seed_demo")
    call_command("seed_demo")
    demo = Deployment.objects.filter(team__slug="demo")
    assert set(demo.values_list("status", flat=True)) == {"active"}
    assert set(DeploymentStage.objects.values_list("stage", flat=True)) == {"production"}
    overrides = GateOverride.objects.filter(deployment__in=demo)
    assert overrides.count() == 3
    assert {o.actor for o in overrides} == {None}
    assert AuditEntry.objects.filter(verb="override", actor_repr="system").count() == 3


@pytest.mark.parametrize("rows", [2, 8])
def test_checklist_list__fixed_query_count(roster, client_for, django_assert_num_queries, rows):
    for index in range(rows):
        deployment = SimulatedDeploymentFactory(team=roster.team, name=f"d{index}")
        checks_recorded(deployment, monitoring__logs="fail")
        AutoscalingPolicy.objects.create(deployment=deployment)
        GateOverride.objects.create(deployment=deployment, target="production", reason="x")
    client = client_for(roster.operator)
    # roles, the page, stages, latest results, overrides, capacities, policies
    with django_assert_num_queries(7):
        body = client.get(f"{BASE}/").json()
    assert len(body["results"]) == rows
    assert all(r["gate"]["failing"] == [{"key": "monitoring.logs", "status": "fail"}]
               for r in body["results"])  # fmt: skip
    assert all(len(r["checks"]) == 15 for r in body["results"])


def test_loadtest__lock_held_elsewhere__run_stays_queued(roster, deployment, settings, redis_cache):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    from apps.core.locks import cache_lock

    run = services.loadtest_create(
        deployment=deployment, params={"mode": "functional"}, confirm_production=False,
        actor=roster.operator,
    )  # fmt: skip
    with cache_lock(f"golive:loadtest:{deployment.pk}", ttl_s=60) as held:
        assert held
        assert services.loadtest_execute(run_id=run.pk) is None
    run.refresh_from_db()
    assert run.status == "queued"


def test_loadtest__cancelled_while_running__engine_told_to_stop(
    roster, client_for, deployment, monkeypatch, settings
):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    answers: list[bool] = []
    operator = client_for(roster.operator)

    def engine(plan, *, should_stop, on_progress):
        answers.append(should_stop())
        run_id = LoadTestRun.objects.get().pk
        assert operator.post(f"/api/v1/golive/loadtests/{run_id}/cancel/").status_code == 200
        answers.append(should_stop())
        return SimpleNamespace(
            functional=[("well-formed", True, {})], steps=[], capacity_rps_per_replica=None,
            stopped_reason="cancelled", to_dict=lambda: {},
        )  # fmt: skip

    monkeypatch.setattr(services, "_run_engine", engine)
    monkeypatch.setattr("apps.golive.services.time.monotonic", iter(range(0, 1000, 5)).__next__)
    run = services.loadtest_create(
        deployment=deployment, params={"mode": "functional"}, confirm_production=False,
        actor=roster.operator,
    )  # fmt: skip
    services.loadtest_execute(run_id=run.pk)
    run.refresh_from_db()
    assert answers == [False, True]
    assert (run.status, run.passed) == ("cancelled", False)


def test_other_team__load_test_run_actions_404_and_nothing_changes(
    roster, client_for, deployment, settings
):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    run = services.loadtest_create(
        deployment=deployment, params={"mode": "stress"}, confirm_production=False, actor=None
    )
    LoadTestRun.objects.filter(pk=run.pk).update(status="done", capacity_rps_per_replica=4.0)
    AutoscalingPolicy.objects.create(deployment=deployment)
    outsider = client_for(roster.outsider)
    assert outsider.get(f"/api/v1/golive/loadtests/{run.pk}/").status_code == 404
    with nothing_stored():
        for action in ("cancel", "apply-capacity"):
            response = outsider.post(f"/api/v1/golive/loadtests/{run.pk}/{action}/")
            assert response.status_code == 404, (action, response.json())
    assert AutoscalingPolicy.objects.get(deployment=deployment).capacity_initial_per_replica != 4.0
    viewer = client_for(roster.viewer)
    assert viewer.get(f"/api/v1/golive/loadtests/{run.pk}/").status_code == 200
    assert viewer.post(f"/api/v1/golive/loadtests/{run.pk}/apply-capacity/").status_code == 403
