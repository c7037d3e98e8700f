"""The outbound guard: URL form, address classification, resolution and the pinned
connection (apps/core/netguard.py)."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from apps.core.netguard import (
    DestinationRefused,
    address_refusal,
    destination_check,
    guarded_session,
    host_matches,
    parse_destination,
    refusal_in,
    resolve_checked,
)
from tests.certificates import self_signed_certificate

REFUSED_V4 = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
]


def _in(network: str) -> st.SearchStrategy[ipaddress.IPv4Address]:
    net = ipaddress.IPv4Network(network)
    return st.integers(int(net.network_address), int(net.broadcast_address)).map(
        ipaddress.IPv4Address
    )


refused_v4 = st.one_of([_in(n) for n in REFUSED_V4])
public_v4 = (
    st.integers(0, 2**32 - 1)
    .map(ipaddress.IPv4Address)
    .filter(lambda ip: not any(ip in ipaddress.IPv4Network(n) for n in REFUSED_V4) and ip.is_global)
)


# -- classification ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("169.254.169.254", "link-local"),
        ("10.1.2.3", "private"),
        ("172.31.0.1", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - an address under test, not a bind
        ("224.0.0.1", "multicast"),
        ("255.255.255.255", "reserved"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fd00::1", "private"),
        ("fec0::1", "private"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "documentation"),
        ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
        ("::ffff:169.254.169.254", "IPv4-mapped link-local"),
        ("::127.0.0.1", "reserved"),  # IPv4-compatible, deprecated
        ("2002:7f00:1::", "6to4 loopback"),
        ("64:ff9b::a9fe:a9fe", "NAT64 link-local"),
    ],
)
def test_address_refusal__internal_address__refused_with_its_range(
    address: str, reason: str
) -> None:
    why = address_refusal(ipaddress.ip_address(address))
    assert why is not None
    assert reason in why


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_address_refusal__public_address__accepted(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is None


@given(refused_v4)
def test_address_refusal__any_address_in_a_refused_v4_range__refused(
    ip: ipaddress.IPv4Address,
) -> None:
    assert address_refusal(ip) is not None


@given(refused_v4)
def test_address_refusal__ipv4_mapped_and_6to4_forms__refused_like_the_ipv4(
    ip: ipaddress.IPv4Address,
) -> None:
    mapped = ipaddress.IPv6Address(f"::ffff:{ip}")
    sixtofour = ipaddress.IPv6Address((0x2002 << 112) | (int(ip) << 80))
    assert address_refusal(mapped) is not None
    assert address_refusal(sixtofour) is not None


@given(public_v4)
def test_address_refusal__public_v4__accepted_also_when_mapped(ip: ipaddress.IPv4Address) -> None:
    assert address_refusal(ip) is None
    assert address_refusal(ipaddress.IPv6Address(f"::ffff:{ip}")) is None


@given(st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address))
def test_address_refusal__ipv6_outside_global_unicast__refused(ip: ipaddress.IPv6Address) -> None:
    if (
        ip not in ipaddress.IPv6Network("2000::/3")
        and ip.ipv4_mapped is None
        and ip not in ipaddress.IPv6Network("64:ff9b::/96")
    ):
        assert address_refusal(ip) is not None


# -- URL form ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://0x7f000001/", "non-standard form"),
        ("http://2130706433/", "non-standard form"),
        ("http://127.1/", "non-standard form"),
        ("http://0177.0.0.1/", "non-standard form"),
        ("http://127.0.0.01/", "non-standard form"),
        ("http://0x7f.0.0.1/", "non-standard form"),
        ("http://hooks.slack.com@127.0.0.1/x", "user name or password"),
        ("http://user:pw@example.com/x", "user name or password"),
        ("ftp://example.com/x", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("gopher://127.0.0.1:6379/_x", "http:// or https://"),
        ("http:///x", "names no host"),
        ("http://example.com:99999/", "not a valid URL"),
        ("http://example.com:0/", "invalid port"),
        ("http://exa mple.com/", "spaces"),
        ("http://example.com\\@127.0.0.1/", "'\\'"),
        ("http://[fe80::1%25eth0]/", "zone"),
        ("http://127.0.0.1%2e/", "percent-encode"),
    ],
)
def test_parse_destination__odd_form__refused_naming_the_field(url: str, fragment: str) -> None:
    with pytest.raises(DestinationRefused) as err:
        parse_destination(url, field="webhook_url")
    assert fragment in str(err.value)
    assert "webhook_url" in str(err.value)


def test_parse_destination__idn_host__ascii_form() -> None:
    dest = parse_destination("https://Bücher.example./hook?x=1")
    assert dest.host == "xn--bcher-kva.example"
    assert dest.port == 443
    assert dest.literal is None


def test_parse_destination__ipv6_literal__parsed() -> None:
    dest = parse_destination("http://[::1]:8080/x")
    assert dest.literal == ipaddress.IPv6Address("::1")
    assert dest.port == 8080


@pytest.mark.parametrize(
    ("host", "patterns", "expected"),
    [
        ("hooks.slack.com", ["hooks.slack.com"], True),
        ("HOOKS.slack.com.", ["hooks.slack.com"], True),
        ("evilhooks.slack.com", ["hooks.slack.com"], False),
        ("hooks.slack.com.evil.example", ["hooks.slack.com"], False),
        ("prod-1.westus.logic.azure.com", ["*.logic.azure.com"], True),
        ("logic.azure.com", ["*.logic.azure.com"], False),
        ("xlogic.azure.com", ["*.logic.azure.com"], False),
    ],
)
def test_host_matches__patterns__exact_or_below_a_wildcard(
    host: str, patterns: list[str], expected: bool
) -> None:
    assert host_matches(host, patterns) is expected


# -- resolution ----------------------------------------------------------------------------


def _resolver(*addresses: str) -> Any:
    def resolve(host: str, port: int, **kwargs: Any) -> list[tuple[Any, ...]]:
        out = []
        for a in addresses:
            if ":" in a:
                out.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port, 0, 0)))
            else:
                out.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)))
        return out

    return resolve


def test_resolve_checked__one_internal_answer_among_public__refused() -> None:
    with pytest.raises(DestinationRefused, match=r"rebind\.example resolves to 10\.0\.0\.7"):
        resolve_checked(
            "rebind.example", 443, resolver=_resolver("8.8.8.8", "10.0.0.7"), networks=()
        )


def test_resolve_checked__all_public__every_address_returned_once() -> None:
    found = resolve_checked(
        "ok.example", 443, resolver=_resolver("8.8.8.8", "2606:4700::1", "8.8.8.8"), networks=()
    )
    assert [str(a) for a in found] == ["8.8.8.8", "2606:4700::1"]


def test_resolve_checked__allowed_network__internal_address_accepted() -> None:
    nets = (ipaddress.ip_network("10.0.0.0/24"),)
    assert resolve_checked("chat.corp", 443, resolver=_resolver("10.0.0.7"), networks=nets)
    with pytest.raises(DestinationRefused):
        resolve_checked("chat.corp", 443, resolver=_resolver("10.0.1.7"), networks=nets)


def test_destination_check__localhost__refused_after_dns() -> None:
    with pytest.raises(DestinationRefused, match=r"localhost resolves to 127\.0\.0\.1"):
        destination_check("http://localhost:5432/", field="webhook_url")


def test_destination_check__unresolvable_name__accepted_unless_required() -> None:
    dest = destination_check("https://hook.example.invalid/x")
    assert dest.addresses == ()
    with pytest.raises(DestinationRefused, match="does not resolve"):
        destination_check("https://hook.example.invalid/x", require_resolution=True)


def test_destination_check__default_settings__loopback_refused_in_every_form() -> None:
    for url in (
        "http://127.0.0.1:8080/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/",
        "http://localhost:5432/",
        "http://[::ffff:127.0.0.1]/",
        "http://0x7f000001/",
    ):
        with pytest.raises(DestinationRefused):
            destination_check(url)


def test_destination_check__host_list__other_host_refused() -> None:
    with pytest.raises(DestinationRefused, match=r"must point at hooks\.slack\.com"):
        destination_check("https://evil.example/x", hosts=["hooks.slack.com"])


# -- the pinned connection -----------------------------------------------------------------


class _Server:
    def __init__(self, host: str, redirect_to: str | None = None) -> None:
        self.hits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits.append(self.path)
                if redirect_to:
                    self.send_response(302)
                    self.send_header("Location", redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = b"internal-secret"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def internal() -> Iterator[_Server]:
    server = _Server("127.0.0.1")
    yield server
    server.stop()


def test_guarded_session__loopback_not_allowed__refused_before_connecting(
    internal: _Server, settings: Any
) -> None:
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    with guarded_session() as session, pytest.raises(requests.ConnectionError) as err:
        session.get(internal.url + "/admin", timeout=5)
    assert "loopback" in (refusal_in(err.value) or "")
    assert internal.hits == []


def test_guarded_session__name_resolving_to_loopback__refused(
    internal: _Server, settings: Any
) -> None:
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    port = internal.url.rsplit(":", 1)[1]
    with guarded_session() as session, pytest.raises(requests.ConnectionError) as err:
        session.get(f"http://localhost:{port}/", timeout=5)
    assert "localhost resolves to 127.0.0.1" in (refusal_in(err.value) or "")
    assert internal.hits == []


def test_guarded_session__allowed_network__connects(internal: _Server, settings: Any) -> None:
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    with guarded_session() as session:
        assert session.get(internal.url + "/ok", timeout=5).status_code == 200
    assert internal.hits == ["/ok"]


def test_guarded_session__environment_proxy__ignored(
    internal: _Server, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    monkeypatch.setenv("HTTP_PROXY", internal.url)
    monkeypatch.setenv("NO_PROXY", "")
    with guarded_session() as session, pytest.raises(requests.ConnectionError):
        session.get("http://10.0.0.1/", timeout=5)
    assert internal.hits == []


def test_guarded_session__redirect_to_a_loopback_address_not_allowed__not_followed(
    settings: Any,
) -> None:
    target = _Server("127.0.0.2")
    entry = _Server("127.0.0.1", redirect_to=target.url + "/secret")
    try:
        settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
        with guarded_session() as session, pytest.raises(requests.ConnectionError) as err:
            session.get(entry.url + "/start", timeout=5)
        assert "127.0.0.2, a loopback address" in (refusal_in(err.value) or "")
        assert entry.hits == ["/start"]
        assert target.hits == []
    finally:
        entry.stop()
        target.stop()


def test_guarded_session__https__certificate_checked_against_the_url_host(
    internal: _Server, settings: Any, tmp_path: Any
) -> None:
    """The connection goes to the checked address, while TLS still verifies the name in
    the URL (a certificate for "localhost" works for https://localhost, not for the IP)."""
    import ssl

    cert, key = self_signed_certificate("localhost", tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    internal.server.socket = context.wrap_socket(internal.server.socket, server_side=True)
    port = internal.url.rsplit(":", 1)[1]
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    with guarded_session() as session:
        assert session.get(f"https://localhost:{port}/tls", verify=cert, timeout=5).ok
        with pytest.raises(requests.exceptions.SSLError):
            session.get(f"https://127.0.0.1:{port}/ip", verify=cert, timeout=5)
    assert internal.hits == ["/tls"]
