"""Walk every URL pattern: an anonymous GET gets no data except from the public endpoints."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern, RoutePattern
from rest_framework.test import APIClient

from tests.factories.inventory import DeploymentFactory

pytestmark = pytest.mark.django_db

# Public on purpose: probes, metrics scrape, API description, the admin's and the console's
# login pages, the admin's JavaScript catalogue, and the root, which redirects to the console.
PUBLIC = {
    "console/login/",
    "healthz",
    "readyz",
    "metrics",
    "api/schema/",
    "api/docs/",
    "admin/login/",
    "admin/jsi18n/",
    "",
}

_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>[^)]*\)")
_CONVERTER = re.compile(r"<(?:\w+:)?(?P<name>\w+)>")


def _regex_to_path(regex: str) -> str:
    path = _GROUP.sub(lambda m: "json" if m["name"] == "format" else "1", regex)
    path = path.lstrip("^").rstrip("$").replace("\\Z", "")
    path = path.replace("\\.", ".").replace("/?", "/")
    return path


def _pattern_to_path(pattern: RegexPattern | RoutePattern) -> str:
    if isinstance(pattern, RoutePattern):
        return _CONVERTER.sub(lambda m: ".json" if m["name"] == "format" else "1", str(pattern))
    return _regex_to_path(pattern.regex.pattern)


def _walk(patterns: list, prefix: str = "") -> Iterator[str]:
    for entry in patterns:
        path = prefix + _pattern_to_path(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, path)
        elif isinstance(entry, URLPattern):
            yield path


ALL_PATHS = sorted(set(_walk(get_resolver().url_patterns)))


def test_walk__finds_every_part_of_the_site():
    for expected in (
        "api/v1/deployments/",
        "api/v1/deployments/1/",
        "api/v1/deployments/1/readiness/",
        "api/v1/tokens/1/revoke/",
        "api/v1/audit/",
        "api/v1/me/",
        "admin/inventory/cluster/1/change/",
        "admin/",
        "healthz",
    ):
        assert expected in ALL_PATHS
    assert not [p for p in ALL_PATHS if any(ch in p for ch in "()?<>^$\\")]


@pytest.mark.parametrize("path", ALL_PATHS)
def test_anonymous_get__every_url__no_data_unless_public(path):
    # A real object with id 1 exists, so detail URLs cannot hide behind a 404.
    DeploymentFactory(pk=1, team__pk=1, model__pk=1, cluster__pk=1)
    response = APIClient().get("/" + path)
    status = response.status_code
    if path in PUBLIC:
        # /readyz may say 503 (no worker in tests); it reports health, not data.
        assert status < 500 or path == "readyz"
        return
    assert not 200 <= status < 300, f"/{path} answered {status} to an anonymous GET"
    if path.startswith("api/"):
        assert status in (401, 403), f"/{path} answered {status}"
        assert "credentials" in response.json()["detail"]
    elif path.startswith("loki/"):
        # Loki's protocol paths: API tokens, refused in Loki's error shape (or not a GET).
        assert status in (401, 403, 405), f"/{path} answered {status}"
    elif path.startswith("admin/"):
        assert status == 302, f"/{path} answered {status}"
        # Logging out when not logged in goes to the index, which asks for the login.
        login = "/admin/" if path == "admin/logout/" else "/admin/login/"
        assert response["Location"].startswith(login)
    elif path.startswith("console/"):
        # Pages ask for the console's login; writes and logout take POST only.
        assert status in (302, 405), f"/{path} answered {status}"
        if status == 302:
            assert response["Location"].startswith("/console/login/")
    elif path.startswith(("loki/", "v1/", "otlp/", "ofrep/", "toggles/")):
        # The protocols log shippers, Loki's clients and gateways (OFREP, toggle snapshots)
        # speak: tokens only (pushes and evaluations take POST only, so a GET is refused
        # before anything else).
        assert status in (401, 403, 405), f"/{path} answered {status}"
        assert response["Content-Type"] == "application/json"
    else:
        pytest.fail(f"/{path} is neither API nor admin nor console nor public: classify it")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/healthz", 200),
        ("/metrics", 200),
        ("/api/schema/", 200),
        ("/api/docs/", 200),
        ("/admin/login/", 200),
    ],
)
def test_anonymous_get__public_endpoints__answer(path, expected):
    assert APIClient().get(path).status_code == expected


def test_anonymous_get__root__redirects_to_console():
    response = APIClient().get("/")
    assert response.status_code == 302
    assert response["Location"] == "/console/"
