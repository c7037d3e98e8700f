"""The deployment page's load-balancing section in a real browser: loaded after the page,
the policy, the members of real simulator replicas, a gateway that applied the current
configuration, a member being drained, a members read that fails; accessibility (light and
dark) and screenshots."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone

from apps.balancing import selectors as balancing_selectors
from apps.balancing.models import DrainingMember, Gateway
from apps.balancing.render import nginx_binary
from apps.balancing.services import gateway_report_record
from tests.browser.conftest import axe_serious
from tests.factories.accounts import MembershipFactory
from tests.servers import binary_or_skip
from tests.unit.console.test_balancing import (
    DRAIN_TIMED_OUT,
    balanced_chat,
    drained_action,
    simulator_api,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def balanced(transactional_db: None) -> Iterator[dict[str, Any]]:
    """Simulated "chat" on two real replicas with a consistent-hash policy and gateway
    "edge", which reported the configuration it is served now as applied."""
    binary_or_skip(nginx_binary(), "nginx", "nginx-light")
    chat = balanced_chat()
    with simulator_api(chat=2) as replicas:
        edge = Gateway.objects.get(name="edge")
        version = balancing_selectors.gateway_config(gateway=edge).sha256
        assert version
        edge.last_seen_at = timezone.now()
        edge.save(update_fields=["last_seen_at"])
        gateway_report_record(
            gateway=edge, version=version, result="applied", applied_at=timezone.now()
        )
        yield {
            "chat": chat,
            "version": version,
            "pods": sorted(e["pod"] for e in replicas.server.endpoints()),
            "viewer": MembershipFactory(team=chat.team, role="viewer").user,
        }


def _open(console_page: Any, user: Any, deployment: Any) -> Any:
    page = console_page(user)
    page.goto(f"{page.url}deployments/{deployment.pk}/")
    page.wait_for_selector("#balancing-policy")
    return page


def _member(page: Any, name: str) -> Any:
    return page.locator(f'#balancing-members tr[data-member="{name}"]')


def test_section__policy_members_gateway_shown_accessible(console_page, balanced, screenshot):
    page = _open(console_page, balanced["viewer"], balanced["chat"])
    policy = page.locator("#balancing-policy")
    assert policy.locator('[data-field="algorithm"]').inner_text() == (
        "Consistent hash on a request key"
    )
    assert policy.locator('[data-field="hash-key"]').inner_text() == "X-Session-Id"
    assert policy.locator('[data-field="limit"]').inner_text() == "20r/s, burst 40"
    assert policy.locator('[data-field="shed"]').inner_text() == (
        "503 Service Unavailable, Retry-After 5 s"
    )
    first, second = balanced["pods"]
    assert _member(page, first).locator('[data-field="state"]').inner_text() == "serving"
    assert _member(page, second).locator('[data-field="state"]').inner_text() == "serving"
    assert _member(page, first).locator("td.num").inner_text() == "5"  # the policy's weight
    edge = page.locator('#balancing-gateways tr[data-gateway="edge"]')
    assert edge.locator('[data-field="version"]').inner_text() == balanced["version"][:12]
    assert edge.locator('[data-field="result"]').inner_text() == "applied"
    assert edge.locator('[data-field="current"]').inner_text() == "yes"
    assert edge.locator('[data-field="seen"] time').count() == 1
    assert axe_serious(page) == []
    screenshot(page, "deployment-balancing")
    page.emulate_media(color_scheme="dark")
    assert axe_serious(page) == []


def test_member_draining__shown_draining_with_its_drain(console_page, balanced, screenshot):
    chat = balanced["chat"]
    first, second = balanced["pods"]
    DrainingMember.objects.create(
        deployment=chat,
        name=second,
        endpoint="127.0.0.1:1",
        scale_action_id=7,
        expires_at=timezone.now() + timedelta(minutes=5),
    )
    action = drained_action(
        chat,
        {**DRAIN_TIMED_OUT, "timed_out": False, "in_flight_done_after_s": 2.5, "outcome": ""},
    )
    page = _open(console_page, balanced["viewer"], chat)
    row = _member(page, second)
    assert row.locator('[data-field="state"]').inner_text() == "draining"
    drain = row.locator('[data-field="drain"]')
    assert drain.inner_text().startswith("since ")
    assert drain.locator("time").count() == 2  # since, and the latest it lasts
    assert drain.get_by_role("link", name="#7").get_attribute("href") == (
        "/api/v1/autoscaling/actions/7/"
    )
    assert _member(page, first).locator('[data-field="state"]').inner_text() == "serving"
    assert (
        page.locator("#balancing-counts")
        .inner_text()
        .startswith("1 serving · 0 loading · 1 draining · 0 down.")
    )
    drains = page.locator(f'#balancing-drains tr[data-action="{action.pk}"]')
    assert drains.locator('[data-field="members"]').inner_text() == "chat-2"
    assert drains.locator('[data-field="ended-after"]').inner_text() == "2.5 s"
    assert drains.locator('[data-field="outcome"]').inner_text() == "under way"
    waited = drains.locator('[data-field="waited"]').inner_text()
    assert waited.startswith("edge: applied ")
    assert waited.endswith("; west: not applied")
    assert axe_serious(page) == []
    screenshot(page, "deployment-balancing-draining")


def test_members_unreadable__message_not_an_error_page(console_page, balanced):
    with override_settings(FLEETSIM_URL="http://127.0.0.1:9"):  # nothing listens there
        page = _open(console_page, balanced["viewer"], balanced["chat"])
        error = page.locator("#balancing-members-error")
        assert error.inner_text().startswith("Members could not be read: ")
        assert "(retrying later may help)" in error.inner_text()
        current = page.locator('#balancing-gateways tr[data-gateway="edge"] [data-field="current"]')
        assert current.inner_text().startswith("unknown: members: ")
        assert axe_serious(page) == []
