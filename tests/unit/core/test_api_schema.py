"""The OpenAPI document is valid, warning-free, and documents every field."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from django.core.management import call_command
from drf_spectacular.generators import SchemaGenerator


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)


def test_spectacular__validate_and_fail_on_warn__writes_valid_schema(tmp_path):
    target = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    document = yaml.safe_load(target.read_text(encoding="utf-8"))
    assert document["info"]["title"] == "llm-controlplane API"
    assert "/api/v1/deployments/{id}/readiness/" in document["paths"]


def _undocumented(schema: dict[str, Any]) -> list[str]:
    missing = []
    for name, component in schema["components"]["schemas"].items():
        for prop, spec in (component.get("properties") or {}).items():
            if not (spec.get("description") or "").strip():
                missing.append(f"{name}.{prop}")
    return missing


def test_schema__every_component_property__has_a_description(schema):
    assert _undocumented(schema) == []


def test_schema__bearer_token_scheme__declared(schema):
    scheme = schema["components"]["securitySchemes"]["apiToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")


def test_schema__token_secret__only_in_the_creation_response(schema):
    properties = schema["components"]["schemas"]
    assert "token" in properties["IssuedApiToken"]["properties"]
    assert "token" not in properties["ApiToken"]["properties"]
    assert not any("key_hash" in c.get("properties", {}) for c in properties.values())
