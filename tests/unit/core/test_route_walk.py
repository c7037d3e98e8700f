"""Every route under the API prefixes, called with garbage (odd ids in the path, malformed,
deeply nested or mistyped bodies, made-up methods), answers below 500, and any error it
answers is JSON with a ``detail``: from the views, from DRF and from Django alike."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from apps.core.errors import is_api_path

_GROUP = re.compile(r"\(\?P<(\w+)>(?:[^()]|\([^()]*\))*\)")


def _routes(patterns: list[Any], prefix: str = "") -> Iterator[str]:
    for entry in patterns:
        regex = prefix + _regex_of(entry)
        if isinstance(entry, URLResolver):
            yield from _routes(entry.url_patterns, regex)
        elif isinstance(entry, URLPattern):
            yield regex


def _regex_of(entry: URLPattern | URLResolver) -> str:
    pattern = entry.pattern
    raw = getattr(pattern, "_regex", None)
    if raw is None:  # a path() route: converters become groups of their regex
        raw = pattern.regex.pattern
    return raw.lstrip("^").rstrip("$").replace("\\Z", "")


def _concrete(regex: str, value: str) -> str:
    path = _GROUP.sub(lambda m: "json" if m.group(1) == "format" else value, regex)
    path = path.replace("\\.", ".").replace("/?", "/").replace("\\", "")
    return "/" + path


def api_paths(value: str) -> list[str]:
    paths = {_concrete(regex, value) for regex in _routes(get_resolver().url_patterns)}
    return sorted(p for p in paths if is_api_path(p))


GARBAGE = [
    ("post", b"[" * 5_000 + b"]" * 5_000, "application/json"),
    ("put", b'{"name": "x",,}', "application/json"),
    ("patch", b"\xff\xfe\x00garbage", "application/json"),
    ("post", b"name=%ZZ&&&=", "application/x-www-form-urlencoded"),
    ("post", b"--x\r\nContent-Disposition: form-data\r\n\r\n", "multipart/form-data; boundary=x"),
    ("delete", b"", "application/json"),
    ("get", b"", "application/json"),
    ("generic", b"{}", "application/json"),
]

QUERIES = [
    "limit=x&offset=-5&ordering=%00&search=%00&team=%C2%B2&deployment=..%2F&since=yesterday"
    "&signal=%0A&status=%FF&model=1e9&label=%3D",
    "format=xml",
]


def _assert_json_error(response: Any, label: str) -> None:
    assert response.status_code < 500, label
    if response.status_code >= 400:
        content_type = response.get("Content-Type", "")
        assert content_type.startswith("application/json"), f"{label}: {content_type}"
        body = response.json()
        assert isinstance(body, dict), label
        assert body.get("detail"), label


@pytest.mark.parametrize("value", ["%C2%B2", "1", "99999999999999999999999"])
def test_every_api_route__garbage_requests__json_errors_below_500(roster, settings, value):
    from apps.accounts.services import api_token_create
    from tests.factories.inventory import DeploymentFactory

    DeploymentFactory(team=roster.other_team)
    token = api_token_create(user=roster.operator, name="walk", expires_at=None).secret
    client = Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Bearer {token}")
    anonymous = Client(raise_request_exception=False)
    paths = api_paths(value)
    assert len(paths) > 60  # the walk found the API
    for path in paths:
        for method, body, content_type in GARBAGE:
            if method == "generic":
                response = client.generic("BREW", path, body, content_type=content_type)
            else:
                response = getattr(client, method)(path, body, content_type=content_type)
            _assert_json_error(response, f"{method.upper()} {path} [{content_type}]")
        for query in QUERIES:
            _assert_json_error(client.get(f"{path}?{query}"), f"GET {path}?{query}")
        _assert_json_error(anonymous.post(path, b"{}", content_type="application/json"), path)
