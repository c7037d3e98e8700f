"""The console's audit page: the entries the audit API shows the same user, filters,
keyset paging, each entry's field-level diff (escaped) and a fixed query count."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.accounts.models import Role
from apps.audit.models import AuditEntry
from apps.console import selectors
from apps.console.selectors import DiffLine, audit_diff
from tests.factories.accounts import MembershipFactory
from tests.factories.audit import AuditEntryFactory
from tests.factories.inventory import DeploymentFactory
from tests.unit.console import logged_in

pytestmark = pytest.mark.django_db


def _listed(body: str) -> list[str]:
    """The object names of the entries on a page, in order."""
    return [cell.split("<")[0].strip() for cell in body.split('<td class="audit-object">')[1:]]


def test_audit__anonymous__redirects_to_login():
    response = Client().get("/console/audit/")
    assert response.status_code == 302
    assert response["Location"].startswith("/console/login/")


def test_audit__viewer__own_team_entries_never_another_teams(roster):
    AuditEntryFactory(team=roster.team, object_repr="ours")
    AuditEntryFactory(team=roster.other_team, object_repr="theirs")
    AuditEntryFactory(team=None, actor=roster.outsider, actor_repr="bravo-admin",
                      object_repr="their-teamless")  # fmt: skip
    body = logged_in(roster.viewer).get("/console/audit/").content.decode()
    assert _listed(body) == ["ours"]
    assert "theirs" not in body
    # Naming the other team in the filter shows nothing of it either.
    body = logged_in(roster.viewer).get(f"/console/audit/?team={roster.other_team.pk}")
    assert "theirs" not in body.content.decode()


def test_audit__same_entries_as_the_api_for_each_user(roster, client_for):
    AuditEntryFactory(team=roster.team)
    AuditEntryFactory(team=roster.other_team)
    AuditEntryFactory(team=None, actor=roster.viewer, actor_repr="alpha-viewer")
    AuditEntryFactory(team=None, actor=roster.outsider, actor_repr="bravo-admin")
    AuditEntryFactory(team=None)
    for user in (roster.viewer, roster.operator, roster.outsider, roster.superuser):
        api = client_for(user).get("/api/v1/audit/?limit=100").json()["results"]
        console = selectors.audit_entries_visible(user=user)
        assert sorted(console.values_list("pk", flat=True)) == sorted(r["id"] for r in api)


def test_audit__own_teamless_action__visible_to_its_actor(roster):
    AuditEntryFactory(team=None, actor=roster.viewer, actor_repr="alpha-viewer",
                      object_repr="my-token")  # fmt: skip
    assert _listed(logged_in(roster.viewer).get("/console/audit/").content.decode()) == ["my-token"]
    assert _listed(logged_in(roster.operator).get("/console/audit/").content.decode()) == []


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("actor=alice", ["by-alice"], id="actor"),
        pytest.param("action=create", ["created"], id="action"),
        pytest.param("object_type=alerts.silence", ["silence"], id="object-type"),
        pytest.param("since=2030-01-01T00:00", [], id="since"),
        pytest.param("until=2000-01-01T00:00", [], id="until"),
    ],
)
def test_audit__filters__narrow(roster, query, expected):
    AuditEntryFactory(team=roster.team, actor_repr="alice", object_repr="by-alice")
    AuditEntryFactory(team=roster.team, action="create", object_repr="created")
    AuditEntryFactory(team=roster.team, object_type="alerts.silence", object_repr="silence")
    body = logged_in(roster.viewer).get(f"/console/audit/?{query}").content.decode()
    assert _listed(body) == expected


def test_audit__time_range__entries_inside_only(roster):
    old = AuditEntryFactory(team=roster.team, object_repr="old")
    AuditEntryFactory(team=roster.team, object_repr="new")
    AuditEntry.objects.filter(pk=old.pk).update(timestamp=timezone.now() - timedelta(days=2))
    since = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    until = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    client = logged_in(roster.viewer)
    assert _listed(client.get(f"/console/audit/?since={since}").content.decode()) == ["new"]
    assert _listed(client.get(f"/console/audit/?until={until}").content.decode()) == ["old"]


def test_audit__object_type_choices__only_visible_types(roster):
    AuditEntryFactory(team=roster.team, object_type="inventory.deployment")
    AuditEntryFactory(team=roster.other_team, object_type="accounts.apitoken")
    body = logged_in(roster.viewer).get("/console/audit/").content.decode()
    assert '<option value="inventory.deployment">' in body
    assert "accounts.apitoken" not in body


def _older_link(body: str) -> str:
    """The "Older entries" link of a page, "" on the last page."""
    if 'rel="next"' not in body:
        return ""
    return body.split('rel="next"')[0].rsplit('href="', 1)[-1].split('"')[0].replace("&amp;", "&")


def test_audit__paging__pages_of_50_newest_first_without_overlap(roster):
    base = timezone.now()
    for i, entry in enumerate(AuditEntryFactory.create_batch(120, team=roster.team)):
        # Runs of seven entries share a time, some across page boundaries: the id orders them.
        AuditEntry.objects.filter(pk=entry.pk).update(timestamp=base + timedelta(seconds=i // 7))
    AuditEntryFactory(team=roster.other_team)
    client = logged_in(roster.viewer)
    url = f"/console/audit/?team={roster.team.pk}"
    seen: list[str] = []
    sizes = []
    while url and len(sizes) < 5:
        body = client.get(url).content.decode()
        sizes.append(len(_listed(body)))
        seen += _listed(body)
        older = _older_link(body)
        assert not older or older.startswith(f"?team={roster.team.pk}&cursor=")
        url = "/console/audit/" + older if older else ""
    assert sizes == [50, 50, 20]
    assert seen == list(
        AuditEntry.objects.filter(team=roster.team)
        .order_by("-timestamp", "-id")
        .values_list("object_repr", flat=True)
    )


def test_audit__unreadable_cursor__newest_page(roster):
    AuditEntryFactory(team=roster.team, object_repr="only")
    for cursor in ("nonsense", "99999999999999999999999-1", "-5"):
        body = logged_in(roster.viewer).get(f"/console/audit/?cursor={cursor}").content.decode()
        assert _listed(body) == ["only"]


def test_audit_page__size__bounded():
    AuditEntryFactory.create_batch(60)
    page = selectors.audit_page(entries=AuditEntry.objects.all(), size=10_000)
    assert len(page.rows) == selectors.AUDIT_PAGE_SIZE
    assert page.next_cursor


def _page_queries(user) -> tuple[int, int]:
    user = type(user).objects.get(pk=user.pk)  # a new request: roles not cached
    client = logged_in(user)
    with CaptureQueriesContext(connection) as ctx:
        body = client.get("/console/audit/").content.decode()
    return len(ctx.captured_queries), len(_listed(body))


def test_audit__5_vs_50_entries__same_query_count(roster):
    AuditEntryFactory.create_batch(5, team=roster.team)
    small, n_small = _page_queries(roster.viewer)
    AuditEntryFactory.create_batch(45, team=roster.team)
    large, n_large = _page_queries(roster.viewer)
    assert (n_small, n_large) == (5, 50)
    assert small == large


def test_audit_diff__changed_added_removed_notes_and_object_keys():
    lines = audit_diff(
        {
            "max_replicas": [4, 8],
            "name": [None, "chat"],
            "cluster": [3, None],
            "labels": [{"tier": "gold", "region": "eu"}, {"tier": "gold", "zone": "b"}],
            "reason": "incident 7",
        }
    )
    assert lines == [
        DiffLine("cluster", "removed", old="3"),
        DiffLine(
            "labels",
            "changed",
            old='{"region": "eu", "tier": "gold"}',
            new='{"tier": "gold", "zone": "b"}',
            keys=(DiffLine("region", "removed", old='"eu"'), DiffLine("zone", "added", new='"b"')),
        ),
        DiffLine("max_replicas", "changed", old="4", new="8"),
        DiffLine("name", "added", new='"chat"'),
        DiffLine("reason", "note", new='"incident 7"'),
    ]


def test_audit__entry__diff_rendered_escaped(roster):
    AuditEntryFactory(
        team=roster.team,
        changes={
            "max_replicas": [4, 8],
            "labels": [{"a": "1"}, {"a": "1", "b": "2"}],
            "reason": "<script>alert(1)</script>",
        },
    )
    body = logged_in(roster.viewer).get("/console/audit/").content.decode()
    assert "<summary>3 fields</summary>" in body
    assert "<del>4</del>" in body
    assert "<ins>8</ins>" in body
    assert '<code>labels.b</code> <span class="diff-kind">added</span>' in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<script>alert(1)" not in body


def test_audit__pause_through_console__entry_with_diff(roster):
    deployment = DeploymentFactory(team=roster.team, name="chat-a")
    operator = logged_in(roster.operator)
    operator.post(f"/console/deployments/{deployment.pk}/pause/",
                  {"paused": "true", "reason": "incident 42"})  # fmt: skip
    body = logged_in(roster.viewer).get("/console/audit/?actor=alpha-operator").content.decode()
    row = body.split('<td class="audit-object">')[1]
    assert "<code>pause</code>" in body
    assert '<code>paused</code> <span class="diff-kind">changed</span>' in row
    assert "<del>false</del>" in row
    assert "<ins>true</ins>" in row
    assert "<ins>&quot;incident 42&quot;</ins>" in row


def test_audit__viewer_role__page_shown(roster):
    viewer = MembershipFactory(team=roster.team, role=Role.VIEWER).user
    assert logged_in(viewer).get("/console/audit/").status_code == 200
