"""Outbound destinations: which URLs the server may call on a team's behalf, and calling them.

Teams give the control plane URLs that the server then calls: chat webhooks, a cluster's
Prometheus. Without a check, such a URL reaches whatever the server's network reaches —
the metadata service at 169.254.169.254, the database on localhost:5432, an admin port on
the pod network — and the answer comes back to the team. So every team-supplied URL goes
through this module:

1. :func:`parse_destination` reads the URL strictly: ``http``/``https`` only, a host and
   nothing else before it (no ``user:password@``, which is a classic way to hide the real
   host), the host in IDNA form, IP literals only in their canonical form. Forms that
   resolvers read as an address but people do not (``0x7f000001``, ``2130706433``,
   ``127.1``, ``0177.0.0.1``) are refused outright, following the WHATWG URL standard's
   rule that a host whose last label is a number is an IPv4 address.
2. :func:`address_refusal` classifies one IP address: loopback, link-local, private,
   shared (CGNAT), multicast, unspecified, reserved, documentation and other ranges that
   are not globally routable are refused, including IPv4-mapped, 6to4 and NAT64 IPv6
   forms of them. ``OUTBOUND_ALLOWED_NETWORKS`` (CIDRs, empty by default in every
   environment) lets an operator allow chosen networks, e.g. a self-hosted receiver.
3. :func:`destination_check` resolves the host (every A/AAAA record) and refuses the URL
   if any address is refused: the check when a URL is saved.
4. :func:`guarded_session` / :class:`GuardedAdapter` are how the server calls such a URL:
   the connection resolves the host, checks every address and connects only to those
   checked addresses, in one step. A DNS answer that changes between the save-time check
   and the call (DNS rebinding) is therefore checked again, and no second lookup happens
   between check and connect. Each redirect hop opens its own checked connection;
   environment proxies are ignored (a proxy would resolve the name itself).

Settings are read at each call, so ``override_settings`` and a changed configuration apply
at once. Errors name the host, never the URL's path or query (webhook URLs carry tokens).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import idna
import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection as urllib3_connection

__all__ = [
    "Destination",
    "DestinationRefused",
    "GuardedAdapter",
    "GuardedHTTPConnectionPool",
    "GuardedHTTPSConnectionPool",
    "IPAddress",
    "Resolver",
    "address_refusal",
    "allowed_networks",
    "destination_check",
    "guarded_session",
    "host_matches",
    "parse_destination",
    "refusal_in",
    "resolve_checked",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[..., list[tuple[Any, ...]]]


class DestinationRefused(ValueError):
    """The URL may not be called; the message says why and names only the host."""


@dataclass(frozen=True)
class Destination:
    """A URL that passed the syntax checks, and (after resolution) its addresses."""

    scheme: str
    host: str  # lower-case ASCII (IDNA) host without a trailing dot, or an IP literal
    port: int
    literal: IPAddress | None = None  # the host, when the URL names an IP address
    addresses: tuple[IPAddress, ...] = ()

    @property
    def origin(self) -> str:
        shown = f"[{self.host}]" if isinstance(self.literal, ipaddress.IPv6Address) else self.host
        return f"{self.scheme}://{shown}:{self.port}"


# -- address classification ---------------------------------------------------------------

_V4_REFUSED: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "unspecified ('this network', 0.0.0.0/8)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata services live here)"),
    ("10.0.0.0/8", "private"),
    ("172.16.0.0/12", "private"),
    ("192.168.0.0/16", "private"),
    ("100.64.0.0/10", "shared address space (carrier-grade NAT)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),  # includes the broadcast address 255.255.255.255
    ("192.0.0.0/24", "reserved (IETF protocol assignments)"),
    ("192.0.2.0/24", "reserved (documentation)"),
    ("198.51.100.0/24", "reserved (documentation)"),
    ("203.0.113.0/24", "reserved (documentation)"),
    ("198.18.0.0/15", "reserved (benchmarking)"),
    ("192.88.99.0/24", "reserved (6to4 relay anycast)"),
)
_V6_REFUSED: tuple[tuple[str, str], ...] = (
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "private (site-local)"),
    ("fc00::/7", "private (unique local)"),
    ("ff00::/8", "multicast"),
    ("2001:db8::/32", "reserved (documentation)"),
    ("3fff::/20", "reserved (documentation)"),
    ("2001::/23", "reserved (IETF protocol assignments, Teredo)"),
    ("64:ff9b:1::/48", "private (local-use NAT64)"),
)
_V4_NETS = tuple((ipaddress.IPv4Network(n), why) for n, why in _V4_REFUSED)
_V6_NETS = tuple((ipaddress.IPv6Network(n), why) for n, why in _V6_REFUSED)
_V6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_V6_6TO4 = ipaddress.IPv6Network("2002::/16")
_V6_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_v4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str] | None:
    """The IPv4 address an IPv6 address stands for, when connecting to it reaches that
    IPv4 address (mapped, 6to4, NAT64 well-known prefix)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, "IPv4-mapped"
    if ip in _V6_6TO4 and ip.sixtofour is not None:
        return ip.sixtofour, "6to4"
    if ip in _V6_NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "NAT64"
    return None


def address_refusal(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public destination (e.g. "loopback"), or None if it is one.

    This ignores ``OUTBOUND_ALLOWED_NETWORKS``; :func:`resolve_checked` applies it."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
        embedded = _embedded_v4(ip)
        if embedded is not None:
            inner, form = embedded
            why = address_refusal(inner)
            return f"{form} {why} address {inner}" if why else None
        for net6, why in _V6_NETS:
            if ip in net6:
                return why
        if ip not in _V6_GLOBAL_UNICAST:
            # ::a.b.c.d (IPv4-compatible, deprecated), 100::/64 discard, and the rest of
            # what IANA has not allocated for global unicast.
            return "reserved"
        return None
    for net4, why in _V4_NETS:
        if ip in net4:
            return why
    if not ip.is_global:
        return "not globally routable"
    return None


def allowed_networks() -> tuple[IPNetwork, ...]:
    """``OUTBOUND_ALLOWED_NETWORKS`` as networks (validated when settings load)."""
    return tuple(
        ipaddress.ip_network(n, strict=False)
        for n in getattr(settings, "OUTBOUND_ALLOWED_NETWORKS", ())
    )


def _allowed(ip: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    candidates: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_v4(ip)
        if embedded is not None:
            candidates.append(embedded[0])
    return any(c.version == n.version and c in n for c in candidates for n in networks)


def _check_address(ip: IPAddress, host: str, networks: Sequence[IPNetwork]) -> None:
    why = address_refusal(ip)
    if why is None or _allowed(ip, networks):
        return
    named = "" if host == str(ip) else f"{host} resolves to "
    raise DestinationRefused(
        f"{named}{ip}, a {why} address; the server does not call internal addresses "
        "(an operator can allow a network with OUTBOUND_ALLOWED_NETWORKS)"
    )


# -- URL syntax ---------------------------------------------------------------------------

_CANONICAL_V4 = re.compile(
    r"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}"
)
_NUMERIC_LABEL = re.compile(r"\d+|0[xX][0-9a-fA-F]*")
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f\\]")


def parse_destination(url: str, *, field: str = "URL") -> Destination:
    """``url`` checked for form only (no DNS); :class:`DestinationRefused` saying what is
    wrong, with ``field`` naming the setting in the message."""
    if not isinstance(url, str) or not url:
        raise DestinationRefused(f"{field} is required")
    if _FORBIDDEN.search(url):
        raise DestinationRefused(f"{field} must not contain spaces, control characters or '\\'")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise DestinationRefused(f"{field} is not a valid URL (check the host and port)") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise DestinationRefused(f"{field} must be an http:// or https:// URL")
    if "@" in parts.netloc:
        raise DestinationRefused(
            f"{field} must not carry a user name or password before the host ('…@host')"
        )
    raw_host = parts.hostname or ""
    if not raw_host:
        raise DestinationRefused(f"{field} names no host")
    if port == 0:
        raise DestinationRefused(f"{field} has an invalid port")
    port = port or (443 if scheme == "https" else 80)
    literal: IPAddress | None
    if "[" in parts.netloc:
        try:
            literal = ipaddress.IPv6Address(raw_host)
        except ValueError:
            raise DestinationRefused(f"{field} has an invalid IPv6 address") from None
        if literal.scope_id:
            raise DestinationRefused(f"{field} must not name an IPv6 zone ('%…')")
        return Destination(scheme, str(literal), port, literal)
    if "%" in raw_host:
        raise DestinationRefused(f"{field} must not percent-encode the host")
    host = raw_host[:-1] if raw_host.endswith(".") else raw_host
    labels = host.split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        if not _CANONICAL_V4.fullmatch(host):
            raise DestinationRefused(
                f"{field} names the host {raw_host!r}, which reads as an IP address in a "
                "non-standard form; write IPv4 addresses as four decimal numbers (a.b.c.d)"
            )
        literal = ipaddress.IPv4Address(host)
        return Destination(scheme, str(literal), port, literal)
    try:
        ascii_host = idna.encode(host, uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError):
        raise DestinationRefused(f"{field} has an invalid host name") from None
    return Destination(scheme, ascii_host, port, None)


def host_matches(host: str, patterns: Iterable[str]) -> bool:
    """Whether ``host`` is one of ``patterns``: exact names, or ``*.example.com`` for any
    name below example.com (not example.com itself)."""
    host = host.lower().rstrip(".")
    for pattern in patterns:
        pattern = pattern.lower().rstrip(".")
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]):
                return True
        elif host == pattern:
            return True
    return False


# -- resolution ---------------------------------------------------------------------------


def resolve_checked(
    host: str,
    port: int,
    *,
    resolver: Resolver = socket.getaddrinfo,
    networks: Sequence[IPNetwork] | None = None,
) -> tuple[IPAddress, ...]:
    """Every address ``host`` resolves to, once each, in the resolver's order; raises
    :class:`DestinationRefused` if any is refused (one internal answer among public ones
    is enough to refuse: the connection may pick any of them), and ``socket.gaierror``
    when the name does not resolve."""
    if networks is None:
        networks = allowed_networks()
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        _check_address(literal, host, networks)
        return (literal,)
    infos = resolver(host, port, type=socket.SOCK_STREAM)
    found: list[IPAddress] = []
    for family, *_rest, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in found:
            found.append(ip)
    if not found:
        raise socket.gaierror(socket.EAI_NONAME, f"{host} has no IPv4 or IPv6 address")
    for ip in found:
        _check_address(ip, host, networks)
    return tuple(found)


def destination_check(
    url: str,
    *,
    field: str = "URL",
    hosts: Sequence[str] | None = None,
    resolver: Resolver = socket.getaddrinfo,
    require_resolution: bool = False,
) -> Destination:
    """The save-time check: the URL's form, its host against ``hosts`` (when a kind of
    destination has fixed hosts) and every address the host resolves to now.

    A name that does not resolve is accepted unless ``require_resolution``: it cannot
    reach anything internal now, and the connection checks again when it is called."""
    dest = parse_destination(url, field=field)
    if hosts is not None and not host_matches(dest.host, hosts):
        raise DestinationRefused(f"{field} must point at {' or '.join(hosts)} (got {dest.host})")
    try:
        addresses = resolve_checked(dest.host, dest.port, resolver=resolver)
    except DestinationRefused as exc:
        raise DestinationRefused(f"{field}: {exc}") from None
    except (socket.gaierror, UnicodeError):
        if require_resolution:
            raise DestinationRefused(f"{field}: the host {dest.host} does not resolve") from None
        addresses = ()
    return Destination(dest.scheme, dest.host, dest.port, dest.literal, addresses)


# -- calling a destination ----------------------------------------------------------------


class DestinationRefusedError(NewConnectionError):
    """A connection refused by the guard (urllib3's form, so that requests wraps it in a
    ConnectionError like any failed connection). :func:`refusal_in` finds it again."""

    def __init__(self, conn: HTTPConnection, reason: str) -> None:
        super().__init__(conn, reason)
        self.reason = reason


class _GuardedConnectionMixin:
    host: str
    port: int
    timeout: Any
    source_address: Any
    socket_options: Any

    def _new_conn(self) -> socket.socket:
        conn: Any = self
        host = self.host.rstrip(".")
        try:
            addresses = resolve_checked(host, self.port)
        except DestinationRefused as exc:
            raise DestinationRefusedError(conn, str(exc)) from None
        except (socket.gaierror, UnicodeError) as exc:
            raise NameResolutionError(self.host, conn, socket.gaierror(str(exc))) from exc
        last: OSError | None = None
        for ip in addresses:
            try:
                return urllib3_connection.create_connection(
                    (str(ip), self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except TimeoutError as exc:
                raise ConnectTimeoutError(
                    conn, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
                ) from exc
            except OSError as exc:
                last = exc
        raise NewConnectionError(conn, f"Failed to establish a new connection: {last}")


class _GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    pass


class GuardedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """A requests transport adapter whose every new connection resolves its host, checks
    every address (:func:`resolve_checked`) and connects only to those addresses. The TLS
    server name and certificate check still use the URL's host. Proxies are never used."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": GuardedHTTPConnectionPool,
            "https": GuardedHTTPSConnectionPool,
        }

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        kwargs["proxies"] = None  # a proxy would resolve and reach the host unchecked
        return super().send(request, *args, **kwargs)


def guard_session(session: requests.Session, **adapter_options: Any) -> requests.Session:
    """Mount :class:`GuardedAdapter` on ``session`` for http and https, and stop it from
    reading proxies from the environment. Returns the session."""
    adapter = GuardedAdapter(**adapter_options)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.trust_env = False
    return session


def guarded_session(**adapter_options: Any) -> requests.Session:
    """A new session whose connections go only to checked addresses."""
    return guard_session(requests.Session(), **adapter_options)


def refusal_in(exc: BaseException) -> str | None:
    """The guard's reason when ``exc`` (a requests or urllib3 error) comes from a refused
    destination, else None."""
    seen: set[int] = set()
    pending: list[Any] = [exc]
    while pending:
        item = pending.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, DestinationRefusedError):
            return item.reason
        if isinstance(item, BaseException):
            pending.extend(item.args)
            pending.extend([getattr(item, "reason", None), item.__cause__, item.__context__])
    return None
