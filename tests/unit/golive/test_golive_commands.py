"""``manage.py golive_check`` and ``manage.py loadtest`` (the engine stood in)."""

from __future__ import annotations

from io import StringIO
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.golive import services
from apps.golive.models import LoadTestRun
from apps.inventory.models import DeploymentStatus
from tests.factories.golive import checks_recorded
from tests.factories.inventory import SimulatedDeploymentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def chat(settings):
    settings.PROMETHEUS_URL = None
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    return SimulatedDeploymentFactory(name="chat", endpoint_url="http://127.0.0.1:9/v1")


def test_golive_check__gate_closed__prints_checks_and_exits_1(chat):
    out = StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("golive_check", f"{chat.team.slug}/chat", stdout=out)
    assert exited.value.code == 1
    text = out.getvalue()
    assert "[FAIL] monitoring.slo" in text
    assert "[????] environment.gpu" in text
    assert "gate: closed" in text
    with pytest.raises(CommandError, match="No deployment"):
        call_command("golive_check", f"{chat.team.slug}/nope")


def test_loadtest__stress_in_foreground__progress_result_and_capacity(chat, monkeypatch):
    def engine(plan, *, should_stop, on_progress):
        on_progress({"rate_rps": plan["rate_rps"], "slo_met": True})
        return SimpleNamespace(
            functional=[], steps=[], capacity_rps_per_replica=2.5, stopped_reason="slo-broken",
            to_dict=lambda: {"capacity_rps_per_replica": 2.5},
        )  # fmt: skip

    monkeypatch.setattr(services, "_run_engine", engine)
    out = StringIO()
    call_command(
        "loadtest", str(chat.pk), "--mode", "stress", "--rate-rps", "2", "--max-rate-rps", "8",
        stdout=out,
    )  # fmt: skip
    text = out.getvalue()
    assert 'progress: {"rate_rps": 2.0, "slo_met": true}' in text
    assert "capacity 2.500 req/s per replica" in text
    assert LoadTestRun.objects.get().capacity_rps_per_replica == 2.5


def test_loadtest__active_production__needs_confirm_production(chat, monkeypatch):
    checks_recorded(chat)
    chat.status = DeploymentStatus.ACTIVE
    chat.save()
    with pytest.raises(CommandError, match="confirm_production"):
        call_command("loadtest", f"{chat.team.slug}/chat")
    assert not LoadTestRun.objects.exists()
    with pytest.raises(CommandError, match="rate_rps"):
        call_command("loadtest", f"{chat.team.slug}/chat", "--rate-rps", "-1")
