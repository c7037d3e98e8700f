"""LogQL alert rules: a metric query over a team's logs is one more kind of threshold rule,
so it fires after ``for``, is grouped, routed and delivered like any rule, resolves when
the lines stop, and holds as it is when the logs cannot be read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError

from apps.alerts.models import Alert, AlertRule, AlertStatus
from apps.alerts.sources import alert_sources_evaluate
from apps.logs.storage import log_store
from tests.factories.accounts import TeamFactory
from tests.factories.inventory import DeploymentFactory

from .pushes import SECOND, no_deployment, stream

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

OOM = 'sum by (pod) (count_over_time({namespace="llm"} |= "CUDA out of memory" [5m]))'


@pytest.fixture
def store(sql_log_store, settings):
    settings.LOGS_BACKEND = "sql"
    log_store.cache_clear()
    yield sql_log_store
    log_store.cache_clear()


def _at(t: datetime) -> int:
    return int(t.timestamp()) * SECOND


def _oom(store, team_id, t, pod="chat-0", line="torch.OutOfMemoryError: CUDA out of memory."):
    store.write(
        team_id=team_id,
        streams=[stream({"namespace": "llm", "pod": pod}, (_at(t), line))],
        resolve=no_deployment,
    )


def _rule(team, **kw):
    values = {"name": "CudaOOM", "logql": OOM, "comparison": ">", "threshold": 0, "for_s": 60,
              "severity": "critical", "summary": "{value} OOM lines in 5 m"}  # fmt: skip
    values.update(kw)
    rule = AlertRule(team=team, **values)
    rule.full_clean()
    rule.save()
    return rule


def test_logql_rule__fires_after_for__per_series__then_resolves(store):
    team = TeamFactory()
    _rule(team)
    t0 = datetime(2026, 11, 29, 12, 0, 30, tzinfo=UTC)
    _oom(store, team.pk, t0 - timedelta(seconds=20))
    _oom(store, team.pk, t0 - timedelta(seconds=10), line="INFO all good")  # no match
    # Another team's OOM lines never reach this team's rule.
    _oom(store, TeamFactory().pk, t0 - timedelta(seconds=5), pod="other-0")

    alert_sources_evaluate(now=t0)
    assert not Alert.objects.exists()  # pending for 60 s
    _oom(store, team.pk, t0 + timedelta(seconds=50))
    alert_sources_evaluate(now=t0 + timedelta(seconds=61))
    alert = Alert.objects.get()
    assert alert.status == AlertStatus.FIRING
    assert alert.team == team
    assert alert.labels["alertname"] == "CudaOOM"
    assert alert.labels["pod"] == "chat-0"
    assert alert.annotations["summary"] == "2 OOM lines in 5 m"

    # Five minutes without a matching line: the count is gone, the alert resolves.
    alert_sources_evaluate(now=t0 + timedelta(minutes=7))
    alert.refresh_from_db()
    assert alert.status == AlertStatus.RESOLVED


def test_logql_rule__logs_unreadable__neither_fires_nor_resolves(store, settings):
    team = TeamFactory()
    _rule(team, for_s=0)
    t0 = datetime(2026, 11, 29, 12, 0, 30, tzinfo=UTC)
    _oom(store, team.pk, t0 - timedelta(seconds=20))
    alert_sources_evaluate(now=t0)
    assert Alert.objects.get().status == AlertStatus.FIRING
    # The store cannot be reached now: the firing alert holds.
    settings.LOGS_BACKEND = "clickhouse"
    settings.LOGS_CLICKHOUSE_URL = "clickhouse://nobody:nothing@127.0.0.1:1/none"
    log_store.cache_clear()
    alert_sources_evaluate(now=t0 + timedelta(minutes=10))
    assert Alert.objects.get().status == AlertStatus.FIRING


def test_logql_rule__scoped_to_its_deployment(store):
    team = TeamFactory()
    chat = DeploymentFactory(team=team, name="chat", prometheus_selector='{namespace="llm"}')
    other = DeploymentFactory(team=team, name="code")
    _rule(team, deployment=other, for_s=0)
    t0 = datetime(2026, 11, 29, 12, 0, 30, tzinfo=UTC)
    store.write(
        team_id=team.pk,
        streams=[stream({"namespace": "llm", "pod": "chat-0"},
                        (_at(t0) - 5 * SECOND, "CUDA out of memory"))],
        resolve=lambda labels: chat.pk,
    )  # fmt: skip
    alert_sources_evaluate(now=t0)
    assert not Alert.objects.exists()  # the lines are chat's, the rule watches code


@pytest.mark.parametrize(
    ("logql", "message"),
    [
        ('{namespace="llm"} |= "oom"', "metric query is needed"),
        ('sum(count_over_time({namespace="llm"}[5m])', "parse error"),
    ],
)
def test_logql_rule__invalid_query__refused_with_the_reason(logql, message):
    with pytest.raises(ValidationError, match=message):
        _rule(TeamFactory(), logql=logql)


def test_rule__two_sources__refused():
    with pytest.raises(ValidationError, match="one of a signal"):
        _rule(TeamFactory(), signal="queue_length")
