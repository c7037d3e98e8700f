from __future__ import annotations

from typing import Any

import pytest

from apps.accounts.models import Role
from tests.factories.accounts import MembershipFactory, TeamFactory, UserFactory


@pytest.fixture(autouse=True)
def _no_queue(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Channel senders are not queued from these tests (no broker); the ids are kept."""
    queued: list[int] = []
    monkeypatch.setattr("apps.alerts.tasks.deliver_channel.delay", queued.append)
    return queued


@pytest.fixture
def operator(client_for: Any) -> tuple[Any, Any]:
    """A team, and an API client of a user with the operator role in it."""
    team = TeamFactory()
    user = UserFactory()
    MembershipFactory(user=user, team=team, role=Role.OPERATOR)
    return team, client_for(user)
