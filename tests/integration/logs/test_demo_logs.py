"""The demo's logs end to end: the fleet simulator's replicas write vLLM-like lines, the
pump ships them with the demo team's ingest token to the live server's Loki push endpoint,
they are stored linked to their inventory deployment, and the demo's LogQL rule fires when
the lines say requests are piling up."""

from __future__ import annotations

import time

import pytest
from django.core.management import call_command

from apps.alerts.models import Alert, AlertStatus
from apps.alerts.sources import alert_sources_evaluate
from apps.devstack.demo import demo_ingest_token
from apps.fleetsim.inventory import fleet_from_inventory
from apps.fleetsim.logs import FleetLogs, LogPump, LokiShipper
from apps.inventory.models import Deployment
from apps.logs.models import IngestToken, LogStream
from apps.logs.storage import log_store
from apps.logs.storage.base import LogSelect

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def store(sql_log_store, settings):
    settings.LOGS_BACKEND = "sql"
    log_store.cache_clear()
    yield sql_log_store
    log_store.cache_clear()


def test_demo_ingest_token__saved__reused__replaced_when_invalid(tmp_path):
    call_command("seed_demo", verbosity=0)
    saved = tmp_path / "demo-ingest-token"
    first = demo_ingest_token(saved=saved)
    assert saved.read_text().strip() == first
    assert saved.stat().st_mode & 0o777 == 0o600
    assert demo_ingest_token(saved=saved) == first  # reused
    saved.write_text("lcpl_not-a-token\n")
    replaced = demo_ingest_token(saved=saved)
    assert replaced != first
    assert IngestToken.objects.filter(team__slug="demo").count() == 1


def test_demo_replicas__logs_shipped_stored_linked__log_rule_fires(store, live_server, tmp_path):
    call_command("seed_demo", verbosity=0)
    token = demo_ingest_token(saved=tmp_path / "token")
    fleet = fleet_from_inventory(pattern="steady")
    chat = fleet.get("demo", "chat-llama-8b")
    chat.set_rate_multiplier(40.0)  # far more than two replicas serve: requests pile up
    pump = LogPump(
        fleet.snapshot,
        LokiShipper(f"{live_server.url}/loki/api/v1/push", token, attempts=2),
        logs=FleetLogs(interval_s=10.0),
    )
    shipped = pump.pump_once()
    for t in (15.0, 30.0, 45.0):
        fleet.step_to(t)
        shipped += pump.pump_once()
    assert shipped > 0

    team = Deployment.objects.get(name="chat-llama-8b").team
    page = log_store().select(
        LogSelect(team_id=team.pk, start_ns=0, end_ns=time.time_ns() + 10**9), limit=10_000
    )
    assert len(page.entries) == shipped
    assert any("Avg prompt throughput" in e.line for e in page.entries)
    # Each replica's streams are linked to the inventory deployment its labels match.
    chat_streams = LogStream.objects.filter(team=team, labels__deployment="chat-llama-8b")
    assert chat_streams.exists()
    assert set(chat_streams.values_list("deployment__name", flat=True)) == {"chat-llama-8b"}

    alert_sources_evaluate()
    alert = Alert.objects.get(labels__alertname="RequestsPilingUpInLogs")
    assert alert.status == AlertStatus.FIRING
    assert alert.labels["deployment"] == "chat-llama-8b"
