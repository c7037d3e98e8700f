"""Shared fixtures. App-specific factories live in tests/factories/."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

CI = os.environ.get("CI", "").lower() == "true"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    """Under CI a skipped test is a failure: CI installs every binary the tests need, so a
    skip there means a missing install step, not a missing tool."""
    outcome = yield
    report = outcome.get_result()
    if CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which is not allowed: {reason}"


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def client_for(db: None) -> Callable[[Any], APIClient]:
    """An API client authenticated as the given user."""

    def make(user: Any) -> APIClient:
        client = APIClient()
        client.force_authenticate(user=user)
        return client

    return make
