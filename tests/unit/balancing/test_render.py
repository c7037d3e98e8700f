"""Rendering: the crossplane payload of a policy, its members and degradation toggles
(structure, not whole-text snapshots), and the real ``nginx -t`` on the text."""

from __future__ import annotations

import json
from typing import Any

import pytest

from apps.balancing.members import Member
from apps.balancing.render import (
    MAX_OUTPUT_HEADER,
    Degradation,
    RenderError,
    Site,
    nginx_binary,
    nginx_test,
    render_and_validate,
    render_payload,
    text_version,
)
from apps.balancing.spec import PolicySpec
from tests.servers import binary_or_skip

MEMBERS = [
    Member(name="chat-0", address="10.0.0.1", port=8000),
    Member(name="chat-1", address="10.0.0.2", port=8000),
    Member(name="chat-2", address="10.0.0.3", port=8000, state="loading"),
    Member(name="chat-3", address="10.0.0.4", port=8000, state="draining"),
    Member(name="chat-4", address="10.0.0.5", port=8000, state="down"),
]


def find(payload: list[dict[str, Any]], directive: str, *args: str) -> dict[str, Any]:
    matches = [
        item
        for item in payload
        if item["directive"] == directive and item["args"][: len(args)] == list(args)
    ]
    assert len(matches) == 1, f"{directive} {args}: {len(matches)} found"
    return matches[0]


def all_of(block: list[dict[str, Any]], directive: str) -> list[list[str]]:
    return [item["args"] for item in block if item["directive"] == directive]


def server_block(payload: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return find(payload, "server")["block"]


def render(site: Site, listen: str = "8080") -> list[dict[str, Any]]:
    return render_payload(listen=listen, sites=[site])


def test_upstream__member_states__serving_listed_down_marked_loading_and_draining_left_out() -> (
    None
):
    upstream = find(render(Site("chat", PolicySpec(), MEMBERS)), "upstream", "cp_chat")["block"]
    servers = all_of(upstream, "server")
    assert [s[0] for s in servers] == ["10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.5:8000"]
    assert servers[2][-1] == "down"
    assert all("max_fails=1" in s and "fail_timeout=10s" in s for s in servers)
    assert all_of(upstream, "keepalive") == [["32"]]


@pytest.mark.parametrize(
    ("policy", "method"),
    [
        (PolicySpec(), []),
        (PolicySpec(algorithm="least_conn"), [["least_conn", []]]),
        (PolicySpec(algorithm="ip_hash"), [["ip_hash", []]]),
        (PolicySpec(algorithm="random_two"), [["random", ["two", "least_conn"]]]),
        (
            PolicySpec(algorithm="consistent_hash", hash_key="X-Session-Id"),
            [["hash", ["$http_x_session_id", "consistent"]]],
        ),
        (
            PolicySpec(algorithm="consistent_hash", hash_key="$remote_addr"),
            [["hash", ["$remote_addr", "consistent"]]],
        ),
    ],
)
def test_upstream__algorithm__its_nginx_method(policy: PolicySpec, method: list[Any]) -> None:
    upstream = find(render(Site("chat", policy, MEMBERS[:2])), "upstream", "cp_chat")["block"]
    methods = [
        [item["directive"], item["args"]]
        for item in upstream
        if item["directive"] in ("least_conn", "ip_hash", "random", "hash")
    ]
    assert methods == method


def test_upstream__weights_by_pod_and_address_and_a_backup__rendered_on_their_servers() -> None:
    policy = PolicySpec(
        algorithm="weighted_round_robin",
        weights={"chat-0": 5, "10.0.0.2:8000": 2},
        backups=["chat-1"],
    )
    upstream = find(render(Site("chat", policy, MEMBERS[:2])), "upstream", "cp_chat")["block"]
    servers = all_of(upstream, "server")
    assert "weight=5" in servers[0]
    assert "backup" not in servers[0]
    assert "weight=2" in servers[1]
    assert servers[1][-1] == "backup"


def test_upstream__plain_round_robin__weights_ignored() -> None:
    policy = PolicySpec(weights={"chat-0": 5})
    upstream = find(render(Site("chat", policy, MEMBERS[:2])), "upstream", "cp_chat")["block"]
    assert not any(arg.startswith("weight=") for s in all_of(upstream, "server") for arg in s)


def test_location__streaming_and_safe_retries__buffering_off_long_reads_non_idempotent_never() -> (
    None
):
    policy = PolicySpec(read_timeout_s=900, next_upstream_tries=3)
    location = find(server_block(render(Site("chat", policy, MEMBERS))), "location", "/chat/")
    block = location["block"]
    assert all_of(block, "proxy_pass") == [["http://cp_chat/"]]
    assert all_of(block, "proxy_buffering") == [["off"]]
    assert all_of(block, "proxy_read_timeout") == [["900s"]]
    assert all_of(block, "proxy_next_upstream") == [["error", "timeout", "http_502", "http_503"]]
    assert all_of(block, "proxy_next_upstream_tries") == [["3"]]
    assert all_of(block, "proxy_set_header")[1] == ["Connection", ""]


def test_server__first_deployment__also_answers_on_root() -> None:
    sites = [Site("chat", PolicySpec(), MEMBERS), Site("embed", PolicySpec(), MEMBERS)]
    server = server_block(render_payload(listen="127.0.0.1:8081", sites=sites))
    assert all_of(server, "listen") == [["127.0.0.1:8081"]]
    assert [loc[0] for loc in all_of(server, "location")] == ["/chat/", "/", "/embed/"]


def test_shedding__fractions_by_class__split_clients_per_class_and_map_on_priority_header() -> None:
    degradation = Degradation(shed_fraction={"low": 0.25, "batch": 1.0, "high": 0.0})
    policy = PolicySpec(priority_header="X-Class", shed_status=503, retry_after_s=30)
    payload = render(Site("chat", policy, MEMBERS, degradation))
    split = find(payload, "split_clients")
    assert split["args"][0] == "${request_id}"
    assert [[i["directive"], i["args"]] for i in split["block"]] == [["25%", ["1"]], ["*", ["0"]]]
    mapping = find(payload, "map", "$http_x_class", "$cp_chat_shed")["block"]
    assert [[i["directive"], i["args"]] for i in mapping] == [
        ["batch", ["1"]],
        ["low", [split["args"][1]]],
        ["default", ["0"]],
    ]
    server = server_block(payload)
    location = find(server, "location", "/chat/")["block"]
    assert find(location, "if")["args"] == ["$cp_chat_shed"]
    shed = find(server, "location", "@cp_chat_shed")["block"]
    assert all_of(shed, "return")[0][0] == "503"
    assert all_of(shed, "add_header") == [["Retry-After", "30", "always"]]


def test_shedding__nothing_to_shed__no_split_and_no_check() -> None:
    payload = render(Site("chat", PolicySpec(), MEMBERS, Degradation(shed_fraction={"low": 0})))
    assert not [i for i in payload if i["directive"] in ("split_clients", "map")]
    assert not all_of(find(server_block(payload), "location", "/chat/")["block"], "if")


def test_maintenance__message__canned_503_and_no_proxying() -> None:
    payload = render(Site("chat", PolicySpec(), MEMBERS, Degradation(maintenance="Back soon")))
    block = find(server_block(payload), "location", "/chat/")["block"]
    assert not all_of(block, "proxy_pass")
    status, body = all_of(block, "return")[0]
    assert status == "503"
    assert json.loads(body)["message"] == "Back soon"


def test_fallback__members_given__fallback_upstream_and_error_page_to_it() -> None:
    site = Site(
        "chat",
        PolicySpec(),
        MEMBERS,
        Degradation(fallback="small"),
        fallback_members=[Member(name="small-0", address="10.0.1.1", port=8000)],
    )
    payload = render(site)
    fallback = find(payload, "upstream", "fallback_cp_chat")["block"]
    assert [s[0] for s in all_of(fallback, "server")] == ["10.0.1.1:8000"]
    server = server_block(payload)
    location = find(server, "location", "/chat/")["block"]
    assert all_of(location, "error_page") == [["502", "503", "504", "=", "@cp_chat_fallback"]]
    assert all_of(location, "proxy_intercept_errors") == [["on"]]
    named = find(server, "location", "@cp_chat_fallback")["block"]
    assert all_of(named, "proxy_pass") == [["http://fallback_cp_chat"]]


def test_no_serving_member__no_fallback__503_instead_of_an_empty_upstream() -> None:
    payload = render(Site("chat", PolicySpec(), [MEMBERS[2]]))
    assert not [i for i in payload if i["directive"] == "upstream"]
    block = find(server_block(payload), "location", "/chat/")["block"]
    assert all_of(block, "return")[0][0] == "503"


def test_degradation__token_caps__passed_to_the_backend_as_headers() -> None:
    degradation = Degradation(max_output_tokens=256)
    block = find(
        server_block(render(Site("chat", PolicySpec(), MEMBERS, degradation))), "location", "/chat/"
    )["block"]
    assert [MAX_OUTPUT_HEADER, "256"] in all_of(block, "proxy_set_header")


def test_limit_req__rate_per_tenant__zone_keyed_by_tenant_header_and_429() -> None:
    policy = PolicySpec(tenant_header="X-Org", limit_req_rate="20r/s", limit_req_burst=40)
    payload = render(Site("chat", policy, MEMBERS))
    zone = find(payload, "limit_req_zone")
    assert zone["args"] == ["$http_x_org", "zone=limit_cp_chat:10m", "rate=20r/s"]
    block = find(server_block(payload), "location", "/chat/")["block"]
    assert all_of(block, "limit_req") == [["zone=limit_cp_chat", "burst=40", "nodelay"]]
    assert all_of(block, "limit_req_status") == [["429"]]


@pytest.mark.parametrize(
    ("site", "listen", "field"),
    [
        (Site("chat", PolicySpec(algorithm="nope"), MEMBERS), "8080", "chat.algorithm"),
        (
            Site("chat", PolicySpec(), [Member(name="", address="10.0.0.1;", port=80)]),
            "8080",
            "chat.members",
        ),
        (
            Site("chat", PolicySpec(), [Member(name="", address="10.0.0.1", port=80, state="odd")]),
            "8080",
            "chat.members",
        ),  # type: ignore[arg-type]
        (Site("Chat_1", PolicySpec(), MEMBERS), "8080", "deployment"),
        (Site("chat\n", PolicySpec(), MEMBERS), "8080", "deployment"),
        (Site("chat", PolicySpec(), MEMBERS), "80;", "listen"),
        (Site("chat", PolicySpec(), MEMBERS), "8080\n", "listen"),
        (Site("chat", PolicySpec(), MEMBERS), "\u0668\u0660", "listen"),  # Arabic-Indic 80
        (Site("chat", PolicySpec(), MEMBERS), "70000", "listen"),
        (
            Site("chat", PolicySpec(), MEMBERS, Degradation(shed_fraction={"default": 0.5})),
            "8080",
            "chat.shed_fraction",
        ),
    ],
)
def test_render_payload__invalid_input__render_error_naming_it(
    site: Site, listen: str, field: str
) -> None:
    with pytest.raises(RenderError) as caught:
        render_payload(listen=listen, sites=[site])
    assert field in caught.value.errors


def _everything() -> list[Site]:
    degradation = Degradation(
        shed_fraction={"low": 0.3333, "batch": 1},
        fallback="small",
        max_output_tokens=512,
        max_context_tokens=8192,
    )
    policy = PolicySpec(
        algorithm="consistent_hash",
        hash_key="X-Session-Id",
        limit_req_rate="10r/s",
        limit_req_burst=5,
    )
    fallback = [Member(name="small-0", address="10.0.1.1", port=8000)]
    return [
        Site("chat", policy, MEMBERS, degradation, fallback),
        Site("embed", PolicySpec(algorithm="least_conn", backups=["chat-1"]), MEMBERS),
        Site("down", PolicySpec(), [], Degradation(maintenance='Say "$x" \\ later')),
    ]


def test_render_and_validate__every_feature__nginx_t_accepts_it_and_version_is_its_sha256() -> None:
    binary = binary_or_skip(nginx_binary(), "nginx", "nginx-light")
    rendered = render_and_validate(listen="8080", sites=_everything(), binary=binary)
    assert rendered.errors == []
    assert rendered.sha256 == text_version(rendered.text)
    again = render_and_validate(listen="8080", sites=_everything(), binary=binary)
    assert again.sha256 == rendered.sha256


def test_render_and_validate__names_that_look_like_derived_ones__no_collision_in_nginx() -> None:
    binary = binary_or_skip(nginx_binary(), "nginx", "nginx-light")
    chat = _everything()[0]
    sites = [
        chat,
        *(
            Site(name, chat.policy, MEMBERS)
            for name in (
                "chat-fallback",
                "chat-shed",
                "chat-shed-0",
                "chat-tenant",
                "limit-cp-chat",
            )
        ),
    ]
    rendered = render_and_validate(listen="8080", sites=sites, binary=binary)
    assert rendered.errors == []


def test_nginx_test__duplicate_upstream__nginx_errors_returned() -> None:
    binary = binary_or_skip(nginx_binary(), "nginx", "nginx-light")
    text = "upstream x { server 10.0.0.1:80; }\nupstream x { server 10.0.0.1:80; }\n"
    errors = nginx_test(text, binary=binary)
    assert errors
    assert "duplicate upstream" in errors[0]
    assert "<prefix>/balancing.conf" in errors[0]
