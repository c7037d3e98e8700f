"""The deployment page's load-balancing section: the policy (or the defaults), members read
from real simulator replicas with the drains under way, each gateway's last report against
the configuration it would be served now; a members read that fails is a message, never a
500; scoping and the htmx partial."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.accounts.models import Role
from apps.autoscaling.models import ActionStatus, ScaleAction
from apps.balancing import selectors as balancing_selectors
from apps.balancing.members import Member
from apps.balancing.membership import MembershipError
from apps.balancing.models import DrainingMember, Gateway
from apps.balancing.render import nginx_binary
from apps.balancing.services import gateway_create, gateway_report_record, policy_create
from apps.balancing.spec import PolicySpec
from apps.console.balancing import deployment_balancing, drain_row, member_rows
from apps.fleetsim.exposition import serve
from tests.factories.accounts import MembershipFactory, UserFactory
from tests.factories.inventory import DeploymentFactory, SimulatedDeploymentFactory
from tests.integration.balancing.nginx import Replicas, running_replicas
from tests.servers import binary_or_skip
from tests.unit.console import logged_in

pytestmark = pytest.mark.django_db


@contextmanager
def simulator_api(chat: int) -> Iterator[Replicas]:
    """Simulator replicas of "chat" (namespace llm) listening for real, and the simulator
    API listing them (``GET /endpoints``) as ``FLEETSIM_URL``, which membership reads."""
    with running_replicas(chat) as replicas:
        server, port = serve(replicas.fleet, endpoints=replicas.server.endpoints)
        try:
            with override_settings(FLEETSIM_URL=f"http://127.0.0.1:{port}"):
                yield replicas
        finally:
            server.stop()


def balanced_chat(
    *, team: Any = None, algorithm: str = "consistent_hash", gateways: tuple[str, ...] = ("edge",)
) -> Any:
    """Simulated deployment "chat" with a policy and gateways fronting it."""
    chat = SimulatedDeploymentFactory(name="chat", **({"team": team} if team else {}))
    actor = MembershipFactory(team=chat.team, role=Role.OPERATOR).user
    policy_create(
        deployment=chat,
        actor=actor,
        algorithm=algorithm,
        hash_key="X-Session-Id",
        read_timeout_s=300,
        next_upstream_tries=3,
        limit_req_rate="20r/s",
        limit_req_burst=40,
        shed_status=503,
        weights={"chat-0": 5},
    )
    for index, name in enumerate(gateways):
        gateway_create(
            team=chat.team, name=name, actor=actor, deployments=[chat], listen_port=8080 + index
        )
    return chat


def _viewer(deployment: Any) -> Any:
    return MembershipFactory(team=deployment.team, role=Role.VIEWER).user


def _section(deployment: Any, *, htmx: bool = True) -> str:
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    response = logged_in(_viewer(deployment)).get(
        f"/console/deployments/{deployment.pk}/balancing/", **headers
    )
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def nginx_present() -> str:
    return binary_or_skip(nginx_binary(), "nginx", "nginx-light")


# ------------------------------------------------------------------ member rows (pure)


def test_member_rows__drain_of_listed_member__draining_with_its_drain():
    now = timezone.now()
    members = [
        Member(name="chat-0", address="10.0.0.1", port=8000),
        Member(name="chat-1", address="10.0.0.2", port=8000, state="loading"),
        Member(name="chat-2", address="10.0.0.3", port=8000, state="down"),
    ]
    drains = [
        DrainingMember(name="chat-1", endpoint="10.0.0.2:8000", expires_at=now),
        DrainingMember(name="chat-2", endpoint="10.0.0.3:8000", expires_at=now),
        DrainingMember(name="chat-9", endpoint="10.0.0.9:8000", expires_at=now),
    ]
    spec = PolicySpec(weights={"chat-0": 5, "10.0.0.2:8000": 3}, backups=["10.0.0.3"])
    rows = {r.name: r for r in member_rows(members=members, drains=drains, policy=spec)}
    assert [name for name in rows] == ["chat-0", "chat-1", "chat-2", "chat-9"]
    assert (rows["chat-0"].state, rows["chat-0"].weight, rows["chat-0"].drain) == (
        "serving",
        5,
        None,
    )
    assert (rows["chat-1"].state, rows["chat-1"].weight) == ("draining", 3)
    assert rows["chat-1"].drain is drains[0]
    # Discovery saying down wins: the drain is shown, the state stays what it is.
    assert (rows["chat-2"].state, rows["chat-2"].backup) == ("down", True)
    assert rows["chat-2"].drain is drains[1]
    assert (rows["chat-9"].state, rows["chat-9"].listed, rows["chat-9"].endpoint) == (
        "draining",
        False,
        "10.0.0.9:8000",
    )


# ------------------------------------------------------------------ the section's content


def test_section__gateway_reported_current_version__current(nginx_present):
    chat = balanced_chat(gateways=("edge", "backup-site"))
    members = [
        Member(name="chat-0", address="10.0.0.1", port=8000),
        Member(name="chat-1", address="10.0.0.2", port=8000),
    ]
    reads: list[str] = []

    def members_of(deployment: Any) -> list[Member]:
        reads.append(deployment.name)
        return members

    edge, other = Gateway.objects.get(name="edge"), Gateway.objects.get(name="backup-site")
    version = balancing_selectors.gateway_config(gateway=edge, members_of=members_of).sha256
    stale = balancing_selectors.gateway_config(gateway=other, members_of=members_of).sha256
    assert version
    assert stale
    applied = timezone.now()
    gateway_report_record(gateway=edge, version=version, result="applied", applied_at=applied)
    gateway_report_record(gateway=other, version="0" * 64, result="applied", applied_at=applied)
    gateway_report_record(
        gateway=other, version=stale, result="invalid", applied_at=applied, error="bad"
    )
    reads.clear()

    section = deployment_balancing(deployment=chat, members_of=members_of)

    assert reads == ["chat"]  # one read shared by the table and both gateways
    rows = {g.gateway.name: g for g in section.gateways}
    assert list(rows) == ["backup-site", "edge"]
    assert (rows["edge"].current, rows["edge"].version) == (True, version)
    assert rows["edge"].last_report.version == version
    # Its last report refused the current version: it still serves the older one.
    assert rows["backup-site"].current is False
    assert rows["backup-site"].last_report.result == "invalid"
    assert rows["backup-site"].last_applied.version == "0" * 64
    assert [m.weight for m in section.members] == [5, 1]
    assert section.algorithm_label == "Consistent hash on a request key"
    assert section.shed_label == "503 Service Unavailable"


def test_section__members_unreadable__message_and_gateways_unknown(nginx_present):
    chat = balanced_chat()

    def members_of(deployment: Any) -> list[Member]:
        raise MembershipError("simulator unreachable", retryable=True, reason="unreachable")

    section = deployment_balancing(deployment=chat, members_of=members_of)

    assert section.members == []
    assert section.members_error == "simulator unreachable (retrying later may help)"
    (gateway,) = section.gateways
    assert gateway.current is None
    assert gateway.version == ""
    assert "simulator unreachable" in gateway.errors[0]


def test_section__expired_drain__not_shown():
    chat = SimulatedDeploymentFactory(name="chat")
    now = timezone.now()
    DrainingMember.objects.create(
        deployment=chat, name="chat-0", expires_at=now - timedelta(seconds=1)
    )
    DrainingMember.objects.create(
        deployment=chat, name="chat-1", expires_at=now + timedelta(minutes=5)
    )
    members = [Member(name=f"chat-{i}", address="10.0.0.1", port=8000 + i) for i in range(2)]
    section = deployment_balancing(deployment=chat, members_of=lambda d: members, now=now)
    assert [(m.name, m.state) for m in section.members] == [
        ("chat-0", "serving"),
        ("chat-1", "draining"),
    ]
    assert section.counts == {"serving": 1, "loading": 0, "draining": 1, "down": 0}


# ------------------------------------------------------------------ the page


def test_page__simulated_replicas__members_policy_and_gateway_shown(nginx_present):
    chat = balanced_chat()
    with simulator_api(chat=2) as replicas:
        pods = sorted(e["pod"] for e in replicas.server.endpoints())
        DrainingMember.objects.create(
            deployment=chat,
            name=pods[1],
            endpoint="127.0.0.1:1",
            scale_action_id=42,
            expires_at=timezone.now() + timedelta(minutes=5),
        )
        body = _section(chat)
    assert body.lstrip().startswith('<section aria-labelledby="balancing-title"')
    assert "<html" not in body
    shown = (
        "Consistent hash on a request key",
        f"<code>PATCH /api/v1/balancing/policies/{chat.balancing_policy.pk}/</code>",
        "<code>X-Session-Id</code>",
        "20r/s, burst 40",
        "503 Service Unavailable",
        f'<tr data-member="{pods[0]}">',
        '<span class="badge member-serving">serving</span>',
        '<span class="badge member-draining">draining</span>',
        'href="/api/v1/autoscaling/actions/42/">#42</a>',
        "1 serving · 0 loading · 1 draining · 0 down",
        '<tr data-gateway="edge">',
        "no report yet",
    )
    assert [text for text in shown if text not in body] == []


def test_page__members_unreadable__200_with_the_message():
    # A Kubernetes deployment whose cluster has no credentials: discovery refuses.
    chat = DeploymentFactory(name="chat")
    body = _section(chat)
    shown = (
        'id="balancing-members-error"',
        "Members could not be read:",
        "(retrying will not help)",
        "No policy: round robin with the defaults below.",
        "No gateway fronts this deployment.",
    )
    assert [text for text in shown if text not in body] == []


def test_page__other_team__404():
    chat = SimulatedDeploymentFactory(name="chat")
    response = logged_in(UserFactory()).get(f"/console/deployments/{chat.pk}/balancing/")
    assert response.status_code == 404


def test_page__without_htmx__whole_page(nginx_present):
    chat = DeploymentFactory(name="chat")
    body = _section(chat, htmx=False)
    assert "<html" in body
    assert "chat: load balancing" in body


def test_deployment_page__loads_the_section_after_the_page():
    chat = DeploymentFactory(name="chat")
    body = logged_in(_viewer(chat)).get(f"/console/deployments/{chat.pk}/").content.decode()
    assert f'hx-get="/console/deployments/{chat.pk}/balancing/" hx-trigger="load"' in body
    # The page itself does not read members.
    assert "Members could not be read" not in body


def _queries(run: Callable[[], object]) -> int:
    with CaptureQueriesContext(connection) as captured:
        run()
    return len(captured)


def test_section__more_gateways__no_query_of_its_own_per_gateway(nginx_present):
    """Each gateway costs what rendering its configuration costs, nothing more: the last
    reports of all gateways come in a fixed number of queries."""
    members = [Member(name="chat-0", address="10.0.0.1", port=8000)]

    def members_of(deployment: Any) -> list[Member]:
        return members

    counts = []
    for gateways in (("a",), ("a", "b", "c", "d")):
        chat = balanced_chat(gateways=gateways)
        for gateway in Gateway.objects.filter(deployments=chat):
            for result in ("applied", "invalid"):
                gateway_report_record(
                    gateway=gateway, version="1" * 64, result=result, applied_at=timezone.now()
                )
        counts.append(
            _queries(partial(deployment_balancing, deployment=chat, members_of=members_of))
        )
        one = Gateway.objects.filter(deployments=chat).first()
        per_gateway = _queries(
            partial(balancing_selectors.gateway_config, gateway=one, members_of=members_of)
        )
        chat.delete()
    assert counts[1] - counts[0] == 3 * per_gateway


# ------------------------------------------------------------------ drains recorded


def drained_action(deployment: Any, record: Any, **fields: Any) -> ScaleAction:
    """A scale-down of ``deployment`` from 3 to 2 that recorded ``record`` as its drain."""
    return ScaleAction.objects.create(
        deployment=deployment,
        from_replicas=3,
        to_replicas=2,
        idempotency_key=f"drain-{ScaleAction.objects.count()}",
        status=ActionStatus.SUCCEEDED,
        drain=record,
        **fields,
    )


DRAIN_TIMED_OUT = {
    "members": [{"name": "chat-2", "endpoint": "10.0.0.3:8000", "state": "serving"}],
    "started_at": "2026-11-29T10:00:00+00:00",
    "budget_s": 120.0,
    "gateways": [
        {
            "name": "edge",
            "version": "a" * 64,
            "applied": True,
            "applied_at": "2026-11-29T10:00:02+00:00",
        },
        {"name": "west", "version": "b" * 64, "applied": False, "applied_at": None},
    ],
    "skipped": [{"name": "old", "reason": "its agent never fetched a configuration"}],
    "applied_after_s": None,
    "in_flight_done_after_s": None,
    "timed_out": True,
    "in_flight_left": {"chat-2": 3.0},
    "outcome": "removed",
}


def test_drain_row__recorded_drain__read_with_times():
    chat = SimulatedDeploymentFactory(name="chat")
    row = drain_row(drained_action(chat, DRAIN_TIMED_OUT))
    assert row.members == ["chat-2"]
    assert [(g["name"], g["applied"]) for g in row.waited] == [("edge", True), ("west", False)]
    assert row.waited[0]["applied_at"] == datetime(2026, 11, 29, 10, 0, 2, tzinfo=UTC)
    assert row.waited[1]["applied_at"] is None
    assert row.skipped[0]["name"] == "old"
    assert (row.applied_after_s, row.in_flight_done_after_s) == (None, None)
    assert (row.timed_out, row.in_flight_left, row.outcome) == (True, {"chat-2": 3.0}, "removed")


@pytest.mark.parametrize(
    "record",
    [[], "drained", {"members": "chat-2", "gateways": [1, None], "timed_out": "yes"},
     {"applied_after_s": True, "in_flight_left": [1], "gateways": [{"applied_at": "soon"}]}],
)  # fmt: skip
def test_drain_row__unexpected_record__nothing_invented(record):
    chat = SimulatedDeploymentFactory(name="chat")
    row = drain_row(drained_action(chat, record))
    assert row.members == []
    assert all(g["applied_at"] is None for g in row.waited)
    assert (row.applied_after_s, row.timed_out, row.in_flight_left, row.outcome) == (
        None,
        False,
        {},
        "",
    )


def test_section__drains__latest_first_without_drainless_actions():
    chat = SimulatedDeploymentFactory(name="chat")
    first = drained_action(chat, {**DRAIN_TIMED_OUT, "outcome": "returned", "error": "refused"})
    drained_action(chat, None)
    second = drained_action(
        chat, {**DRAIN_TIMED_OUT, "timed_out": False, "applied_after_s": 1.25,
               "in_flight_done_after_s": 4.5}
    )  # fmt: skip
    section = deployment_balancing(deployment=chat, members_of=lambda d: [])
    assert [d.action.pk for d in section.drains] == [second.pk, first.pk]
    body = logged_in(_viewer(chat)).get(f"/console/deployments/{chat.pk}/balancing/").content
    text = body.decode()
    shown = (
        f'<tr data-action="{second.pk}">',
        '<td data-field="applied-after" class="num">1.2 s</td>',
        '<td data-field="ended-after">4.5 s</td>',
        '<span class="bad">timed out</span>, still in flight: chat-2 3.0',
        "members returned to the upstreams</span>: refused",
        "old (its agent never fetched a configuration)",
        '<span class="bad">not applied</span>',
    )
    assert [fragment for fragment in shown if fragment not in text] == []
