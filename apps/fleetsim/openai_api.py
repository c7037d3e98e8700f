"""OpenAI-compatible request parsing and response shapes for the simulated replicas.

Pure functions, no I/O: :mod:`apps.fleetsim.replica_http` turns HTTP bodies into
:class:`GenerationRequest` with :func:`parse_completion` / :func:`parse_chat_completion`
and renders what the replica model produced with the builders below. The shapes follow
OpenAI's Completions and Chat Completions APIs as vLLM's server implements them: ``id``,
``object``, ``created``, ``model``, ``choices`` (``text`` or ``message``/``delta``,
``finish_reason``) and ``usage`` (prompt, completion and total tokens); streamed responses
are server-sent events ``data: {...}`` ending with ``data: [DONE]``, with a last chunk
holding ``usage`` (and no choices) when ``stream_options.include_usage`` is true.

Token counts
------------
A simulated replica has no tokenizer, so prompt tokens are *estimated* from the text:

* a text is ``ceil(len(text) / 4)`` tokens, at least 1 for a non-empty text (about four
  characters per token is the usual rule of thumb for English with BPE vocabularies);
* a completion prompt given as token ids (a list of integers) counts one per id;
* a chat conversation counts each message's text plus :data:`CHAT_MESSAGE_OVERHEAD`
  tokens (role and separators of the chat template), plus :data:`CHAT_REPLY_OVERHEAD`
  for the assistant turn the template opens.

The reply's length: ``max_tokens`` when the request sets it below the reply's natural
length (``finish_reason`` ``"length"``), else the natural length (``"stop"``). With
vLLM's ``"ignore_eos": true`` (a sampling parameter its OpenAI server accepts besides
OpenAI's own) and ``max_tokens`` set, the reply is exactly ``max_tokens`` long
(``"length"``), which is how load generators fix output lengths. The
natural length is a stable function of the prompt (:func:`natural_output_tokens`), so
the same request always gets the same answer, as with greedy decoding. Each generated
token is one word of a fixed vocabulary, so ``completion_tokens`` equals the number of
words streamed.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "CHAT_MESSAGE_OVERHEAD",
    "CHAT_REPLY_OVERHEAD",
    "GenerationRequest",
    "InvalidRequest",
    "error_body",
    "estimate_text_tokens",
    "models_body",
    "natural_output_tokens",
    "parse_chat_completion",
    "parse_completion",
    "response_body",
    "sse",
    "stream_chunk",
    "token_text",
    "usage_body",
]

CHAT_MESSAGE_OVERHEAD = 4
CHAT_REPLY_OVERHEAD = 3
MIN_NATURAL_TOKENS = 16
MAX_NATURAL_TOKENS = 256
MAX_TOKENS_LIMIT = 1_000_000
CHAT_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_VOCABULARY = (
    "the",
    "replica",
    "serves",
    "tokens",
    "at",
    "its",
    "own",
    "pace",
    "while",
    "batches",
    "grow",
    "and",
    "shrink",
    "under",
    "load",
    "today",
)

Kind = Literal["completion", "chat"]


class InvalidRequest(ValueError):
    """A request body the API answers with 400 (``param`` names the offending field)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """What the replica model needs from a (chat) completion request."""

    kind: Kind
    model: str
    prompt_tokens: int
    max_tokens: int | None
    stream: bool
    include_usage: bool
    fingerprint: str
    ignore_eos: bool = False

    def output_tokens(self) -> tuple[int, str]:
        """Tokens to generate and the ``finish_reason`` that ends the reply."""
        if self.ignore_eos and self.max_tokens is not None:
            return self.max_tokens, "length"
        natural = natural_output_tokens(self.fingerprint)
        if self.max_tokens is not None and self.max_tokens < natural:
            return self.max_tokens, "length"
        return natural, "stop"


def estimate_text_tokens(text: str) -> int:
    """About four characters per token; a non-empty text is at least one token."""
    return math.ceil(len(text) / 4)


def natural_output_tokens(fingerprint: str) -> int:
    """Length of the reply to a prompt when nothing cuts it short (stable per prompt)."""
    digest = hashlib.blake2b(fingerprint.encode("utf-8"), digest_size=8).digest()
    span = MAX_NATURAL_TOKENS - MIN_NATURAL_TOKENS + 1
    return MIN_NATURAL_TOKENS + int.from_bytes(digest, "big") % span


def token_text(index: int) -> str:
    """The text of generated token ``index`` (from 0): one word, space-separated."""
    word = _VOCABULARY[index % len(_VOCABULARY)]
    return word if index == 0 else " " + word


# ------------------------------------------------------------------------ parsing


def _load(raw: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidRequest("request body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise InvalidRequest("request body must be a JSON object")
    return payload


def _common(payload: dict[str, Any]) -> tuple[str, int | None, bool, bool, bool]:
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a non-empty string", "model")
    max_tokens = payload.get("max_tokens")
    if max_tokens is None:
        max_tokens = payload.get("max_completion_tokens")
    if max_tokens is not None and (
        isinstance(max_tokens, bool)
        or not isinstance(max_tokens, int)
        or not 1 <= max_tokens <= MAX_TOKENS_LIMIT
    ):
        raise InvalidRequest(
            f"'max_tokens' must be an integer between 1 and {MAX_TOKENS_LIMIT}", "max_tokens"
        )
    stream = payload.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be a boolean", "stream")
    options = payload.get("stream_options")
    include_usage = False
    if options is not None:
        if not isinstance(options, dict):
            raise InvalidRequest("'stream_options' must be an object", "stream_options")
        if not stream:
            raise InvalidRequest("'stream_options' is only allowed with 'stream': true")
        include_usage = options.get("include_usage", False)
        if not isinstance(include_usage, bool):
            raise InvalidRequest("'include_usage' must be a boolean", "stream_options")
    n = payload.get("n", 1)
    if n != 1 or isinstance(n, bool):
        raise InvalidRequest("only 'n': 1 is supported by the simulator", "n")
    ignore_eos = payload.get("ignore_eos", False)
    if not isinstance(ignore_eos, bool):
        raise InvalidRequest("'ignore_eos' must be a boolean", "ignore_eos")
    return model, max_tokens, stream, include_usage, ignore_eos


def parse_completion(raw: bytes) -> GenerationRequest:
    """A ``/v1/completions`` body; raises :class:`InvalidRequest`."""
    payload = _load(raw)
    model, max_tokens, stream, include_usage, ignore_eos = _common(payload)
    prompt = payload.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str | list):
        prompt = prompt[0]  # a batch of one prompt
    if isinstance(prompt, str):
        if not prompt:
            raise InvalidRequest("'prompt' must not be empty", "prompt")
        tokens, fingerprint = estimate_text_tokens(prompt), prompt
    elif (
        isinstance(prompt, list)
        and prompt
        and all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in prompt)
    ):
        tokens, fingerprint = len(prompt), json.dumps(prompt)
    else:
        raise InvalidRequest(
            "'prompt' must be a non-empty string or list of token ids (batches of several "
            "prompts are not supported)",
            "prompt",
        )
    return GenerationRequest(
        "completion", model, tokens, max_tokens, stream, include_usage, fingerprint, ignore_eos
    )


def _message_text(message: Any, index: int) -> str:
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        raise InvalidRequest(f"{where} must be an object", "messages")
    role = message.get("role")
    if role not in CHAT_ROLES:
        raise InvalidRequest(
            f"{where}.role must be one of {', '.join(sorted(CHAT_ROLES))}", "messages"
        )
    content = message.get("content")
    if content is None and role == "assistant":
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not (
                isinstance(part, dict)
                and part.get("type") == "text"
                and isinstance(part.get("text"), str)
            ):
                raise InvalidRequest(
                    f"{where}.content parts must be {{'type': 'text', 'text': ...}}", "messages"
                )
            parts.append(part["text"])
        return "".join(parts)
    raise InvalidRequest(f"{where}.content must be a string or a list of text parts", "messages")


def parse_chat_completion(raw: bytes) -> GenerationRequest:
    """A ``/v1/chat/completions`` body; raises :class:`InvalidRequest`."""
    payload = _load(raw)
    model, max_tokens, stream, include_usage, ignore_eos = _common(payload)
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty list", "messages")
    texts = [_message_text(message, i) for i, message in enumerate(messages)]
    tokens = CHAT_REPLY_OVERHEAD + sum(
        CHAT_MESSAGE_OVERHEAD + estimate_text_tokens(text) for text in texts
    )
    fingerprint = json.dumps([[m["role"], t] for m, t in zip(messages, texts, strict=True)])
    return GenerationRequest(
        "chat", model, tokens, max_tokens, stream, include_usage, fingerprint, ignore_eos
    )


# ---------------------------------------------------------------------- rendering


def usage_body(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


_OBJECTS: dict[str, tuple[str, str]] = {
    # kind: (object of a whole response, object of a streamed chunk)
    "completion": ("text_completion", "text_completion"),
    "chat": ("chat.completion", "chat.completion.chunk"),
}


def _choice(field: str, value: object, finish_reason: str | None) -> dict[str, Any]:
    return {"index": 0, field: value, "logprobs": None, "finish_reason": finish_reason}


def response_body(
    kind: Kind,
    *,
    response_id: str,
    created: int,
    model: str,
    text: str,
    finish_reason: str,
    prompt_tokens: int,
    completion_tokens: int,
) -> dict[str, Any]:
    """A whole (not streamed) completion or chat completion."""
    if kind == "completion":
        choice = _choice("text", text, finish_reason)
    else:
        choice = _choice("message", {"role": "assistant", "content": text}, finish_reason)
    return {
        "id": response_id,
        "object": _OBJECTS[kind][0],
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": usage_body(prompt_tokens, completion_tokens),
    }


def stream_chunk(
    kind: Kind,
    *,
    response_id: str,
    created: int,
    model: str,
    text: str | None,
    first: bool = False,
    finish_reason: str | None = None,
    usage: dict[str, int] | None = None,
    include_usage: bool = False,
) -> dict[str, Any]:
    """One streamed event carrying ``text``; ``text`` None makes the usage-only last chunk
    (no choices). A chat stream's ``first`` chunk also names the assistant role. With
    ``include_usage`` every chunk has a ``usage`` key, null but on that last chunk."""
    choices = []
    if text is not None and kind == "completion":
        choices.append(_choice("text", text, finish_reason))
    elif text is not None:
        delta = {"role": "assistant", "content": text} if first else {"content": text}
        choices.append(_choice("delta", delta, finish_reason))
    chunk: dict[str, Any] = {
        "id": response_id,
        "object": _OBJECTS[kind][1],
        "created": created,
        "model": model,
        "choices": choices,
    }
    if include_usage:
        chunk["usage"] = usage
    return chunk


def sse(payload: dict[str, Any] | str) -> bytes:
    """One server-sent event carrying ``payload`` (JSON) or a literal like ``[DONE]``."""
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


def error_body(
    message: str, *, error_type: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """OpenAI's error envelope."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def models_body(model: str, created: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"id": model, "object": "model", "created": created, "owned_by": "llmcp-fleetsim"}
        ],
    }
