"""The whole API under schemathesis: every operation of the OpenAPI document, through the
coverage, fuzzing and stateful phases, against a live server holding two teams' objects,
with the API tokens of an admin of each team. Fails on any 5xx (but a 503 the operation
documents) and on any answer that does not match the documented schema.

Bounded: a fixed seed (``API_FUZZ_SEED`` sets another), a few examples per operation, and a
time budget per part (``SINGLE_CALLS_S`` + ``STATEFUL_S`` + ``CREDENTIALS_S``).
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events

pytestmark = pytest.mark.integration

SINGLE_CALLS_S = 120
STATEFUL_S = 60
CREDENTIALS_S = 15
SINGLE_CALL_PHASES = ("examples", "coverage", "fuzzing")
WEBHOOK = "/api/v1/alerts/webhook/alertmanager/"
CREDENTIAL_REMOVAL = {
    ("DELETE", "/api/v1/tokens/{id}/"),
    ("POST", "/api/v1/tokens/{id}/revoke/"),
    ("DELETE", "/api/v1/alerts/receivers/{id}/"),
}
# Fixed, so that a run repeats the last; API_FUZZ_SEED explores other inputs.
FUZZ_SEED = int(os.environ.get("API_FUZZ_SEED") or 20261129)


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Generated channels, clusters and Prometheus URLs name any host: keep every
    connection (and name lookup) of this process on 127.0.0.0/8, refusing the rest the way
    an unreachable host would."""
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect

    def is_loopback(host: Any) -> bool:
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(str(host).strip("[]")).is_loopback
        except ValueError:
            return False

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_loopback(host):
            raise socket.gaierror(socket.EAI_NONAME, "name lookups are off in this test")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback(address[0]):
            raise ConnectionRefusedError(f"{address[0]} is off limits in this test")
        return real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)


@dataclass
class Fleet:
    tokens: list[str]  # an API token of each team's admin
    receiver_tokens: list[str]  # an Alertmanager receiver token of each team
    ids: dict[str, list[int]]


@pytest.fixture
def two_teams(transactional_db: None) -> Fleet:
    from apps.accounts.models import Role
    from apps.accounts.services import api_token_create
    from apps.alerts.services import receiver_create
    from apps.autoscaling.models import Mode
    from tests.factories.accounts import MembershipFactory, TeamFactory, UserFactory
    from tests.factories.autoscaling import AutoscalingPolicyFactory
    from tests.factories.inventory import DeploymentFactory, SimulatedDeploymentFactory
    from tests.factories.slos import SloFactory

    tokens, receiver_tokens = [], []
    ids: dict[str, list[int]] = {
        "team": [],
        "deployment": [],
        "model": [],
        "cluster": [],
        "slo": [],
    }
    for slug in ("alpha", "bravo"):
        team = TeamFactory(slug=slug)
        admin = UserFactory(username=f"{slug}-admin")
        MembershipFactory(user=admin, team=team, role=Role.ADMIN)
        deployment = DeploymentFactory(team=team, name=f"{slug}-chat")
        simulated = SimulatedDeploymentFactory(team=team, name=f"{slug}-sim")
        slo = SloFactory(deployment=deployment, team=team, name=f"{slug}-ttft")
        AutoscalingPolicyFactory(deployment=simulated, mode=Mode.DRY_RUN, targets=[])
        receiver_tokens.append(receiver_create(team=team, name=f"{slug}-am", actor=admin)[1])
        tokens.append(api_token_create(user=admin, name="fuzz", expires_at=None).secret)
        ids["team"].append(team.pk)
        ids["deployment"] += [deployment.pk, simulated.pk]
        ids["model"] += [deployment.model_id, simulated.model_id]
        ids["cluster"].append(deployment.cluster_id)
        ids["slo"].append(slo.pk)
    UserFactory(username="loner")
    return Fleet(tokens=tokens, receiver_tokens=receiver_tokens, ids=ids)


def _config(
    base_url: str,
    *,
    phases: tuple[str, ...],
    max_time: int,
    ids: dict[str, list[int]],
    unavailable: list[tuple[str, str]],
) -> SchemathesisConfig:
    # Most generated foreign keys name nothing: steer some of them to existing objects of
    # both teams, so that valid bodies get past "does not exist" to the code behind it.
    return SchemathesisConfig.from_dict(
        {
            "dictionaries": {
                **{name: {"values": values} for name, values in ids.items()},
                "any": {"values": sorted({i for values in ids.values() for i in values})},
            },
            "parameters": {
                **{
                    f"{where}.{name}": {"dictionary": name, "probability": 0.6}
                    for name in ids
                    for where in ("body", "query")
                },
                "path.id": {"dictionary": "any", "probability": 0.5},
                "path.deployment": {"dictionary": "deployment", "probability": 0.5},
            },
            "seed": FUZZ_SEED,
            # No .schemathesis/ cache in the checkout: every run starts from the same seed.
            "cache": {"enabled": False},
            "max-time": max_time,
            "base-url": base_url,
            # One request per connection: a kept-alive connection would hold a server
            # thread, and its database session, until the end of the test session.
            "headers": {"Connection": "close"},
            "workers": 1,
            "request-timeout": 30,
            "suppress-health-check": ["all"],
            "generation": {"max-examples": 8, "no-shrink": True, "deterministic": True},
            "phases": {
                "examples": {"enabled": "examples" in phases},
                "coverage": {"enabled": "coverage" in phases},
                "fuzzing": {"enabled": "fuzzing" in phases},
                "stateful": {"enabled": "stateful" in phases, "max-steps": 50},
            },
            "checks": {
                "enabled": False,
                "not_a_server_error": {"enabled": True},
                "response_schema_conformance": {"enabled": True},
                "use_after_free": {"enabled": True},
            },
            # An operation that documents a 503 (a gateway's configuration while a member
            # list cannot be read or nginx -t refuses the rendering; a backtest while
            # Prometheus is down, as it is here) may answer it: fuzz-created objects make
            # either happen. The body is still checked against the documented 503 schema.
            "operations": [
                {
                    # One name, "METHOD path": an entry's include keys are alternatives.
                    "include-name": f"{method} {path}",
                    "checks": {
                        "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503"]}
                    },
                }
                for method, path in unavailable
            ],
        }
    )


def _documented_503(document: dict[str, Any]) -> list[tuple[str, str]]:
    """(METHOD, path) of each operation whose documented responses include a 503."""
    return sorted(
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if "503" in {str(code) for code in operation.get("responses", {})}
    )


def _failures(stream: Iterator[events.EngineEvent]) -> tuple[list[str], dict[str, int]]:
    found: list[str] = []
    seen: set[tuple[str, str]] = set()
    counts: dict[str, int] = {"scenarios": 0, "requests": 0}
    started = time.monotonic()
    for event in stream:
        if isinstance(event, events.PhaseStarted) and event.payload is not None:
            print(event.payload)
        if isinstance(event, events.PhaseStarted | events.PhaseFinished):
            print(
                f"{time.monotonic() - started:7.1f}s {type(event).__name__} "
                f"{event.phase.name} {getattr(event, 'status', '')} {event.phase.skip_reason}"
            )
        if isinstance(event, events.NonFatalError | events.FatalError):
            found.append(f"error: {getattr(event, 'label', '')}: {event}")
            continue
        if not isinstance(event, events.ScenarioFinished | events.FuzzScenarioFinished):
            continue
        counts["scenarios"] += 1
        recorder = event.recorder
        for interaction in recorder.interactions.values():
            counts["requests"] += 1
            if interaction.response is not None:
                key = f"{interaction.request.method} {interaction.response.status_code}"
                counts[key] = counts.get(key, 0) + 1
        for case_id, checks in recorder.checks.items():
            for check in checks:
                if check.status != Status.FAILURE or check.failure_info is None:
                    continue
                failure = check.failure_info.failure
                key = (recorder.label, failure.title)
                if key in seen:
                    continue
                seen.add(key)
                found.append(
                    f"{recorder.label}: {check.name}: {failure.title}: {failure.message}\n"
                    f"{_answer(recorder, case_id)}\n{check.failure_info.code_sample}"
                )
    return found, counts


def _answer(recorder: Any, case_id: str) -> str:
    """The status and the start of the body of the answer a failed check judged."""
    interaction = recorder.interactions.get(case_id)
    response = interaction.response if interaction is not None else None
    if response is None:
        return "no answer"
    body = (response.content or b"")[:600].decode("utf-8", "replace")
    return f"answered {response.status_code}: {body}"


def _run(schema: Any, teams: Fleet, *, team_order: list[int]) -> tuple[list[str], dict[str, int]]:
    """Run the engine, each case authenticated as the next team of ``team_order`` (cycled):
    with the team's receiver token on the Alertmanager webhook, its admin's API token
    everywhere else."""
    rotation = itertools.cycle(team_order)

    class TeamCredentials:
        def get(self, case: Any, ctx: Any) -> int:
            return next(rotation)

        def set(self, case: Any, data: int, ctx: Any) -> None:
            webhook = case.operation.path == WEBHOOK
            token = (teams.receiver_tokens if webhook else teams.tokens)[data]
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}

    schema.auth.auth(refresh_interval=None)(TeamCredentials)
    return _failures(schemathesis.engine.from_schema(schema).execute())


def _without_credential_removal(schema: Any) -> Any:
    # Responses teach the engine the ids of the run's own token and receivers; revoking
    # them mid-run would turn everything after into 401s. They get a run of their own, last.
    for method, path in CREDENTIAL_REMOVAL:
        schema = schema.exclude(method=method, path=path)
    return schema


def _only_credential_removal(schema: Any) -> Any:
    # An exclude of everything else, not an include: with [[operations]] entries in the
    # configuration, schemathesis ORs include filters with one of its own that selects
    # every operation, so an include would leave the whole API in.
    return schema.exclude(
        func=lambda ctx: (
            (ctx.operation.method.upper(), ctx.operation.path) not in CREDENTIAL_REMOVAL
        )
    )


def test_api_fuzz__two_teams__no_server_error_no_schema_violation(
    live_server: Any, two_teams: Fleet, loopback_only: None, settings: Any
) -> None:
    # The discard port, where nothing listens: not whatever a developer runs on the defaults
    # (a control plane's fleet simulator on 9400, say).
    settings.PROMETHEUS_URL = "http://127.0.0.1:9/"
    settings.FLEETSIM_URL = "http://127.0.0.1:9/"
    document = SchemaGenerator().get_schema(request=None, public=True)

    unavailable = _documented_503(document)
    assert ("GET", "/api/v1/balancing/gateways/{name}/config") in unavailable
    assert ("POST", "/api/v1/autoscaling/backtests/") in unavailable

    def load(phases: tuple[str, ...], max_time: int) -> Any:
        config = _config(
            live_server.url,
            phases=phases,
            max_time=max_time,
            ids=two_teams.ids,
            unavailable=unavailable,
        )
        return schemathesis.openapi.from_dict(document, config=config)

    # Coverage (boundary and invalid values of every parameter and body field) and
    # fuzzing, the two teams' credentials in turn.
    found, counts = _run(
        _without_credential_removal(load(SINGLE_CALL_PHASES, SINGLE_CALLS_S)),
        two_teams,
        team_order=[0, 1],
    )
    # Stateful: chains of calls following the links between operations (create, then read,
    # update, delete what was created), as one team.
    chain_found, chain_counts = _run(
        _without_credential_removal(load(("stateful",), STATEFUL_S)), two_teams, team_order=[0]
    )
    # Last, the operations that revoke the credentials the run uses.
    last_found, last_counts = _run(
        _only_credential_removal(load(SINGLE_CALL_PHASES, CREDENTIALS_S)),
        two_teams,
        team_order=[0, 1],
    )
    print(
        f"schemathesis single calls: {counts}\nstateful: {chain_counts}\n"
        f"credential removal: {last_counts}"
    )
    problems = found + chain_found + last_found
    assert not problems, "\n\n".join(problems)
