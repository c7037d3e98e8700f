"""A balancing policy as plain data, and its validation: pure, no database, no I/O.

The model, the API and the renderer all go through :func:`policy_errors`, so a policy that
would render a broken (or dangerous) nginx configuration is refused with a message per
field before anything is rendered."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Algorithm(StrEnum):
    ROUND_ROBIN = "round_robin"
    WEIGHTED_ROUND_ROBIN = "weighted_round_robin"
    LEAST_CONN = "least_conn"
    IP_HASH = "ip_hash"
    CONSISTENT_HASH = "consistent_hash"
    RANDOM_TWO = "random_two"


# nginx refuses "backup" servers in upstreams balanced by a hash or at random.
NO_BACKUP = frozenset({Algorithm.IP_HASH, Algorithm.CONSISTENT_HASH, Algorithm.RANDOM_TWO})

# A request header name as clients send it, or an nginx variable. Strict on purpose: the
# value lands verbatim in the configuration, so anything else (spaces, ';', '{', quotes)
# could inject directives.
HEADER_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")
VARIABLE_RE = re.compile(r"^\$[a-z_][a-z0-9_]{0,63}\Z")
# A member as the policy names it: a pod name, an address, or address:port.
MEMBER_KEY_RE = re.compile(r"^[A-Za-z0-9_.:\[\]-]{1,255}\Z")
RATE_RE = re.compile(r"^[1-9][0-9]{0,5}r/[sm]\Z")

MAX_WEIGHT = 1000
MAX_TIMEOUT_S = 24 * 3600
MAX_TRIES = 10


@dataclass(frozen=True)
class PolicySpec:
    """What a deployment's upstream does. Times are seconds; ``weights`` maps a member
    (pod name, address or address:port) to its weight; ``backups`` names members that only
    get traffic when every other member is unavailable."""

    algorithm: str = Algorithm.ROUND_ROBIN
    hash_key: str = ""
    weights: dict[str, Any] = field(default_factory=dict)
    backups: list[Any] = field(default_factory=list)
    max_fails: int = 1
    fail_timeout_s: int = 10
    keepalive: int = 32
    connect_timeout_s: int = 5
    read_timeout_s: int = 600
    send_timeout_s: int = 600
    next_upstream_tries: int = 2
    next_upstream_timeout_s: int = 10
    tenant_header: str = "X-Tenant"
    priority_header: str = "X-Priority"
    limit_req_rate: str = ""
    limit_req_burst: int = 0
    shed_status: int = 429
    retry_after_s: int = 5


def header_variable(key: str) -> str:
    """The nginx variable of a request key: a variable as is, a header as ``$http_<name>``
    (lower case, '-' as '_', as nginx names them)."""
    if key.startswith("$"):
        return key
    return "$http_" + key.lower().replace("-", "_")


def _whole(value: Any, low: int, high: int) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return "must be a whole number."
    if not low <= value <= high:
        return f"must be between {low} and {high}."
    return None


def _key_error(value: Any, *, allow_variable: bool, required: bool) -> str | None:
    if not isinstance(value, str):
        return "must be a string."
    if not value:
        return "is required." if required else None
    if HEADER_RE.match(value) or (allow_variable and VARIABLE_RE.match(value)):
        return None
    if allow_variable:
        return (
            "must be a header name (letters, digits, '_' and '-') or an nginx variable "
            "such as $remote_addr."
        )
    return "must be a header name (letters, digits, '_' and '-')."


def _weights_error(weights: Any) -> str | None:
    if not isinstance(weights, dict):
        return 'expected {"<member>": weight, ...}.'
    for member, weight in weights.items():
        if not MEMBER_KEY_RE.match(str(member)):
            return f"{member!r} is not a member name or address."
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            return f"the weight of {member!r} must be a number."
        if not math.isfinite(weight) or weight <= 0:
            return f"the weight of {member!r} must be greater than 0."
        if weight != int(weight) or weight > MAX_WEIGHT:
            return f"the weight of {member!r} must be a whole number up to {MAX_WEIGHT}."
    return None


def _backups_error(backups: Any, algorithm: Any) -> str | None:
    if not isinstance(backups, list):
        return "expected a list of member names or addresses."
    for member in backups:
        if not isinstance(member, str) or not MEMBER_KEY_RE.match(member):
            return f"{member!r} is not a member name or address."
    if backups and algorithm in NO_BACKUP:
        return f"nginx has no backup members with {algorithm}."
    return None


def policy_errors(spec: PolicySpec) -> dict[str, str]:
    """Why ``spec`` cannot be rendered, field by field; empty when it can."""
    errors: dict[str, str] = {}
    algorithms = [a.value for a in Algorithm]
    if spec.algorithm not in algorithms:
        errors["algorithm"] = (
            f"unknown algorithm {spec.algorithm!r}; one of {', '.join(algorithms)}."
        )
    hashed = spec.algorithm == Algorithm.CONSISTENT_HASH
    problem = _key_error(spec.hash_key, allow_variable=True, required=hashed)
    if problem is None and spec.hash_key and not hashed:
        problem = "only a consistent_hash policy has a hash key."
    checks: dict[str, str | None] = {
        "hash_key": problem,
        "weights": _weights_error(spec.weights),
        "backups": _backups_error(spec.backups, spec.algorithm),
        "max_fails": _whole(spec.max_fails, 0, 100),
        "fail_timeout_s": _whole(spec.fail_timeout_s, 1, 3600),
        "keepalive": _whole(spec.keepalive, 0, 10_000),
        "connect_timeout_s": _whole(spec.connect_timeout_s, 1, 75),
        "read_timeout_s": _whole(spec.read_timeout_s, 1, MAX_TIMEOUT_S),
        "send_timeout_s": _whole(spec.send_timeout_s, 1, MAX_TIMEOUT_S),
        "next_upstream_tries": _whole(spec.next_upstream_tries, 1, MAX_TRIES),
        "next_upstream_timeout_s": _whole(spec.next_upstream_timeout_s, 1, 3600),
        "tenant_header": _key_error(spec.tenant_header, allow_variable=False, required=True),
        "priority_header": _key_error(spec.priority_header, allow_variable=False, required=True),
        "limit_req_burst": _whole(spec.limit_req_burst, 0, 100_000),
        "retry_after_s": _whole(spec.retry_after_s, 1, 86_400),
    }
    if not isinstance(spec.limit_req_rate, str) or (
        spec.limit_req_rate and not RATE_RE.match(spec.limit_req_rate)
    ):
        checks["limit_req_rate"] = "must be empty (no limit) or a rate such as 10r/s or 600r/m."
    if spec.shed_status not in (429, 503):
        checks["shed_status"] = "must be 429 or 503."
    errors.update({name: message for name, message in checks.items() if message})
    return errors
