"""Gateways reading toggles from a live server: the real OpenFeature SDK with its OFREP
provider (types, targeting, a percentage split over 10,000 targeting keys, unknown flags,
a wrong token), ETag/304 on the bulk endpoint and snapshots with ``requests``, team
isolation, and the change stream answering a long-poll when a toggle changes."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from apps.toggles.models import Toggle
from apps.toggles.services import toggle_update
from tests.factories.accounts import TeamFactory
from tests.factories.inventory import DeploymentFactory
from tests.factories.toggles_read import SPLIT_WEIGHTS, gateway_secret, sample_toggles, waiting_soon

pytestmark = pytest.mark.django_db(transaction=True)

KEYS = 10_000


@pytest.fixture
def team() -> Any:
    team = TeamFactory(slug="edge")
    sample_toggles(team, deployment=DeploymentFactory(team=team, name="chat"))
    return team


@pytest.fixture
def secret(team: Any) -> str:
    return gateway_secret(team)


def _client(base_url: str, token: str, domain: str) -> Iterator[OpenFeatureClient]:
    provider = OFREPProvider(base_url, headers_factory=lambda: {"Authorization": f"Bearer {token}"})
    api.set_provider(provider, domain=domain)
    try:
        yield api.get_client(domain)
    finally:
        api.clear_providers()


@pytest.fixture
def flags(live_server: Any, secret: str) -> Iterator[OpenFeatureClient]:
    yield from _client(live_server.url, secret, "gateway")


def test_sdk__each_type__values_reasons_variants(flags):
    context = EvaluationContext(targeting_key="user-1")
    streaming = flags.get_boolean_details("streaming", False, context)
    assert (streaming.value, streaming.reason, streaming.variant) == (
        True,
        Reason.DEFAULT,
        "default",
    )
    assert streaming.error_code is None
    assert flags.get_integer_value("max_output_tokens", 0, context) == 512
    assert flags.get_string_value("banner", "", context) == "all good"
    assert flags.get_object_value("limits", {}, context) == {"rpm": 60, "models": ["small"]}
    details = flags.get_integer_details("max_output_tokens", 0, context)
    assert details.flag_metadata["preset"] == "max_output_tokens"


def test_sdk__targeting_by_context__rule_and_deployment(flags):
    free = EvaluationContext(targeting_key="u", attributes={"tier": "free"})
    streaming = flags.get_boolean_details("streaming", True, free)
    assert (streaming.value, streaming.reason, streaming.variant) == (
        False, Reason.TARGETING_MATCH, "free-tier",
    )  # fmt: skip
    batch = EvaluationContext(targeting_key="u", attributes={"priority": "batch"})
    assert flags.get_integer_value("max_output_tokens", 0, batch) == 128
    chat = EvaluationContext(targeting_key="u", attributes={"deployment": "chat"})
    assert flags.get_integer_value("max_output_tokens", 0, chat) == 64


def test_sdk__split_over_10000_keys__within_2_percent_of_weights(flags):
    def variant(i: int) -> str:
        details = flags.get_string_details("model_size", "", EvaluationContext(f"user-{i}"))
        assert details.reason == Reason.SPLIT, details
        return str(details.variant)

    # Concurrent callers, as a gateway's request threads would be (the live server answers
    # each request with a delayed ACK's latency: one by one, 10,000 would take minutes).
    with ThreadPoolExecutor(max_workers=16) as pool:
        seen = Counter(pool.map(variant, range(KEYS)))
    total = sum(SPLIT_WEIGHTS.values())
    for variant, weight in SPLIT_WEIGHTS.items():
        assert abs(seen[variant] / KEYS - weight / total) <= 0.02, seen
    again = flags.get_string_details("model_size", "", EvaluationContext("user-42"))
    first = flags.get_string_details("model_size", "", EvaluationContext("user-42"))
    assert again.variant == first.variant


def test_sdk__unknown_flag__flag_not_found_default(flags):
    details = flags.get_boolean_details("no-such-flag", True, EvaluationContext("u"))
    assert details.value is True
    assert details.error_code == ErrorCode.FLAG_NOT_FOUND
    assert details.reason == Reason.ERROR


def test_sdk__split_without_targeting_key__targeting_key_missing(flags):
    details = flags.get_string_details("model_size", "dflt", EvaluationContext())
    assert (details.value, details.error_code) == ("dflt", ErrorCode.TARGETING_KEY_MISSING)


def test_sdk__wrong_token__401_general_error_default(live_server, team):
    response = requests.post(
        f"{live_server.url}/ofrep/v1/evaluate/flags/streaming",
        json={"context": {}},
        headers={"Authorization": "Bearer lcpg_not-a-token"},
        timeout=10,
    )
    assert response.status_code == 401
    for client in _client(live_server.url, "lcpg_not-a-token", "wrong"):
        details = client.get_boolean_details("streaming", False, EvaluationContext("u"))
        assert details.value is False
        assert details.error_code == ErrorCode.GENERAL
        assert "unauthorized" in (details.error_message or "")


def test_sdk__other_teams_token__cannot_read_this_team(live_server, team):
    other = TeamFactory(slug="edge-other")
    for client in _client(live_server.url, gateway_secret(other), "other"):
        details = client.get_boolean_details("streaming", False, EvaluationContext("u"))
        assert details.error_code == ErrorCode.FLAG_NOT_FOUND
    response = requests.post(
        f"{live_server.url}/ofrep/v1/evaluate/flags",
        json={"context": {}},
        headers={"Authorization": f"Bearer {gateway_secret(other, 'other')}"},
        timeout=10,
    )
    assert response.json() == {"flags": []}


def test_bulk__etag_then_if_none_match__304_until_change(live_server, secret):
    url = f"{live_server.url}/ofrep/v1/evaluate/flags"
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {secret}"
    body = {"context": {"targetingKey": "u", "tier": "free"}}
    first = session.post(url, json=body, timeout=10)
    assert first.status_code == 200
    etag = first.headers["ETag"]
    unchanged = session.post(url, json=body, headers={"If-None-Match": etag}, timeout=10)
    assert (unchanged.status_code, unchanged.content) == (304, b"")
    toggle_update(toggle=Toggle.objects.get(key="streaming", deployment=None), actor=None,
                  enabled=False)  # fmt: skip
    changed = session.post(url, json=body, headers={"If-None-Match": etag}, timeout=10)
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    streaming = {f["key"]: f for f in changed.json()["flags"]}["streaming"]
    assert (streaming["value"], streaming["reason"]) == (False, "DISABLED")


def test_changes__long_poll__answered_when_a_toggle_changes(live_server, secret, settings):
    # Woken by the change: a waiter that is not would hold on for two minutes.
    settings.TOGGLES_CHANGES_MAX_WAIT_S = 120
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {secret}"
    snapshot = session.get(f"{live_server.url}/toggles/v1/snapshot", timeout=10)
    version = snapshot.json()["version"]
    answers: list[requests.Response] = []

    def poll() -> None:
        answers.append(
            session.get(
                f"{live_server.url}/toggles/v1/changes",
                params={"version": version, "wait": 120},
                timeout=130,
            )
        )

    waiter = threading.Thread(target=poll)
    waiter.start()
    assert waiting_soon(), "the request never started waiting"
    toggle_update(toggle=Toggle.objects.get(key="banner"), actor=None, value="degraded")
    waiter.join(timeout=20)
    [answer] = answers  # answered before the wait ran out (a timeout answers 304)
    assert answer.status_code == 200
    assert answer.json()["version"] == version + 1
    assert {t["key"]: t["value"] for t in answer.json()["toggles"]}["banner"] == "degraded"
    assert answer.headers["ETag"] != snapshot.headers["ETag"]
