"""Policy + members + degradation toggles -> an nginx configuration fragment (pure), and
its validation by the real ``nginx -t`` (the one shell here).

The fragment goes into nginx's ``http`` context (``include``): one upstream per
deployment (and per fallback deployment), the shedding and rate-limit variables and zones,
and one ``server`` on the gateway's listen port. It is built as a crossplane payload (a
list of directive dicts) so tests assert on structure, then serialised by
``crossplane.build``. Every user-given string reaching the payload was validated first
(:func:`apps.balancing.spec.policy_errors`) or is escaped here.

How a deployment is reached: ``/<deployment>/...`` (the prefix is stripped), and ``/`` for
the gateway's first deployment.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import crossplane

from .members import MEMBER_STATES, Member
from .spec import Algorithm, PolicySpec, header_variable, policy_errors

Directive = dict[str, Any]

NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")
HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})\Z")
LISTEN_RE = re.compile(r"^(([0-9]{1,3}\.){3}[0-9]{1,3}:)?[0-9]{1,5}\Z")
CLASS_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}\Z")
# Words a map block reads as its own parameters, not as values to match.
MAP_KEYWORDS = frozenset({"default", "hostnames", "include", "volatile"})
MAX_OUTPUT_HEADER = "X-Degrade-Max-Output-Tokens"
MAX_CONTEXT_HEADER = "X-Degrade-Max-Context-Tokens"
NGINX_CHECK_TIMEOUT_S = 30


@dataclass(frozen=True)
class Degradation:
    """The deployment's degradation toggles as the gateway applies them (unconditional
    values). ``shed_fraction`` maps a priority class to the fraction of its requests
    refused; an empty ``maintenance`` message means no maintenance."""

    shed_fraction: dict[str, float] = field(default_factory=dict)
    maintenance: str = ""
    fallback: str = ""
    max_output_tokens: int = 0
    max_context_tokens: int = 0


@dataclass(frozen=True)
class Site:
    """One deployment behind the gateway: its policy, members and degradation;
    ``fallback_members`` are the members of the deployment ``degradation.fallback`` names."""

    deployment: str
    policy: PolicySpec
    members: Sequence[Member]
    degradation: Degradation = Degradation()
    fallback_members: Sequence[Member] = ()


@dataclass(frozen=True)
class Rendered:
    """The fragment, its version (sha256 of the text, also the ETag) and why ``nginx -t``
    refused it (empty: valid)."""

    text: str
    sha256: str
    errors: list[str]

    @property
    def ok(self) -> bool:
        return not self.errors


class RenderError(ValueError):
    """The input cannot be rendered (an invalid policy, member or name); ``errors`` says
    why, field by field."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def d(directive: str, *args: Any, block: list[Directive] | None = None) -> Directive:
    out: Directive = {"directive": directive, "args": [str(a) for a in args]}
    if block is not None:
        out["block"] = block
    return out


def _ident(deployment: str) -> str:
    """The deployment's name in nginx identifiers. Names have no '_', so this is one to one;
    what is derived from it only adds a prefix (upstreams, zones: "fallback_cp_chat",
    "limit_cp_chat") or a suffix that ends differently ("_shed", "_shed_<n>"), so deployment
    "chat-fallback" cannot collide with the fallback of "chat"."""
    return "cp_" + deployment.replace("-", "_")


def _member_errors(members: Iterable[Member]) -> str | None:
    for member in members:
        if member.state not in MEMBER_STATES:
            return f"member {member.name or member.address}: unknown state {member.state!r}."
        try:
            ipaddress.ip_address(member.address)
        except ValueError:
            if not HOST_RE.match(member.address):
                return f"member address {member.address!r} is not an IP address or host name."
        if not 1 <= member.port <= 65535:
            return f"member {member.address}: port {member.port} is not a TCP port."
        if not 1 <= member.weight <= 1000:
            return f"member {member.address}: weight must be between 1 and 1000."
    return None


def member_weight(member: Member, policy: PolicySpec) -> int:
    for key in (member.name, member.endpoint, member.address):
        if key and key in policy.weights:
            return int(policy.weights[key])
    return member.weight


def member_is_backup(member: Member, policy: PolicySpec) -> bool:
    return any(key in policy.backups for key in (member.name, member.endpoint, member.address))


def upstream_block(name: str, policy: PolicySpec, members: Sequence[Member]) -> Directive | None:
    """The upstream of ``members`` under ``policy``; None when no member serves."""
    listed = [m for m in members if m.state in ("serving", "down")]
    if not any(m.state == "serving" for m in listed):
        return None
    algorithm = Algorithm(policy.algorithm)
    # Shared by nginx's workers: connection counts and failures seen by one count for all.
    block: list[Directive] = [d("zone", name, "256k")]
    if algorithm == Algorithm.LEAST_CONN:
        block.append(d("least_conn"))
    elif algorithm == Algorithm.IP_HASH:
        block.append(d("ip_hash"))
    elif algorithm == Algorithm.CONSISTENT_HASH:
        block.append(d("hash", header_variable(policy.hash_key), "consistent"))
    elif algorithm == Algorithm.RANDOM_TWO:
        block.append(d("random", "two", "least_conn"))
    weighted = algorithm != Algorithm.ROUND_ROBIN
    for member in listed:
        args: list[Any] = [member.endpoint]
        weight = member_weight(member, policy)
        if weighted and weight != 1:
            args.append(f"weight={weight}")
        args += [f"max_fails={policy.max_fails}", f"fail_timeout={policy.fail_timeout_s}s"]
        if member.state == "down":
            args.append("down")
        elif member_is_backup(member, policy):
            args.append("backup")
        block.append(d("server", *args))
    if policy.keepalive:
        block.append(d("keepalive", policy.keepalive))
    return d("upstream", name, block=block)


_JSON_ESCAPE_RE = re.compile(r'\\(u[0-9a-fA-F]{4}|["\\/bfnrt])')
_SHORT_ESCAPES = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}


def _unicode_escape(match: re.Match[str]) -> str:
    code = match.group(1)
    if code.startswith("u"):
        return "\\" + code
    return f"\\u{ord(_SHORT_ESCAPES[code]):04x}"


def _json_body(payload: dict[str, Any]) -> str:
    """JSON that reads the same after nginx's string parsing: nginx turns \\" \\n \\t \\r
    and \\\\ into characters and interpolates "$name", while JSON's \\uXXXX passes as is."""
    text = _JSON_ESCAPE_RE.sub(_unicode_escape, json.dumps(payload))
    return text.replace("$", "\\u0024")


def _canned(status: int, payload: dict[str, Any], retry_after_s: int) -> list[Directive]:
    return [
        d("default_type", "application/json"),
        d("add_header", "Retry-After", retry_after_s, "always"),
        d("return", status, _json_body(payload)),
    ]


def _proxy(upstream: str, site: Site, *, strip: bool) -> list[Directive]:
    policy, deg = site.policy, site.degradation
    target = f"http://{upstream}" + ("/" if strip else "")
    headers = [
        d("proxy_set_header", "Host", "$host"),
        d("proxy_set_header", "Connection", ""),
        d("proxy_set_header", "X-Request-Id", "$request_id"),
        d("proxy_set_header", "X-Forwarded-For", "$proxy_add_x_forwarded_for"),
    ]
    if deg.max_output_tokens:
        headers.append(d("proxy_set_header", MAX_OUTPUT_HEADER, deg.max_output_tokens))
    if deg.max_context_tokens:
        headers.append(d("proxy_set_header", MAX_CONTEXT_HEADER, deg.max_context_tokens))
    return [
        d("proxy_pass", target),
        d("proxy_http_version", "1.1"),
        *headers,
        # Tokens are streamed as server-sent events: pass each as it comes, wait long.
        d("proxy_buffering", "off"),
        d("proxy_cache", "off"),
        d("proxy_connect_timeout", f"{policy.connect_timeout_s}s"),
        d("proxy_read_timeout", f"{policy.read_timeout_s}s"),
        d("proxy_send_timeout", f"{policy.send_timeout_s}s"),
        # Retried only before a byte of the request reached a replica or when it said it
        # could not take it; a POST that reached a replica is never sent twice.
        d("proxy_next_upstream", "error", "timeout", "http_502", "http_503"),
        d("proxy_next_upstream_tries", policy.next_upstream_tries),
        d("proxy_next_upstream_timeout", f"{policy.next_upstream_timeout_s}s"),
    ]


def _shedding(site: Site) -> tuple[list[Directive], str | None]:
    """http-level split_clients/map directives and the variable that is "1" for a shed
    request, or no variable when nothing is shed."""
    ident = _ident(site.deployment)
    classes = {c: float(f) for c, f in site.degradation.shed_fraction.items() if float(f) > 0}
    if not classes:
        return [], None
    out: list[Directive] = []
    entries: list[Directive] = []
    for index, (klass, fraction) in enumerate(sorted(classes.items())):
        roll = f"${ident}_shed_{index}"
        if fraction >= 1:
            entries.append(d(klass, "1"))
            continue
        percent = f"{round(fraction * 100, 2):g}%"
        # Keyed by the request id: every request draws anew, so the shed share is the
        # fraction whatever the tenant mix.
        out.append(d("split_clients", "${request_id}", roll, block=[d(percent, "1"), d("*", "0")]))
        entries.append(d(klass, roll))
    variable = f"${ident}_shed"
    header = header_variable(site.policy.priority_header)
    out.append(d("map", header, variable, block=[*entries, d("default", "0")]))
    return out, variable


def _limit_zone(site: Site) -> tuple[list[Directive], list[Directive]]:
    policy = site.policy
    if not policy.limit_req_rate:
        return [], []
    zone = f"limit_{_ident(site.deployment)}"
    key = header_variable(policy.tenant_header)
    http = [d("limit_req_zone", key, f"zone={zone}:10m", f"rate={policy.limit_req_rate}")]
    args: list[Any] = [f"zone={zone}"]
    if policy.limit_req_burst:
        args += [f"burst={policy.limit_req_burst}", "nodelay"]
    location = [d("limit_req", *args), d("limit_req_status", 429)]
    return http, location


def site_directives(
    site: Site, *, prefixes: Sequence[str]
) -> tuple[list[Directive], list[Directive]]:
    """(http-level directives, server-level locations) for one deployment."""
    ident = _ident(site.deployment)
    policy, deg = site.policy, site.degradation
    http: list[Directive] = []
    upstream = upstream_block(ident, policy, site.members)
    if upstream is not None:
        http.append(upstream)
    fallback = None
    if deg.fallback:
        fallback = upstream_block(f"fallback_{ident}", policy, site.fallback_members)
        if fallback is not None:
            http.append(fallback)
    shed_http, shed_var = _shedding(site)
    http += shed_http
    limit_http, limit_location = _limit_zone(site)
    http += limit_http

    shed_loc = f"@{ident}_shed"
    fallback_loc = f"@{ident}_fallback"
    locations: list[Directive] = []
    for prefix in prefixes:
        strip = prefix != "/"
        body: list[Directive]
        if deg.maintenance:
            payload = {"error": "maintenance", "message": deg.maintenance}
            body = _canned(503, payload, policy.retry_after_s)
        elif upstream is None and fallback is None:
            payload = {"error": "unavailable", "message": "No replica is serving."}
            body = _canned(503, payload, policy.retry_after_s)
        else:
            body = [*limit_location]
            if shed_var is not None:
                # 418 never leaves the gateway: it only routes to the shed response.
                body += [
                    d("error_page", 418, "=", shed_loc),
                    d("if", shed_var, block=[d("return", 418)]),
                ]
            if fallback is not None:
                body += [
                    d("proxy_intercept_errors", "on"),
                    d("error_page", 502, 503, 504, "=", fallback_loc),
                ]
            if upstream is not None:
                body += _proxy(ident, site, strip=strip)
            else:
                body += _proxy(f"fallback_{ident}", site, strip=strip)
        locations.append(d("location", prefix, block=body))
    if shed_var is not None and not deg.maintenance:
        payload = {"error": "shed", "message": "Load shedding: retry later."}
        locations.append(
            d(
                "location",
                shed_loc,
                block=_canned(policy.shed_status, payload, policy.retry_after_s),
            )
        )
    if fallback is not None and upstream is not None and not deg.maintenance:
        # The primary location strips "/<deployment>/"; a named location cannot.
        unprefixed = d("rewrite", f"^/{site.deployment}/(.*)$", "/$1", "break")
        fallback_proxy = _proxy(f"fallback_{ident}", site, strip=False)
        locations.append(d("location", fallback_loc, block=[unprefixed, *fallback_proxy]))
    return http, locations


def render_errors(*, listen: str, sites: Sequence[Site]) -> dict[str, str]:
    """Why these inputs cannot be rendered; empty when they can."""
    errors: dict[str, str] = {}
    if not LISTEN_RE.match(listen) or not 1 <= int(listen.rsplit(":", 1)[-1]) <= 65535:
        errors["listen"] = "must be a port, or an IPv4 address and a port (127.0.0.1:8080)."
    seen: set[str] = set()
    for site in sites:
        where = site.deployment
        if not NAME_RE.match(site.deployment) or site.deployment in seen:
            errors["deployment"] = f"{where!r} is not a (unique) deployment name."
        seen.add(site.deployment)
        for name, message in policy_errors(site.policy).items():
            errors[f"{where}.{name}"] = message
        problem = _member_errors([*site.members, *site.fallback_members])
        if problem:
            errors[f"{where}.members"] = problem
        for klass in site.degradation.shed_fraction:
            if not CLASS_RE.match(klass) or klass in MAP_KEYWORDS:
                errors[f"{where}.shed_fraction"] = f"priority class {klass!r} is not a plain name."
    return errors


def render_payload(*, listen: str, sites: Sequence[Site]) -> list[Directive]:
    """The crossplane payload of the fragment; :class:`RenderError` for invalid input."""
    errors = render_errors(listen=listen, sites=sites)
    if errors:
        raise RenderError(errors)
    http: list[Directive] = []
    server: list[Directive] = [d("listen", listen)]
    for index, site in enumerate(sites):
        prefixes = [f"/{site.deployment}/"] + (["/"] if index == 0 else [])
        site_http, locations = site_directives(site, prefixes=prefixes)
        http += site_http
        server += locations
    if not sites:
        payload = {"error": "unavailable", "message": "This gateway fronts no deployment."}
        server.append(d("location", "/", block=_canned(503, payload, 5)))
    return [*http, d("server", block=server)]


def render_text(*, listen: str, sites: Sequence[Site]) -> str:
    return crossplane.build(render_payload(listen=listen, sites=sites)) + "\n"


def text_version(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def main_config(*, prefix: Path, include: Path, workers: int = 1) -> str:
    """A complete nginx.conf around a fragment, every path under ``prefix`` (no root-owned
    default paths), as used to test a fragment and to run one in tests."""
    http = [
        d("access_log", "off"),
        *[
            d(f"{kind}_temp_path", prefix / kind)
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        ],
        d("include", include),
    ]
    payload = [
        d("worker_processes", workers),
        d("pid", prefix / "nginx.pid"),
        d("error_log", prefix / "error.log", "warn"),
        d("events", block=[d("worker_connections", 1024)]),
        d("http", block=http),
    ]
    return crossplane.build(payload) + "\n"


def nginx_binary() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None


def nginx_test(text: str, *, binary: str) -> list[str]:
    """What ``nginx -t`` says is wrong with the fragment ``text`` (empty: valid)."""
    with tempfile.TemporaryDirectory(prefix="cp-nginx-test-") as tmp:
        prefix = Path(tmp)
        (prefix / "balancing.conf").write_text(text)
        (prefix / "nginx.conf").write_text(
            main_config(prefix=prefix, include=prefix / "balancing.conf")
        )
        try:
            result = subprocess.run(  # noqa: S603 - our binary, our temp files
                [
                    binary,
                    "-t",
                    "-q",
                    "-p",
                    str(prefix),
                    "-c",
                    str(prefix / "nginx.conf"),
                    "-e",
                    str(prefix / "error.log"),
                ],
                capture_output=True,
                text=True,
                timeout=NGINX_CHECK_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return [f"nginx -t could not run: {exc}"]
        if result.returncode == 0:
            return []
        lines = [
            line.replace(tmp, "<prefix>") for line in (result.stderr + result.stdout).splitlines()
        ]
        return [line for line in lines if line.strip()] or [f"nginx -t exited {result.returncode}"]


def render_and_validate(
    *, listen: str, sites: Sequence[Site], binary: str | None = None
) -> Rendered:
    """The fragment with its version, checked by the real ``nginx -t``. Invalid input
    raises :class:`RenderError`; no nginx binary is an error in ``errors`` (nothing
    unchecked is ever served)."""
    text = render_text(listen=listen, sites=sites)
    binary = binary or nginx_binary()
    errors = (
        nginx_test(text, binary=binary)
        if binary
        else ["nginx is not installed: the configuration cannot be checked."]
    )
    return Rendered(text=text, sha256=text_version(text), errors=errors)
