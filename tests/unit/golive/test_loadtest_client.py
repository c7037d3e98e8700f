"""The load test's client against small real HTTP servers that answer well and badly."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from apps.golive.loadtest import LoadTestPlan, run_load_test
from apps.golive.loadtest.client import Observation, send
from tests.servers import run_coroutine

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _chunk(text: str | None, *, model: str = "m", usage: dict[str, int] | None = None) -> bytes:
    choices = [] if text is None else [{"index": 0, "delta": {"content": text}}]
    body: dict[str, Any] = {"object": "chat.completion.chunk", "model": model, "choices": choices}
    body["usage"] = usage
    return f"data: {json.dumps(body)}\n\n".encode()


def _streaming(
    parts: list[bytes], *, pause_s: float = 0.0, content_type: str = "text/event-stream"
) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": content_type})
        await response.prepare(request)
        for part in parts:
            await response.write(part)
            if pause_s:
                await asyncio.sleep(pause_s)
        await response.write_eof()
        return response

    return handler


GOOD = [
    _chunk(""),  # vLLM's first chat chunk may carry the role only
    _chunk("a"),
    _chunk(" b"),
    _chunk(" c"),
    _chunk(None, usage={"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}),
    b"data: [DONE]\n\n",
]


async def _observe(
    handler: Handler, *, strict: bool = False, timeout_s: float = 5.0
) -> Observation:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            return await send(
                session,
                f"http://127.0.0.1:{port}/v1/chat/completions",
                {"model": "m"},
                headers={},
                timeout_s=timeout_s,
                stream=True,
                strict=strict,
            )
    finally:
        await runner.cleanup()


def observe(handler: Handler, **kwargs: Any) -> Observation:
    return run_coroutine(_observe(handler, **kwargs))


@pytest.mark.parametrize("strict", [False, True])
def test_send__well_formed_stream__timed_and_counted(strict: bool) -> None:
    obs = observe(_streaming(GOOD, pause_s=0.02), strict=strict)
    assert obs.ok
    assert obs.error is None
    assert obs.done
    assert obs.output_tokens == 3
    assert obs.prompt_tokens == 12
    assert obs.text_events == 3
    assert obs.ttft_s is not None
    assert obs.itl_s is not None
    assert obs.e2e_s is not None
    # The role-only first chunk is not the first token; tokens came ~20 ms apart.
    assert 0.0 < obs.ttft_s < obs.e2e_s
    assert obs.itl_s > 0.0
    assert obs.problems == []


def test_send__role_only_first_chunk__ttft_taken_at_the_first_text() -> None:
    obs = observe(_streaming(GOOD, pause_s=0.1))
    assert obs.ttft_s is not None
    assert obs.ttft_s >= 0.05  # the text came one pause after the role-only chunk


def test_send__usage_written_with_spaces__found_on_the_fast_path() -> None:
    usage = (
        b'data: {"choices": [], "model": "m", '
        b'"usage": {"prompt_tokens": 5, "completion_tokens": 7}}\n\n'
    )
    obs = observe(_streaming([*GOOD[:4], usage, b"data: [DONE]\n\n"]))
    assert obs.ok
    assert obs.output_tokens == 7


def test_send__crlf_framing_and_comments__accepted() -> None:
    parts = [b": keep-alive\r\n\r\n", *(p.replace(b"\n", b"\r\n") for p in GOOD)]
    obs = observe(_streaming(parts), strict=True)
    assert obs.ok
    assert obs.output_tokens == 3
    assert obs.problems == []


def test_send__stream_without_done__incomplete() -> None:
    obs = observe(_streaming(GOOD[:-1]))
    assert not obs.ok
    assert obs.error == "incomplete_stream"


def test_send__error_event_mid_stream__stream_error() -> None:
    error = b'data: {"error": {"message": "the replica went away"}}\n\n'
    obs = observe(_streaming([*GOOD[:3], error]))
    assert not obs.ok
    assert obs.error == "stream_error"
    assert "went away" in obs.detail


def test_send__strict__non_json_event_reported() -> None:
    obs = observe(_streaming([GOOD[1], b"data: {not json\n\n", *GOOD[2:]]), strict=True)
    assert obs.problems == ["event 2 is not JSON"]


def test_send__server_error__counted_by_status() -> None:
    async def fail(request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": {"message": "boom"}}, status=500)

    obs = observe(fail)
    assert not obs.ok
    assert obs.error == "http_500"
    assert obs.body == {"error": {"message": "boom"}}


def test_send__slow_server__timeout() -> None:
    obs = observe(_streaming(GOOD, pause_s=1.0), timeout_s=0.3)
    assert not obs.ok
    assert obs.error == "timeout"


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, never listened, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_send__nothing_listening__connection_error() -> None:
    port = _closed_port()

    async def go() -> Observation:
        async with aiohttp.ClientSession() as session:
            return await send(
                session,
                f"http://127.0.0.1:{port}/v1/chat/completions",
                {},
                headers={},
                timeout_s=5.0,
                stream=True,
            )

    obs = run_coroutine(go())
    assert not obs.ok
    assert obs.error == "connection"


def test_run_load_test__unreachable_performance__errors_counted_slo_not_met() -> None:
    port = _closed_port()
    plan = LoadTestPlan(
        f"http://127.0.0.1:{port}", "m", "performance", rate_rps=20.0, duration_s=0.5
    )
    result = run_load_test(plan)
    step = result.steps[0]
    assert step.completed == 0
    assert step.errors == {"connection": step.sent}
    assert step.sent > 0
    assert not step.slo_met
    assert "no request succeeded" in step.slo_reasons
    assert result.stopped_reason == "completed"
    assert result.passed is False


def test_run_load_test__invalid_plan__value_error_lists_problems() -> None:
    with pytest.raises(ValueError, match="rate_rps must be a positive number"):
        run_load_test(LoadTestPlan("http://127.0.0.1:1", "m", "performance", rate_rps=-1))
