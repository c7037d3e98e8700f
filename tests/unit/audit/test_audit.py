"""Every change through the API or the admin leaves one audit entry saying who, what, where."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from apps.accounts.models import ApiToken
from apps.audit.models import AuditEntry
from apps.inventory.models import Cluster
from tests.factories.audit import AuditEntryFactory
from tests.factories.inventory import ClusterFactory, DeploymentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(roster, client_for):
    client = client_for(roster.operator)
    client.defaults["HTTP_X_REQUEST_ID"] = "test-req-1"
    client.defaults["REMOTE_ADDR"] = "203.0.113.7"
    return client


def test_update__max_replicas__one_entry_with_exact_diff_and_context(roster, operator):
    deployment = DeploymentFactory(team=roster.team, max_replicas=4)
    response = operator.patch(f"/api/v1/deployments/{deployment.pk}/", {"max_replicas": 8})
    assert response.status_code == 200
    assert response["X-Request-ID"] == "test-req-1"

    entry = AuditEntry.objects.get()
    assert entry.changes == {"max_replicas": [4, 8]}
    assert (entry.action, entry.object_type, entry.object_id) == (
        "update",
        "inventory.deployment",
        str(deployment.pk),
    )
    assert (entry.actor, entry.actor_repr, entry.team) == (
        roster.operator,
        "alpha-operator",
        roster.team,
    )
    assert (entry.source, entry.source_ip, entry.request_id) == ("api", "203.0.113.7", "test-req-1")
    assert entry.object_repr == deployment.name


@pytest.mark.parametrize(
    ("change", "status"),
    [
        pytest.param({"max_replicas": 4}, 200, id="update-nothing-changed"),
        pytest.param({"min_replicas": 9}, 400, id="failed-write"),
    ],
)
def test_update_nothing_changed_or_failed_write__no_entry(roster, operator, change, status):
    deployment = DeploymentFactory(team=roster.team, max_replicas=4)
    response = operator.patch(f"/api/v1/deployments/{deployment.pk}/", change)
    assert response.status_code == status
    assert not AuditEntry.objects.exists()


def test_create__entry_with_new_values_and_null_old(roster, operator):
    response = operator.post(
        "/api/v1/models/", {"team": roster.team.pk, "name": "org/m", "version": "v3"}
    )
    assert response.status_code == 201
    entry = AuditEntry.objects.get()
    assert entry.action == "create"
    assert entry.object_id == str(response.json()["id"])
    assert entry.changes["version"] == [None, "v3"]
    assert entry.changes["team"] == [None, roster.team.pk]
    assert entry.request_id == "test-req-1"


def test_delete__entry_with_old_values_and_null_new(roster, operator):
    cluster = ClusterFactory(team=roster.team, name="old-pool")
    assert operator.delete(f"/api/v1/clusters/{cluster.pk}/").status_code == 204
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.object_id, entry.object_repr) == (
        "delete",
        str(cluster.pk),
        "old-pool",
    )
    assert entry.changes["name"] == ["old-pool", None]


def test_request_id__malformed_header__replaced_by_generated_id(roster, client_for):
    client = client_for(roster.operator)
    deployment = DeploymentFactory(team=roster.team)
    response = client.patch(
        f"/api/v1/deployments/{deployment.pk}/",
        {"max_replicas": 9},
        HTTP_X_REQUEST_ID="bad id with spaces",
    )
    generated = response["X-Request-ID"]
    assert generated != "bad id with spaces"
    assert len(generated) == 32
    assert AuditEntry.objects.get().request_id == generated


def test_admin_change_form__entry_with_source_admin(roster):
    cluster = ClusterFactory(team=roster.team, name="gke", description="")
    browser = Client(HTTP_X_REQUEST_ID="admin-req-1", REMOTE_ADDR="198.51.100.2")
    browser.force_login(roster.superuser)
    form = {
        "team": roster.team.pk,
        "name": "gke",
        "kind": "kubernetes",
        "description": "edited in the console",
        "kubeconfig_path": cluster.kubeconfig_path,
        "kube_context": cluster.kube_context,
        "default_namespace": cluster.default_namespace,
        "aws_credentials_source": "",
        "labels": "{}",
        "_save": "Save",
    }
    response = browser.post(f"/admin/inventory/cluster/{cluster.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Cluster.objects.get(pk=cluster.pk).description == "edited in the console"
    entry = AuditEntry.objects.get()
    assert entry.changes == {"description": ["", "edited in the console"]}
    assert (entry.source, entry.source_ip, entry.request_id) == (
        "admin",
        "198.51.100.2",
        "admin-req-1",
    )
    assert entry.actor == roster.superuser


def test_admin_delete__entry_with_source_admin(roster):
    cluster = ClusterFactory(team=roster.team)
    browser = Client()
    browser.force_login(roster.superuser)
    response = browser.post(f"/admin/inventory/cluster/{cluster.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.source, entry.object_id) == ("delete", "admin", str(cluster.pk))


def test_token_lifecycle__audited_without_secret_or_hash(client_for, roster):
    client = client_for(roster.viewer)
    issued = client.post("/api/v1/tokens/", {"name": "ci"}).json()
    assert client.post(f"/api/v1/tokens/{issued['id']}/revoke/").status_code == 200
    key_hash = ApiToken.objects.get(pk=issued["id"]).key_hash
    entries = list(AuditEntry.objects.filter(object_type="accounts.apitoken").order_by("id"))
    assert [(e.action, e.verb) for e in entries] == [("create", ""), ("action", "revoke")]
    assert list(entries[1].changes) == ["revoked_at"]
    dumped = json.dumps([e.changes for e in entries]) + " ".join(e.object_repr for e in entries)
    assert issued["token"] not in dumped
    assert key_hash not in dumped
    assert "key_hash" not in dumped
    listed = json.dumps(client.get("/api/v1/audit/?object_type=accounts.apitoken").json())
    assert issued["token"] not in listed
    assert key_hash not in listed


def test_readiness_change__audited_under_the_deployments_team(roster, operator):
    deployment = DeploymentFactory(team=roster.team)
    url = f"/api/v1/deployments/{deployment.pk}/readiness/"
    assert operator.patch(url, {"version_confirmed": True}).status_code == 200
    entry = AuditEntry.objects.get()
    assert (entry.object_type, entry.team, entry.action) == (
        "inventory.deploymentreadiness",
        roster.team,
        "create",
    )
    assert entry.changes["version_confirmed"] == [None, True]


# --- the audit API ------------------------------------------------------------------------


def test_audit_api__filter_by_object_type_and_action(roster, operator):
    deployment = DeploymentFactory(team=roster.team, max_replicas=4)
    operator.patch(f"/api/v1/deployments/{deployment.pk}/", {"max_replicas": 8})
    operator.post("/api/v1/models/", {"team": roster.team.pk, "name": "org/m", "version": "v1"})
    operator.delete(f"/api/v1/deployments/{deployment.pk}/")

    body = operator.get("/api/v1/audit/?object_type=inventory.deployment&action=update").json()
    assert body["count"] == 1
    row = body["results"][0]
    assert row["changes"] == {"max_replicas": [4, 8]}
    assert (row["actor"], row["team"], row["object_id"], row["source"]) == (
        "alpha-operator",
        roster.team.pk,
        str(deployment.pk),
        "api",
    )
    assert row["request_id"] == "test-req-1"
    everything = operator.get("/api/v1/audit/").json()["results"]
    assert [(r["object_type"], r["action"]) for r in everything] == [
        ("inventory.deployment", "delete"),
        ("inventory.llmmodel", "create"),
        ("inventory.deployment", "update"),
    ]


def test_audit_api__other_teams_entries__invisible(roster, client_for):
    mine = AuditEntryFactory(team=roster.team)
    theirs = AuditEntryFactory(team=roster.other_team)
    viewer = client_for(roster.viewer)
    assert [r["id"] for r in viewer.get("/api/v1/audit/").json()["results"]] == [mine.pk]
    assert viewer.get(f"/api/v1/audit/{theirs.pk}/").status_code == 404
    # Another team's id answers like an unknown one (400), revealing nothing.
    assert viewer.get(f"/api/v1/audit/?team={roster.other_team.pk}").status_code == 400
    everything = client_for(roster.superuser).get("/api/v1/audit/").json()
    assert everything["count"] == 2


def test_audit_api__own_teamless_actions__visible_to_actor_only(roster, client_for):
    own = AuditEntryFactory(team=None, actor=roster.viewer, actor_repr="alpha-viewer")
    AuditEntryFactory(team=None, actor=roster.outsider, actor_repr="bravo-admin")
    rows = client_for(roster.viewer).get("/api/v1/audit/?actor=alpha-viewer").json()["results"]
    assert [r["id"] for r in rows] == [own.pk]
    assert client_for(roster.viewer).get("/api/v1/audit/?actor=bravo-admin").json()["count"] == 0


@pytest.mark.parametrize("method", ["post", "patch", "put", "delete"])
def test_audit_api__append_only__writes_405(roster, client_for, method):
    entry = AuditEntryFactory(team=roster.team)
    client = client_for(roster.superuser)
    url = "/api/v1/audit/" if method == "post" else f"/api/v1/audit/{entry.pk}/"
    assert getattr(client, method)(url, {}).status_code == 405


def test_admin_revoke_tokens__one_revoke_entry_per_live_token(roster):
    from apps.accounts.services import api_token_create, api_token_revoke

    live = api_token_create(user=roster.viewer, name="live").token
    revoked = api_token_create(user=roster.viewer, name="old").token
    api_token_revoke(token=revoked)
    browser = Client()
    browser.force_login(roster.superuser)
    response = browser.post(
        "/admin/accounts/apitoken/",
        {"action": "revoke", "_selected_action": [live.pk, revoked.pk]},
    )
    assert response.status_code == 302
    assert ApiToken.objects.get(pk=live.pk).revoked_at is not None
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.verb, entry.object_id) == ("action", "revoke", str(live.pk))
    assert (list(entry.changes), entry.source) == (["revoked_at"], "admin")
