"""Every error under the API prefixes is JSON, DEBUG on or off: Django's own 400, 403, 404,
413 and 500 included (finding 6 of issue 11)."""

from __future__ import annotations

import io
import json

import pytest
from django.test import Client

from apps.api.parsers import BoundedJSONParser, PayloadTooLarge
from apps.core.errors import API_PATH_PREFIXES

ERRORS_URLCONF = "tests.unit.core.errors_urls"


def _is_json_error(response) -> bool:
    if not response["Content-Type"].startswith("application/json"):
        return False
    body = json.loads(response.content)
    return isinstance(body, dict) and isinstance(body.get("detail"), str) and body["detail"]


@pytest.fixture
def raw_client(roster) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(roster.viewer)
    return client


@pytest.mark.parametrize("debug", [True, False])
@pytest.mark.parametrize("prefix", API_PATH_PREFIXES)
def test_unrouted_api_path__debug_on_or_off__json_404(raw_client, settings, debug, prefix):
    settings.DEBUG = debug
    response = raw_client.get(f"{prefix}no/such/route/")
    assert response.status_code == 404
    assert _is_json_error(response)


@pytest.mark.parametrize("debug", [True, False])
def test_unrouted_console_path__html_404_kept(raw_client, settings, debug):
    settings.DEBUG = debug
    response = raw_client.get("/no/such/page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("debug", [True, False])
def test_disallowed_host__api_path__json_400(raw_client, settings, debug):
    settings.DEBUG = debug
    response = raw_client.get("/api/v1/me/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert _is_json_error(response)


@pytest.mark.parametrize("debug", [True, False])
def test_unhandled_exception__api_path__json_500_without_traceback(raw_client, settings, debug):
    settings.DEBUG = debug
    settings.ROOT_URLCONF = ERRORS_URLCONF
    response = raw_client.get("/api/test-only/crash/")
    assert response.status_code == 500
    assert _is_json_error(response)
    assert b"boom" not in response.content
    assert b"Traceback" not in response.content


def test_unhandled_exception__console_path__html_500(raw_client, settings):
    settings.DEBUG = False
    settings.ROOT_URLCONF = ERRORS_URLCONF
    response = raw_client.get("/admin-test-only/crash/")
    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("debug", [True, False])
def test_csrf_refusal__api_path__json_403_with_reason(roster, settings, debug):
    settings.DEBUG = debug
    settings.ROOT_URLCONF = ERRORS_URLCONF
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    client.force_login(roster.viewer)
    response = client.post("/api/test-only/plain-post/", {"a": "b"})
    assert response.status_code == 403
    assert _is_json_error(response)
    assert "CSRF" in response.json()["detail"]


@pytest.mark.parametrize("debug", [True, False])
def test_django_405__plain_view__json_with_allow_header(raw_client, settings, debug):
    settings.DEBUG = debug
    response = raw_client.post("/api/schema/")
    assert response.status_code == 405
    assert _is_json_error(response)
    assert "GET" in response["Allow"]


def test_browsable_api_error__html_accept__json_detail_kept(raw_client):
    response = raw_client.get("/api/v1/deployments/999999/", HTTP_ACCEPT="text/html")
    assert response.status_code == 404
    assert _is_json_error(response)
    assert response.json()["detail"] == "No Deployment matches the given query."


@pytest.mark.parametrize("debug", [True, False])
@pytest.mark.parametrize(
    "content_type", ["application/json", "application/x-www-form-urlencoded", "text/plain"]
)
def test_body_over_upload_limit__json_413(raw_client, roster, settings, debug, content_type):
    settings.DEBUG = debug
    body = b'{"name": "' + b"x" * 2_700_000 + b'"}'
    response = raw_client.post("/api/v1/teams/", body, content_type=content_type)
    assert response.status_code == 413
    assert _is_json_error(response)
    assert str(settings.DATA_UPLOAD_MAX_MEMORY_SIZE) in response.json()["detail"]


def test_bounded_parser__stream_longer_than_limit__413_even_without_content_length(settings):
    # Chunked uploads declare no length: the parser's own limit still holds.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    stream = io.BytesIO(b'{"name": "' + b"x" * 2000 + b'"}')
    with pytest.raises(PayloadTooLarge):
        BoundedJSONParser().parse(stream, "application/json", {})
