"""Shared fixtures. App-specific factories live in tests/factories/."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test.utils import override_settings
from rest_framework.test import APIClient

from tests.servers import redis_cache  # noqa: F401 - shared fixture

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


DATABASE_FIXTURES = frozenset(
    {"db", "transactional_db", "django_db_reset_sequences", "live_server"}
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--database-tests-only",
        action="store_true",
        help="Run only the tests that open the database (a django_db mark, or a fixture that "
        "needs it). The tests that never open it run the same on every database: CI runs them "
        "once, on PostgreSQL, and this option for its second pass on the SQLite defaults.",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--database-tests-only"):
        return
    kept, left = [], []
    for item in items:
        uses_db = item.get_closest_marker("django_db") is not None or bool(
            DATABASE_FIXTURES & set(getattr(item, "fixturenames", ()))
        )
        (kept if uses_db else left).append(item)
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = kept


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


@pytest.fixture(autouse=True, scope="session")
def _test_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Session-wide test settings: a fast password hasher (factories hash one per user, and
    the production hasher is slow on purpose), and the file-based cache and broker of the
    embedded defaults moved out of the developer's var/, so that a running control plane's
    locks or queued messages cannot leak into tests."""
    var_dir = Path(django_settings.VAR_DIR).resolve()
    overrides: dict[str, Any] = {
        "PASSWORD_HASHERS": ["django.contrib.auth.hashers.MD5PasswordHasher"]
    }
    cache = django_settings.CACHES["default"]
    if str(cache.get("LOCATION", "")).startswith(str(var_dir)):
        overrides["CACHES"] = {
            "default": {**cache, "LOCATION": str(tmp_path_factory.mktemp("cache"))}
        }
    transport_options = dict(django_settings.CELERY_BROKER_TRANSPORT_OPTIONS)
    if django_settings.CELERY_BROKER_URL.startswith("filesystem://"):
        queue = tmp_path_factory.mktemp("broker-queue")
        control = tmp_path_factory.mktemp("broker-control")
        processed = tmp_path_factory.mktemp("broker-processed")
        transport_options.update(
            data_folder_in=str(queue),
            data_folder_out=str(queue),
            control_folder=str(control),
            processed_folder=str(processed),
        )
        overrides["CELERY_BROKER_TRANSPORT_OPTIONS"] = transport_options
    from controlplane.celery import app as celery_app

    previous_options = celery_app.conf.broker_transport_options
    celery_app.conf.broker_transport_options = transport_options
    with override_settings(**overrides):
        yield
    celery_app.conf.broker_transport_options = previous_options


@pytest.fixture
def allow_loopback_outbound(settings: Any) -> None:
    """Opt in to calling servers on 127.0.0.1 (the tests' own receivers and Prometheus):
    the outbound guard (apps/core/netguard.py) refuses loopback by default, and chat kinds
    with a fixed platform host accept only that host."""
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    for kind in ("SLACK", "FEISHU", "DINGTALK", "WECOM", "TEAMS"):
        setattr(settings, f"CHAT_{kind}_HOSTS", ["127.0.0.1"])


@pytest.fixture(autouse=True)
def _auth_failures_forgotten() -> None:
    """Each test starts with no failed logins or API-token attempts on record, so that one
    test's bad credentials cannot get another's requests throttled."""
    from apps.accounts.throttling import failures_forget

    failures_forget()


@pytest.fixture(autouse=True)
def _toggle_read_caches_forgotten() -> None:
    """Each test starts with empty toggle read caches (process memory and fresh keys in the
    shared cache): team ids repeat across tests, their versions and tokens must not."""
    from apps.toggles.readcache import forget

    forget()


@pytest.fixture(autouse=True)
def _log_ingest_caches_emptied() -> None:
    """Each test starts with no ingest token or log stream remembered by the process: the
    rows of another test's (rolled back) transaction may share their ids."""
    from apps.logs.selectors import ingest_tokens_forget
    from apps.logs.storage.sql import known_streams

    ingest_tokens_forget()
    known_streams.clear()


@dataclass
class Roster:
    """A team with one member per role, a stranger (admin of another team) and a superuser."""

    team: Any
    other_team: Any
    viewer: Any
    operator: Any
    admin: Any
    outsider: Any
    superuser: Any


@pytest.fixture
def roster(db: None) -> Roster:
    from apps.accounts.models import Role
    from tests.factories.accounts import MembershipFactory, TeamFactory, UserFactory

    team, other_team = TeamFactory(slug="alpha"), TeamFactory(slug="bravo")
    members = {}
    for role in (Role.VIEWER, Role.OPERATOR, Role.ADMIN):
        members[role] = MembershipFactory(
            user=UserFactory(username=f"alpha-{role}"), team=team, role=role
        ).user
    outsider = MembershipFactory(
        user=UserFactory(username="bravo-admin"), team=other_team, role=Role.ADMIN
    ).user
    superuser = UserFactory(username="root", is_superuser=True, is_staff=True)
    return Roster(
        team=team,
        other_team=other_team,
        viewer=members[Role.VIEWER],
        operator=members[Role.OPERATOR],
        admin=members[Role.ADMIN],
        outsider=outsider,
        superuser=superuser,
    )
