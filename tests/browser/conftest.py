"""Browser-test fixtures: Debian's Chromium driven by Playwright (sync API) against Django's
live server, logged-in pages, an axe-core check and screenshots as test artefacts.

A new console page gets its browser test from these: ``console_page(user)`` gives a logged-in
Playwright page, ``axe_clean(page)`` checks it and ``screenshot(page, name)`` keeps a picture
under ``$CONTROLPLANE_VAR_DIR/artefacts/browser/``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.integration.fleets import (  # noqa: F401 - shared fixtures
    chat_simulator,
    prometheus_binary,
)
from tests.servers import binary_or_skip

# Playwright's sync API runs an event loop in the test's thread, which makes Django refuse
# database access from it ("async context"); the test's own ORM calls are synchronous.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct-horse-battery"  # UserFactory's
# Impacts axe-core reports that fail a page.
BLOCKING_IMPACTS = {"serious", "critical"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's chromium (Playwright cannot download its own browser here)."""
    found = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    return binary_or_skip(found, "chromium", "chromium")


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def artefacts_dir() -> Path:
    """Where screenshots go: ``$CONTROLPLANE_VAR_DIR/artefacts/browser`` (kept after the run,
    never committed)."""
    path = Path(settings.VAR_DIR) / "artefacts" / "browser"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def screenshot(artefacts_dir: Path) -> Callable[[Any, str], Path]:
    def take(page: Any, name: str) -> Path:
        path = artefacts_dir / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def console_page(browser: Any, live_server: Any) -> Iterator[Callable[..., Any]]:
    """``console_page(user)``: a new browser page logged in as ``user`` through the
    console's login form, on the overview. Confirmation dialogs are accepted."""
    contexts: list[Any] = []

    def open_as(user: Any, *, color_scheme: str = "light") -> Any:
        context = browser.new_context(
            viewport={"width": 1440, "height": 900}, color_scheme=color_scheme
        )
        contexts.append(context)
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())
        page.goto(f"{live_server.url}/console/")
        page.get_by_label("Username").fill(user.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{live_server.url}/console/")
        return page

    yield open_as
    for context in contexts:
        context.close()


def axe_serious(page: Any) -> list[str]:
    """The serious and critical axe-core violations of the page, one line each."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v.get("impact") in BLOCKING_IMPACTS
    ]
