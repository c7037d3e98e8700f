"""Policy validation: every field that would render a broken or injectable nginx
configuration is named with a reason."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from apps.balancing.spec import PolicySpec, header_variable, policy_errors


def test_policy_errors__defaults__valid() -> None:
    assert policy_errors(PolicySpec()) == {}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"algorithm": "fastest"}, "algorithm"),
        ({"weights": {"chat-0": 0}}, "weights"),
        ({"weights": {"chat-0": -2}}, "weights"),
        ({"weights": {"chat-0": 1.5}}, "weights"),
        ({"weights": {"chat-0": True}}, "weights"),
        ({"weights": {"chat 0; x": 2}}, "weights"),
        ({"weights": ["chat-0"]}, "weights"),
        ({"algorithm": "consistent_hash", "hash_key": ""}, "hash_key"),
        ({"algorithm": "consistent_hash", "hash_key": "X-Session Id"}, "hash_key"),
        ({"algorithm": "consistent_hash", "hash_key": "X;}server{"}, "hash_key"),
        ({"algorithm": "consistent_hash", "hash_key": "$Remote_addr"}, "hash_key"),
        ({"algorithm": "consistent_hash", "hash_key": "$http_x;"}, "hash_key"),
        ({"hash_key": "X-Session-Id"}, "hash_key"),
        ({"algorithm": "ip_hash", "backups": ["chat-2"]}, "backups"),
        ({"backups": ["a b"]}, "backups"),
        ({"tenant_header": ""}, "tenant_header"),
        ({"priority_header": "$request_id"}, "priority_header"),
        ({"limit_req_rate": "10/s"}, "limit_req_rate"),
        ({"limit_req_rate": "0r/s"}, "limit_req_rate"),
        ({"shed_status": 500}, "shed_status"),
        ({"next_upstream_tries": 0}, "next_upstream_tries"),
        ({"read_timeout_s": 0}, "read_timeout_s"),
        ({"max_fails": "3"}, "max_fails"),
        # "$" matches before a final newline: each of these passed as valid.
        ({"tenant_header": "X-Tenant\n"}, "tenant_header"),
        ({"limit_req_rate": "10r/s\n"}, "limit_req_rate"),
        ({"weights": {"chat-0\n": 2}}, "weights"),
    ],
)
def test_policy_errors__invalid_field__named(changes: dict[str, Any], field: str) -> None:
    errors = policy_errors(replace(PolicySpec(), **changes))
    assert field in errors, errors


@pytest.mark.parametrize("key", ["X-Session-Id", "x_tenant", "$remote_addr", "$cookie_sid"])
def test_policy_errors__consistent_hash_key_header_or_variable__valid(key: str) -> None:
    assert policy_errors(PolicySpec(algorithm="consistent_hash", hash_key=key)) == {}


def test_policy_errors__weights_and_backups_by_pod_and_address__valid() -> None:
    spec = PolicySpec(
        algorithm="least_conn",
        weights={"chat-0": 3, "10.0.0.7:8000": 2},
        backups=["10.0.0.9"],
        limit_req_rate="600r/m",
        limit_req_burst=20,
    )
    assert policy_errors(spec) == {}


@pytest.mark.parametrize(
    ("key", "variable"),
    [("X-Session-Id", "$http_x_session_id"), ("$remote_addr", "$remote_addr")],
)
def test_header_variable__header_or_variable__nginx_variable(key: str, variable: str) -> None:
    assert header_variable(key) == variable
