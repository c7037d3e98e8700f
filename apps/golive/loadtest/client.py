"""One request against an OpenAI-compatible endpoint, timed, and its reply checked.

A streamed reply is read as server-sent events (``data: <json>`` separated by blank lines,
ending with ``data: [DONE]``). The time to first token is taken at the first event that
carries text (vLLM's first chat chunk may only name the assistant role); the inter-token
latency of the request is its mean gap between output tokens,
``(last text event - first text event) / (output tokens - 1)``, with the output tokens
from the final ``usage`` chunk when the server sends one (servers may pack several tokens
in one event), else the text events counted. Timestamps are taken when a network read
returns, so tokens a server flushes together arrive together, as a real client sees them.

Parsing every event as JSON would cost the client more than anything else it does (tens of
microseconds per token on a small machine), so a load-generating request (``strict``
false) parses events fully only until the first text has arrived, and after that only the
events that may carry an error or the usage; the others count as text events. Functional
checks send ``strict`` requests, which parse and check every event.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

__all__ = ["Observation", "send"]

_ERROR_BODY_LIMIT = 2048
# An event that may hold an error or a (non-null) usage: parsed even on the fast path.
_NEEDS_PARSING = re.compile(rb'"error"|"usage"\s*:\s*[^n\s]')


@dataclass
class Observation:
    """What one request did. ``error`` is None on success, else its kind; ``problems``
    lists what was malformed about an answer (shape, framing, model)."""

    ok: bool = False
    error: str | None = None
    status: int | None = None
    ttft_s: float | None = None
    itl_s: float | None = None
    e2e_s: float | None = None
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    text_events: int = 0
    events: int = 0
    done: bool = False
    content_type: str = ""
    models: set[str] = field(default_factory=set)
    objects: set[str] = field(default_factory=set)
    finish_reasons: set[str] = field(default_factory=set)
    usage: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)
    body: Any = None
    detail: str = ""


def _text_of(choice: dict[str, Any]) -> str | None:
    delta = choice.get("delta")
    if isinstance(delta, dict):
        content = delta.get("content")
        return content if isinstance(content, str) else None
    message = choice.get("message")
    if isinstance(message, dict):
        content = message.get("content")
        return content if isinstance(content, str) else None
    text = choice.get("text")
    return text if isinstance(text, str) else None


def _take_usage(obs: Observation, usage: Any) -> None:
    if usage is None:
        return
    if not isinstance(usage, dict) or not all(
        isinstance(usage.get(k), int) for k in ("prompt_tokens", "completion_tokens")
    ):
        obs.problems.append(f"usage is not {{prompt_tokens, completion_tokens}}: {usage!r}")
        return
    obs.usage = usage
    obs.prompt_tokens = usage["prompt_tokens"]
    obs.output_tokens = usage["completion_tokens"]


def _event(obs: Observation, data: str, now: float, started: float) -> tuple[bool, float | None]:
    """Account one SSE event; returns (is the stream over, time of text if any)."""
    obs.events += 1
    if data == "[DONE]":
        obs.done = True
        return True, None
    try:
        chunk = json.loads(data)
    except json.JSONDecodeError:
        obs.problems.append(f"event {obs.events} is not JSON")
        return False, None
    if not isinstance(chunk, dict):
        obs.problems.append(f"event {obs.events} is not a JSON object")
        return False, None
    if "error" in chunk:
        error = chunk["error"]
        message = error.get("message") if isinstance(error, dict) else error
        obs.error = "stream_error"
        obs.detail = str(message)[:200]
        return True, None
    model, kind = chunk.get("model"), chunk.get("object")
    if isinstance(model, str):
        obs.models.add(model)
    if isinstance(kind, str):
        obs.objects.add(kind)
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        obs.problems.append(f"event {obs.events} has no choices list")
        return False, None
    seen_text = None
    for choice in choices:
        if not isinstance(choice, dict):
            obs.problems.append(f"event {obs.events} has a choice that is not an object")
            continue
        if choice.get("finish_reason"):
            obs.finish_reasons.add(str(choice["finish_reason"]))
        text = _text_of(choice)
        if text:
            seen_text = now
    if seen_text is not None:
        obs.text_events += 1
        if obs.ttft_s is None:
            obs.ttft_s = now - started
    _take_usage(obs, chunk.get("usage"))
    return False, seen_text


def _data(raw: bytes, obs: Observation) -> bytes | None:
    """The data of one event (None for a comment-only event)."""
    if raw.startswith(b"data: ") and b"\n" not in raw:
        return raw[6:]
    lines = [line for line in raw.split(b"\n") if line and not line.startswith(b":")]
    payload = [line[5:].lstrip() for line in lines if line.startswith(b"data:")]
    if len(payload) != len(lines):
        obs.problems.append(f"event {obs.events + 1} has lines other than data:")
    return b"\n".join(payload) if payload else None


async def _read_stream(
    response: aiohttp.ClientResponse, obs: Observation, started: float, strict: bool
) -> None:
    buffer = b""
    last_text: float | None = None
    first_text: float | None = None
    finished = False
    async for data in response.content.iter_any():
        now = time.perf_counter()
        buffer += data
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        if b"\n\n" not in buffer:
            continue
        *events, buffer = buffer.split(b"\n\n")
        for raw in events:
            payload = _data(raw, obs)
            if payload is None:
                continue
            if (
                not strict
                and first_text is not None
                and payload != b"[DONE]"
                and _NEEDS_PARSING.search(payload) is None
            ):
                obs.events += 1
                obs.text_events += 1
                last_text = now
                continue
            finished, text_at = _event(obs, payload.decode(), now, started)
            if text_at is not None:
                first_text = text_at if first_text is None else first_text
                last_text = text_at
            if finished:
                break
        if finished:
            break
    obs.e2e_s = time.perf_counter() - started
    if obs.error is not None:
        return
    if buffer.strip():
        obs.problems.append("the stream ends with an unterminated event")
    if not obs.done:
        obs.error = "incomplete_stream"
        obs.detail = "the stream ended without data: [DONE]"
        return
    if obs.output_tokens is None:
        obs.output_tokens = obs.text_events
    if first_text is not None and last_text is not None and obs.output_tokens > 1:
        obs.itl_s = (last_text - first_text) / (obs.output_tokens - 1)
    obs.ok = True


async def _read_whole(response: aiohttp.ClientResponse, obs: Observation, started: float) -> None:
    raw = await response.read()
    obs.e2e_s = time.perf_counter() - started
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        obs.error, obs.detail = "malformed", "the response is not JSON"
        return
    obs.body = body
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        obs.error, obs.detail = "malformed", "the response has no choices"
        return
    if isinstance(body.get("model"), str):
        obs.models.add(body["model"])
    if isinstance(body.get("object"), str):
        obs.objects.add(body["object"])
    if choices[0].get("finish_reason"):
        obs.finish_reasons.add(str(choices[0]["finish_reason"]))
    if _text_of(choices[0]) is None:
        obs.problems.append("the first choice carries no text")
    _take_usage(obs, body.get("usage"))
    obs.ok = True


async def send(
    session: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any],
    *,
    headers: dict[str, str],
    timeout_s: float,
    stream: bool,
    strict: bool = False,
) -> Observation:
    """POST ``body`` to ``url`` and observe the answer; never raises but on cancellation.
    ``strict`` parses every streamed event (see the module doc)."""
    obs = Observation()
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            async with session.post(url, json=body, headers=headers) as response:
                obs.status = response.status
                obs.content_type = response.headers.get("Content-Type", "")
                if response.status != 200:
                    raw = await response.content.read(_ERROR_BODY_LIMIT)
                    obs.e2e_s = time.perf_counter() - started
                    obs.error = f"http_{response.status}"
                    obs.detail = raw.decode("utf-8", "replace")[:200]
                    try:
                        obs.body = json.loads(raw)
                    except (UnicodeDecodeError, json.JSONDecodeError):
                        obs.body = None
                    return obs
                if stream:
                    await _read_stream(response, obs, started, strict)
                else:
                    await _read_whole(response, obs, started)
    except TimeoutError:
        obs.ok, obs.error, obs.detail = False, "timeout", f"no full answer within {timeout_s:g} s"
    except (aiohttp.ClientError, OSError) as exc:
        obs.ok, obs.error, obs.detail = False, "connection", f"{type(exc).__name__}: {exc}"[:200]
    except UnicodeDecodeError:
        obs.ok, obs.error, obs.detail = False, "malformed", "the stream is not UTF-8"
    if obs.e2e_s is None:
        obs.e2e_s = time.perf_counter() - started
    return obs
