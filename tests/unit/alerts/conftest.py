from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_queue(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Channel senders are not queued from these tests (no broker); the ids are kept."""
    queued: list[int] = []
    monkeypatch.setattr("apps.alerts.tasks.deliver_channel.delay", queued.append)
    return queued
