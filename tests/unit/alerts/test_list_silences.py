"""The alerts list tests every row against the active silences, whose matchers are loaded
once per page and not once per row."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.alerts import selectors
from apps.alerts.models import Alert, Silence
from tests.factories.alerts import AlertFactory

pytestmark = pytest.mark.django_db


def _alerts_and_silences(team, *, alerts: int) -> list[Silence]:
    now = timezone.now()
    for i in range(alerts):
        AlertFactory(
            team=team,
            labels={"alertname": "HighQueueDepth", "pod": f"chat-{i}"},
            starts_at=now - timedelta(minutes=i),
            received_at=now,
        )
    return [
        Silence.objects.create(
            team=team,
            matchers=[{"name": "pod", "op": "=~", "value": pattern}],
            starts_at=now - timedelta(hours=1),
            ends_at=now + timedelta(hours=1),
            comment="maintenance",
        )
        for pattern in ("chat-[0-2]", "chat-1.*", "nothing-.*")
    ]


def test_alert_list__many_rows_three_silences__matchers_loaded_once_per_page(
    roster, client_for, monkeypatch
):
    first, second, _ = _alerts_and_silences(roster.team, alerts=12)
    loaded: list[object] = []
    real = selectors.matchers_load

    def counting(stored):
        loaded.append(stored)
        return real(stored)

    monkeypatch.setattr(selectors, "matchers_load", counting)
    rows = client_for(roster.viewer).get("/api/v1/alerts/?ordering=-starts_at").json()["results"]
    assert len(rows) == 12
    assert len(loaded) == 3  # one per active silence, whatever the number of rows
    by_pod = {row["labels"]["pod"]: row["silenced_by"] for row in rows}
    assert by_pod["chat-0"] == by_pod["chat-2"] == first.pk
    # Both match chat-1: the later silence (same start, higher id) is tested first.
    assert by_pod["chat-1"] == by_pod["chat-10"] == second.pk
    assert by_pod["chat-5"] is None


def test_alert_silenced_by__matchers_loaded_beforehand__same_answer(roster):
    silences = _alerts_and_silences(roster.team, alerts=12)
    loaded = selectors.silences_with_matchers(silences)
    for alert in Alert.objects.all():
        assert selectors.alert_silenced_by(alert, silences, loaded=loaded) == (
            selectors.alert_silenced_by(alert, silences)
        )
