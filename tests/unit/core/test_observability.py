"""Label values of the HTTP metrics stay within fixed sets, whatever the request."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def _label_values(label: str) -> set[str]:
    values = set()
    for family in REGISTRY.collect():
        if family.name == "controlplane_http_requests":
            for sample in family.samples:
                if sample.name == "controlplane_http_requests_total":
                    values.add(sample.labels[label])
    return values


def test_http_metrics__made_up_methods__counted_as_other_no_new_label_value():
    labels = {"method": "other", "route": "healthz", "status": "405"}
    before = REGISTRY.get_sample_value("controlplane_http_requests_total", labels) or 0.0
    methods_before = _label_values("method")
    client = APIClient()
    for method in ("FOOBAR", "BAZQUX", "X-PROBE-1"):
        assert client.generic(method, "/healthz").status_code == 405
    assert REGISTRY.get_sample_value("controlplane_http_requests_total", labels) == before + 3
    assert _label_values("method") - methods_before <= {"other"}
    assert not {"FOOBAR", "BAZQUX", "X-PROBE-1"} & _label_values("method")


def test_http_metrics__unknown_paths__one_unmatched_route_value():
    client = APIClient()
    for path in ("/no-such-page-1", "/no-such-page-2/x", "/wp-login.php"):
        client.get(path)
    routes = _label_values("route")
    assert "<unmatched>" in routes
    assert not any("no-such-page" in route or "wp-login" in route for route in routes)


@pytest.mark.parametrize(
    ("status", "expected"),
    [(200, "200"), (404, "404"), (429, "429"), (299, "2xx"), (599, "5xx"), (42, "other")],
)
def test_status_label__any_code__a_known_code_or_its_class(status, expected):
    from apps.core.observability import status_label

    assert status_label(status) == expected


@pytest.mark.parametrize(
    ("method", "expected"), [("GET", "GET"), ("PATCH", "PATCH"), ("get", "other"), ("", "other")]
)
def test_method_label__any_method__a_standard_method_or_other(method, expected):
    from apps.core.observability import method_label

    assert method_label(method) == expected
