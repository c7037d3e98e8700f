"""The control loop around the engine: decisions recorded, actions claimed once, safety holds."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.alerts.models import Alert, AlertStatus
from apps.alerts.sources import alert_sources_evaluate
from apps.autoscaling.actions import deployment_lock, scale_action_execute
from apps.autoscaling.actuators.base import ActuatorError, ScaleStatus, ScaleTarget
from apps.autoscaling.evaluation import deployment_evaluate, history_dump, history_load
from apps.autoscaling.models import (
    ActionStatus,
    AutoscalingPolicy,
    DecisionRecord,
    DeploymentControl,
    ScaleAction,
)
from apps.autoscaling.services import global_pause_set
from apps.autoscaling.tasks import evaluate
from apps.metrics.collection import Observation
from apps.metrics.services import metrics_store
from tests.factories.accounts import UserFactory
from tests.factories.autoscaling import AutoscalingPolicyFactory
from tests.factories.inventory import (
    ClusterFactory,
    DeploymentFactory,
    SimulatedDeploymentFactory,
    kubeconfig_document,
)

pytestmark = pytest.mark.django_db(transaction=True)


class RecordingActuator:
    """Implements the Actuator interface over an in-memory replica count."""

    def __init__(self, spec: int, ready: int | None = None, fail: ActuatorError | None = None):
        self.spec = spec
        self.ready = spec if ready is None else ready
        self.fail = fail
        self.calls: list[tuple[str, int]] = []

    def get_scale(self, target: ScaleTarget) -> ScaleStatus:
        return ScaleStatus(self.spec, self.ready)

    def set_replicas(self, target: ScaleTarget, replicas: int, *, idempotency_key: str):
        self.calls.append((idempotency_key, replicas))
        if self.fail is not None:
            raise self.fail
        self.spec = self.ready = replicas
        return ScaleStatus(self.spec, self.ready)


@pytest.fixture
def deployment(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    dep = SimulatedDeploymentFactory(min_replicas=1, max_replicas=10)
    AutoscalingPolicyFactory(deployment=dep)
    return dep


def _observe(dep, queue: float | None, status: str = "ok"):
    metrics_store(
        observations={
            dep.pk: {
                "queue_length": Observation(
                    queue, time.time(), status, "" if status == "ok" else "gone"
                ),
            }
        }
    )


def test_evaluate__load_step_in_enforce__decision_and_one_pending_action(deployment, monkeypatch):
    _observe(deployment, 40)  # 40 waiting on 2 replicas = 20 per replica against 5
    actuator = RecordingActuator(spec=2)
    record = deployment_evaluate(deployment=deployment, actuator=actuator)
    assert record is not None
    # The target asks for ceil(40 / 5) = 8; the default scale-up policies allow
    # max(2 + 100 %, 2 + 4 pods) = 6 in one step.
    assert (record.desired_replicas, record.rule) == (6, "rate_limit:up")
    assert "queue_length" in record.reason
    assert record.dry_run is False
    action = ScaleAction.objects.get()
    assert (action.from_replicas, action.to_replicas) == (2, record.desired_replicas)
    assert action.idempotency_key == f"dep{deployment.pk}-d{record.pk}-2to{record.desired_replicas}"

    done = scale_action_execute(
        action_id=action.pk, actuator_factory=lambda d: actuator, sleep=lambda s: None
    )
    assert done is not None
    assert done.status == ActionStatus.SUCCEEDED
    assert actuator.spec == record.desired_replicas
    assert DeploymentControl.objects.get(deployment=deployment).last_applied == actuator.spec
    # Running the same action again changes nothing: it is no longer pending.
    assert scale_action_execute(action_id=action.pk, actuator_factory=lambda d: actuator) is None
    assert len(actuator.calls) == 1


def test_evaluate__dry_run__recorded_never_acted(deployment):
    AutoscalingPolicy.objects.filter(deployment=deployment).update(mode="dry-run")
    _observe(deployment, 40)
    record = deployment_evaluate(deployment=deployment, actuator=RecordingActuator(spec=2))
    assert record.dry_run is True
    assert record.desired_replicas > 2
    assert not ScaleAction.objects.exists()


def test_evaluate__missing_metrics__hold_never_scale_down(deployment):
    _observe(deployment, None, status="unavailable")
    record = deployment_evaluate(deployment=deployment, actuator=RecordingActuator(spec=6))
    assert record.desired_replicas == 6
    assert record.rule == "hold:missing_metrics"
    assert any(e["kind"] == "metrics_missing" for e in record.events)
    assert not ScaleAction.objects.exists()


def test_evaluate__paused_or_globally_paused__no_action(deployment, monkeypatch):
    _observe(deployment, 40)
    DeploymentControl.objects.create(deployment=deployment, paused=True)
    record = deployment_evaluate(deployment=deployment, actuator=RecordingActuator(spec=2))
    assert record.dry_run is True
    assert "Paused" in record.reason
    DeploymentControl.objects.filter(deployment=deployment).update(paused=False)
    global_pause_set(paused=True, actor=UserFactory(is_superuser=True))
    deployment_evaluate(deployment=deployment, actuator=RecordingActuator(spec=2))
    assert not ScaleAction.objects.exists()


def test_evaluate__pinned__pin_wins_with_reason(deployment, monkeypatch):
    _observe(deployment, 40)
    DeploymentControl.objects.create(
        deployment=deployment,
        pinned_replicas=3,
        pinned_until=timezone.now() + timedelta(minutes=30),
    )
    record = deployment_evaluate(deployment=deployment, actuator=RecordingActuator(spec=2))
    assert (record.rule, record.desired_replicas) == ("pinned", 3)
    assert "would have chosen" in record.reason


def test_execute__lock_held_by_another_worker__action_stays_pending(deployment, redis_cache):
    # The lock on the cache production uses (Redis), not the in-memory stand-in.
    import redis

    action = ScaleAction.objects.create(
        deployment=deployment, from_replicas=2, to_replicas=4, idempotency_key="k1"
    )
    actuator = RecordingActuator(spec=2)
    with deployment_lock(deployment.pk) as acquired:
        assert acquired
        held = redis.Redis.from_url(redis_cache.url(0)).keys(f"*autoscaling:lock:{deployment.pk}")
        assert len(held) == 1
        assert (
            scale_action_execute(action_id=action.pk, actuator_factory=lambda d: actuator) is None
        )
        with deployment_lock(deployment.pk) as second:
            assert not second
    action.refresh_from_db()
    assert action.status == ActionStatus.PENDING
    assert actuator.calls == []


def test_execute__permanent_error__failed_visibly_after_one_call(deployment):
    action = ScaleAction.objects.create(
        deployment=deployment, from_replicas=2, to_replicas=4, idempotency_key="k2"
    )
    actuator = RecordingActuator(
        spec=2,
        fail=ActuatorError("forbidden: no RBAC", retryable=False, permanent_reason="forbidden"),
    )
    done = scale_action_execute(
        action_id=action.pk, actuator_factory=lambda d: actuator, sleep=lambda s: None
    )
    assert done.status == ActionStatus.FAILED
    assert "forbidden" in done.error
    assert done.attempts == 1


def test_execute__transient_errors__retried_until_it_lands(deployment, settings):
    settings.AUTOSCALING_APPLY_ATTEMPTS = 4
    action = ScaleAction.objects.create(
        deployment=deployment, from_replicas=2, to_replicas=4, idempotency_key="k3"
    )
    actuator = RecordingActuator(spec=2)
    failures = [ActuatorError("503", retryable=True), ActuatorError("timeout", retryable=True)]
    original = actuator.set_replicas

    def flaky(target, replicas, *, idempotency_key):
        if failures:
            actuator.calls.append((idempotency_key, replicas))
            raise failures.pop(0)
        return original(target, replicas, idempotency_key=idempotency_key)

    actuator.set_replicas = flaky  # type: ignore[method-assign]
    delays: list[float] = []
    done = scale_action_execute(
        action_id=action.pk, actuator_factory=lambda d: actuator, sleep=delays.append
    )
    assert done.status == ActionStatus.SUCCEEDED
    assert done.attempts == 3
    assert actuator.spec == 4
    assert len(delays) == 2


def test_history__json_round_trip__identical(deployment):
    from apps.autoscaling import engine

    history = engine.History(
        ((1.0, 3),), ((2.0, 3, 5),), ((3.0, 1.5),), {"queue_length": ((4.0, 2.0),)}, 5.0
    )
    assert history_load(history_dump(history)) == history
    assert DecisionRecord.objects.count() == 0


# --------------------------------------------------------------- unbuildable actuators


@pytest.fixture
def broken_kubeconfig_deployment(settings, tmp_path, request):
    """A Kubernetes deployment whose kubeconfig does not load: a malformed host file a
    superuser chose, or a stored document that no longer passes the checks."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    if request.param == "host-file":
        path = tmp_path / "kubeconfig"
        path.write_text("clusters: [unclosed\n")
        cluster = ClusterFactory(
            credentials={}, kubeconfig_path=str(path), process_identity_approved=True
        )
    elif request.param == "stored":
        cluster = ClusterFactory(credentials={"kubeconfig": "contexts: 5\n"})
    else:  # stored with a key that has changed since
        cluster = ClusterFactory()
    dep = DeploymentFactory(team=cluster.team, cluster=cluster, max_replicas=10)
    if request.param == "undecryptable":
        settings.FIELD_ENCRYPTION_KEY = "another-key"
    AutoscalingPolicyFactory(deployment=dep)
    return dep


@pytest.mark.parametrize(
    "broken_kubeconfig_deployment", ["host-file", "stored", "undecryptable"], indirect=True
)
def test_evaluate_task__malformed_kubeconfig__hold_recorded_every_cycle_and_alert_raised(
    broken_kubeconfig_deployment, monkeypatch
):
    monkeypatch.setattr("apps.alerts.tasks.deliver_channel.delay", lambda *a, **k: None)
    dep = broken_kubeconfig_deployment

    evaluate(dep.pk)  # the Celery task's body, run inline
    evaluate(dep.pk)

    records = list(DecisionRecord.objects.filter(deployment=dep).order_by("id"))
    assert len(records) == 2
    assert {r.rule for r in records} == {"hold:target_unreadable"}
    assert ("kubeconfig" in records[-1].reason) or ("decrypt" in records[-1].reason)
    assert records[-1].events[0]["reason"] == "misconfigured"
    assert records[-1].events[0]["retryable"] is False
    assert not ScaleAction.objects.exists()
    alert_sources_evaluate()
    alert = Alert.objects.get(name="AutoscalerTargetUnreadable", deployment=dep)
    assert alert.status == AlertStatus.FIRING
    assert alert.annotations["description"] == records[-1].reason


@pytest.mark.parametrize(
    ("server", "named"),
    [
        ("https://169.254.169.254", "169.254.169.254"),
        ("https://127.0.0.1:6443", "127.0.0.1"),
        ("https://[::1]", "::1"),
        ("https://localhost", "localhost resolves to"),
        ("https://0x7f000001", "0x7f000001"),
    ],
)
def test_evaluate_task__stored_kubeconfig_server_internal__hold_recorded_and_alert_raised(
    server, named, settings, monkeypatch
):
    """A kubeconfig stored before its server was checked (or since the allow-list shrank) is
    refused before a client is built: a recorded hold with the reason, not a call."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    monkeypatch.setattr("apps.alerts.tasks.deliver_channel.delay", lambda *a, **k: None)
    cluster = ClusterFactory(credentials={"kubeconfig": kubeconfig_document(server=server)})
    dep = DeploymentFactory(team=cluster.team, cluster=cluster, max_replicas=10)
    AutoscalingPolicyFactory(deployment=dep)

    evaluate(dep.pk)

    record = DecisionRecord.objects.get(deployment=dep)
    assert record.rule == "hold:target_unreadable"
    assert named in record.reason
    assert record.events[0]["reason"] == "misconfigured"
    assert record.events[0]["retryable"] is False
    assert not ScaleAction.objects.exists()
    alert_sources_evaluate()
    alert = Alert.objects.get(name="AutoscalerTargetUnreadable", deployment=dep)
    assert alert.status == AlertStatus.FIRING
    assert named in alert.annotations["description"]


def test_scale_action_execute__actuator_cannot_be_built__action_failed_with_reason(deployment):
    action = ScaleAction.objects.create(
        deployment=deployment, from_replicas=2, to_replicas=3, idempotency_key="k-unbuildable"
    )

    def refuse(dep):
        raise ActuatorError("cluster credentials refused", retryable=False)

    done = scale_action_execute(action_id=action.pk, actuator_factory=refuse)

    assert done is not None
    assert done.status == ActionStatus.FAILED
    assert "cluster credentials refused" in done.error
