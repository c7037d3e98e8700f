"""Cluster credentials are the team's: a stored (encrypted, write-only) kubeconfig or AWS
key, or a kubeconfig file in the team's allowed directory. The control plane's own identity
(in-cluster service account, host files, the AWS default chain, environment, profiles, a
role assumed with those) is a superuser's choice only."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from django.db import connection

from apps.audit.models import AuditEntry
from apps.inventory.models import Cluster
from tests.factories.inventory import ClusterFactory, kubeconfig_document

pytestmark = pytest.mark.django_db

URL = "/api/v1/clusters/"
KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.fixture
def operator(roster, client_for):
    return client_for(roster.operator)


@pytest.fixture
def superuser(roster, client_for):
    return client_for(roster.superuser)


@pytest.fixture
def allowed_dir(tmp_path: Path, settings) -> Path:
    """KUBECONFIG_ALLOWED_DIRS with a directory for each roster team."""
    root = tmp_path / "kubeconfigs"
    for team in ("alpha", "bravo"):
        (root / team).mkdir(parents=True)
        (root / team / "config").write_text(kubeconfig_document(context="prod"))
    settings.KUBECONFIG_ALLOWED_DIRS = [str(root)]
    return root


def _kube(roster, **fields):
    return {"team": roster.team.pk, "name": "gpu-pool", "kind": "kubernetes", **fields}


def _aws(roster, **fields):
    return {
        "team": roster.team.pk,
        "name": "aws-east",
        "kind": "aws",
        "aws_region": "us-east-1",
        **fields,
    }


def _error(response, field: str) -> str:
    assert response.status_code == 400, response.content
    return " ".join(response.json()["errors"][field])


# ------------------------------------------------------------ the control plane's identity


def test_cluster_create__operator_in_cluster__400_superuser_only_and_not_stored(roster, operator):
    response = operator.post(URL, _kube(roster, in_cluster=True), format="json")

    assert "Only a superuser" in _error(response, "in_cluster")
    assert not Cluster.objects.exists()


@pytest.mark.parametrize(
    "path",
    ["/proc/self/environ", "/etc/passwd", "/etc/controlplane/kubeconfig"],
)
def test_cluster_create__operator_host_path_no_allowed_dirs__400(roster, operator, path):
    response = operator.post(URL, _kube(roster, kubeconfig_path=path), format="json")

    message = _error(response, "kubeconfig_path")
    assert "Only a superuser" in message
    assert "KUBECONFIG_ALLOWED_DIRS is empty" in message
    assert not Cluster.objects.exists()


def test_cluster_create__operator_relative_path__400(roster, operator, allowed_dir):
    response = operator.post(URL, _kube(roster, kubeconfig_path="../../etc/passwd"), format="json")

    assert "absolute" in _error(response, "kubeconfig_path")
    assert not Cluster.objects.exists()


@pytest.mark.parametrize(
    "relative",
    [
        "alpha/../../../../etc/passwd",  # climbs out of the allowed directory
        "alpha/../bravo/config",  # another team's kubeconfig
        "bravo/config",
        "alpha",  # the team directory itself, not a file in it
    ],
)
def test_cluster_create__operator_path_outside_team_directory__400(
    roster, operator, allowed_dir, relative
):
    path = f"{allowed_dir}/{relative}"

    response = operator.post(URL, _kube(roster, kubeconfig_path=path), format="json")

    message = _error(response, "kubeconfig_path")
    assert f"{allowed_dir}/alpha/" in message
    assert not Cluster.objects.exists()


def test_cluster_create__operator_symlink_out_of_team_directory__400(roster, operator, allowed_dir):
    (allowed_dir / "alpha" / "to-bravo").symlink_to(allowed_dir / "bravo" / "config")
    (allowed_dir / "alpha" / "to-etc").symlink_to("/etc/passwd")

    for name in ("to-bravo", "to-etc"):
        path = str(allowed_dir / "alpha" / name)
        response = operator.post(URL, _kube(roster, kubeconfig_path=path), format="json")
        assert "Only a superuser" in _error(response, "kubeconfig_path")
    assert not Cluster.objects.exists()


def test_cluster_create__operator_path_in_team_directory__201_team_owned(
    roster, operator, allowed_dir
):
    path = str(allowed_dir / "alpha" / "config")

    response = operator.post(
        URL, _kube(roster, kubeconfig_path=path, kube_context="prod"), format="json"
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["uses_process_identity"] is False
    assert body["process_identity_approved"] is False
    assert body["credentials_problem"] == ""


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({}, "aws_credentials_source"),  # no source: the default chain
        ({"aws_credentials_source": "default-chain"}, "aws_credentials_source"),
        ({"aws_credentials_source": "environment"}, "aws_credentials_source"),
        ({"aws_credentials_source": "profile", "aws_profile": "prod"}, "aws_credentials_source"),
        (
            {
                "aws_credentials_source": "assume-role",
                "aws_role_arn": "arn:aws:iam::123456789012:role/anything",
            },
            "aws_access_key_id",
        ),
    ],
)
def test_cluster_create__operator_aws_process_credentials__400(roster, operator, fields, field):
    response = operator.post(URL, _aws(roster, **fields), format="json")

    message = _error(response, field)
    assert "Only a superuser" in message
    assert "access key" in message
    assert not Cluster.objects.exists()


@pytest.mark.parametrize(
    ("body", "identity"),
    [
        ({"kind": "kubernetes", "in_cluster": True}, True),
        ({"kind": "kubernetes", "kubeconfig_path": "/etc/controlplane/kubeconfig"}, True),
        ({"kind": "aws", "aws_region": "us-east-1"}, True),
    ],
)
def test_cluster_create__superuser_process_identity__201_approved(
    roster, superuser, body, identity
):
    response = superuser.post(
        URL, {"team": roster.team.pk, "name": "shared", **body}, format="json"
    )

    assert response.status_code == 201, response.content
    assert response.json()["uses_process_identity"] is identity
    assert response.json()["process_identity_approved"] is True
    assert response.json()["credentials_problem"] == ""


def test_cluster_update__operator_on_approved_cluster__descriptive_fields_only(roster, operator):
    cluster = ClusterFactory(
        team=roster.team,
        kind="aws",
        kube_context="",
        credentials={},
        aws_region="us-east-1",
        aws_credentials_source="default-chain",
        process_identity_approved=True,
    )
    url = f"{URL}{cluster.pk}/"

    described = operator.patch(url, {"description": "shared account", "labels": {"a": "b"}})
    moved = operator.patch(url, {"aws_region": "eu-west-1"})
    profiled = operator.patch(
        url, {"aws_credentials_source": "profile", "aws_profile": "admin"}, format="json"
    )
    to_other_team = operator.patch(url, {"team": roster.other_team.pk})

    assert described.status_code == 200, described.content
    assert described.json()["process_identity_approved"] is True
    assert "Only a superuser" in _error(moved, "aws_credentials_source")
    assert "Only a superuser" in _error(profiled, "aws_credentials_source")
    assert to_other_team.status_code == 400
    cluster.refresh_from_db()
    assert (cluster.aws_region, cluster.aws_credentials_source) == ("us-east-1", "default-chain")
    assert cluster.team_id == roster.team.pk
    assert cluster.process_identity_approved is True


# The kubeconfig's server is on 127.0.0.1: opt in to loopback destinations.
@pytest.mark.usefixtures("allow_loopback_outbound")
def test_cluster_update__operator_switches_approved_cluster_to_team_key__approval_dropped(
    roster, operator
):
    cluster = ClusterFactory(
        team=roster.team,
        kind="kubernetes",
        kube_context="",
        credentials={},
        in_cluster=True,
        process_identity_approved=True,
    )

    response = operator.patch(
        f"{URL}{cluster.pk}/",
        {"in_cluster": False, "kubeconfig": kubeconfig_document(context="prod")},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert response.json()["uses_process_identity"] is False
    cluster.refresh_from_db()
    assert cluster.process_identity_approved is False
    assert cluster.credentials["kubeconfig"]


def test_cluster_update__operator_on_unapproved_legacy_cluster__flagged_and_stays_refused(
    roster, operator
):
    legacy = ClusterFactory(team=roster.team, credentials={}, kube_context="", in_cluster=True)
    url = f"{URL}{legacy.pk}/"

    listed = operator.get(url).json()
    described = operator.patch(url, {"description": "kept"})

    assert listed["uses_process_identity"] is True
    assert "no superuser approved" in listed["credentials_problem"]
    assert described.status_code == 200
    assert "no superuser approved" in described.json()["credentials_problem"]


def test_cluster_update__viewer_and_outsider__cannot_write(roster, client_for):
    cluster = ClusterFactory(team=roster.team)
    body = {"kubeconfig": kubeconfig_document(context="prod")}

    viewer = client_for(roster.viewer).patch(f"{URL}{cluster.pk}/", body, format="json")
    outsider = client_for(roster.outsider).patch(f"{URL}{cluster.pk}/", body, format="json")

    assert viewer.status_code == 403
    assert outsider.status_code == 404


# ------------------------------------------------------------------------- team secrets


def test_cluster_create__operator_access_key__stored_encrypted_never_returned(roster, operator):
    response = operator.post(
        URL,
        _aws(roster, aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET),
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["aws_credentials_source"] == "access-key"
    assert body["credentials_configured"] is True
    assert body["uses_process_identity"] is False
    assert body["credentials_changed_at"]
    listed = (
        operator.get(URL).content.decode() + operator.get(f"{URL}{body['id']}/").content.decode()
    )
    for text in (response.content.decode(), listed):
        assert KEY_ID not in text
        assert SECRET not in text
    with connection.cursor() as cursor:
        cursor.execute("SELECT credentials FROM inventory_cluster WHERE id = %s", [body["id"]])
        raw = cursor.fetchone()[0]
    assert raw.startswith("fernet:")
    assert SECRET not in raw
    assert Cluster.objects.get(pk=body["id"]).credentials["aws_secret_access_key"] == SECRET


def test_cluster_create__operator_assume_role_with_team_key__201(roster, operator):
    response = operator.post(
        URL,
        _aws(
            roster,
            aws_credentials_source="assume-role",
            aws_role_arn="arn:aws:iam::123456789012:role/llm-scaler",
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET,
        ),
        format="json",
    )

    assert response.status_code == 201, response.content
    assert response.json()["uses_process_identity"] is False


# The kubeconfig's server is on 127.0.0.1: opt in to loopback destinations.
@pytest.mark.usefixtures("allow_loopback_outbound")
def test_cluster_update__secret_changed__audit_says_only_that(roster, operator):
    cluster = ClusterFactory(team=roster.team)

    response = operator.patch(
        f"{URL}{cluster.pk}/",
        {"kubeconfig": kubeconfig_document(context="prod", token="rotated-token-123")},
        format="json",
    )

    assert response.status_code == 200, response.content
    entry = AuditEntry.objects.filter(object_type="inventory.cluster", action="update").get()
    assert set(entry.changes) == {"credentials_changed_at"}
    assert "rotated-token-123" not in json.dumps(entry.changes)


def test_cluster_update__kind_changed_without_new_secret__old_secret_dropped(roster, superuser):
    cluster = ClusterFactory(team=roster.team)

    response = superuser.patch(
        f"{URL}{cluster.pk}/",
        {"kind": "aws", "kube_context": "", "aws_region": "us-east-1"},
        format="json",
    )

    assert response.status_code == 200, response.content
    cluster.refresh_from_db()
    assert cluster.credentials == {}


def test_cluster_update__access_key_id_without_secret__400(roster, operator):
    response = operator.post(URL, _aws(roster, aws_access_key_id=KEY_ID), format="json")

    assert "together" in _error(response, "aws_access_key_id")


def _doc(user: dict | None = None, cluster: dict | None = None) -> str:
    return json.dumps(
        {
            "clusters": [{"name": "c", "cluster": cluster or {"server": "https://k8s:6443"}}],
            "users": [{"name": "u", "user": user or {"token": "t"}}],
            "contexts": [{"name": "prod", "context": {"cluster": "c", "user": "u"}}],
        }
    )


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        (_doc(user={"exec": {"command": "sh", "args": ["-c", "id"]}}), "exec"),
        (_doc(user={"auth-provider": {"name": "gcp"}}), "auth-provider"),
        (_doc(user={"tokenFile": "/var/run/secrets/token"}), "tokenFile"),
        (
            _doc(user={"client-certificate": "/etc/pki/c.pem", "client-key": "/etc/pki/k"}),
            "client-certificate",
        ),
        (
            _doc(cluster={"server": "https://k8s", "certificate-authority": "/etc/ca.pem"}),
            "certificate-authority",
        ),
        (_doc(user={"something-new": "x"}), "inline fields only"),
        (_doc().replace('"prod"', '"staging"'), "no context 'prod'"),
        ("clusters: [unclosed", "not valid YAML"),
        ("a: &x [1]\nb: *x\n", "aliases"),
        ("[" * 5000, "nested too deeply"),
        ("just text", "not a mapping"),
    ],
)
def test_cluster_create__unsafe_or_broken_kubeconfig__400_on_kubeconfig(
    roster, operator, document, fragment
):
    response = operator.post(
        URL, _kube(roster, kubeconfig=document, kube_context="prod"), format="json"
    )

    assert fragment in _error(response, "kubeconfig")
    assert not Cluster.objects.exists()


def test_cluster_update__context_not_in_stored_kubeconfig__400_on_kube_context(roster, operator):
    cluster = ClusterFactory(team=roster.team)

    response = operator.patch(f"{URL}{cluster.pk}/", {"kube_context": "elsewhere"})

    assert "no context 'elsewhere'" in _error(response, "kube_context")


def test_cluster_update__superuser_path_outside_allowed_dirs__approved(roster, superuser, tmp_path):
    path = tmp_path / "host-kubeconfig"
    path.write_text(kubeconfig_document(context="prod"))
    cluster = ClusterFactory(team=roster.team)

    response = superuser.patch(f"{URL}{cluster.pk}/", {"kubeconfig_path": str(path)}, format="json")

    assert response.status_code == 200, response.content
    cluster.refresh_from_db()
    assert cluster.credentials == {}  # the stored kubeconfig is no longer used
    assert cluster.process_identity_approved is True
    assert os.path.exists(cluster.kubeconfig_path)


def test_admin_change__superuser_sets_in_cluster__approved_and_secret_never_shown(roster):
    from django.test import Client

    cluster = ClusterFactory(team=roster.team, name="gke", kube_context="")
    browser = Client()
    browser.force_login(roster.superuser)
    page = browser.get(f"/admin/inventory/cluster/{cluster.pk}/change/")
    form = {
        "team": roster.team.pk,
        "name": "gke",
        "kind": "kubernetes",
        "in_cluster": "on",
        "default_namespace": "llm",
        "labels": "{}",
        "_save": "Save",
    }

    response = browser.post(f"/admin/inventory/cluster/{cluster.pk}/change/", form)

    assert page.status_code == 200
    assert "team-token" not in page.content.decode()
    assert response.status_code == 302, response.content.decode()[:2000]
    cluster.refresh_from_db()
    assert cluster.in_cluster is True
    assert cluster.process_identity_approved is True


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        # \d took any script's digits: us-east- and an Arabic-Indic one was a region.
        ({"aws_region": "us-east-\u0661"}, "aws_region"),
        ({"aws_account_id": "\u0661" * 12}, "aws_account_id"),
        ({"aws_role_arn": "arn:aws:iam::123456789012:role/r\u00f6le"}, "aws_role_arn"),
    ],
)
def test_cluster_create__aws_fields_in_other_scripts__400(roster, operator, fields, field):
    response = operator.post(URL, _aws(roster, **fields), format="json")

    assert "Not an" in _error(response, field) or "12 digits" in _error(response, field)
    assert not Cluster.objects.exists()
