"""The requests a load test sends: lengths from a preset or a trace, synthetic prompts.

Prompt lengths are meant in the server's tokens. A prompt is made of three-letter words
separated by spaces, four characters per word: about one token per word for the BPE
vocabularies of Llama-class models, and exactly one per word for the fleet simulator, which
counts ``ceil(characters / 4)`` and adds the chat template's overhead
(:data:`apps.fleetsim.openai_api.CHAT_MESSAGE_OVERHEAD` per message plus
:data:`~apps.fleetsim.openai_api.CHAT_REPLY_OVERHEAD`). The first words differ per request
so that a server's prefix cache cannot serve one prompt from another's blocks.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from apps.fleetsim.openai_api import CHAT_MESSAGE_OVERHEAD, CHAT_REPLY_OVERHEAD
from apps.fleetsim.workload import preset_lengths, read_trace_csv

from .plan import LoadTestPlan, WorkloadSpec

__all__ = ["CHAT_OVERHEAD_TOKENS", "LengthSampler", "RequestSpec", "prompt_text", "request_body"]

CHAT_OVERHEAD_TOKENS = CHAT_MESSAGE_OVERHEAD + CHAT_REPLY_OVERHEAD
_UNIQUE_WORDS = 16
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_FILLER_WORDS = tuple(a + b + c for a in "bcdfghlmnprst" for b in "aeiou" for c in "bdgklmnprst")


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One request to send: its intended prompt tokens and the output tokens asked."""

    prompt_tokens: int
    output_tokens: int


class LengthSampler:
    """Draws ``(prompt, output)`` token lengths for a :class:`WorkloadSpec`."""

    def __init__(self, spec: WorkloadSpec, seed: int) -> None:
        self.spec = spec
        self._rng = random.Random(f"loadtest-lengths:{seed}")
        self._pairs: list[tuple[int, int]] | None = None
        if spec.trace_path is not None:
            rows = read_trace_csv(spec.trace_path)
            if not rows:
                raise ValueError(f"workload trace {spec.trace_path} has no request")
            self._pairs = [(r.prompt_tokens, r.output_tokens) for r in rows]
            self._lengths = None
        else:
            limit = spec.max_prompt_tokens or 16_384
            self._lengths = preset_lengths(spec.preset, limit)

    def sample(self) -> RequestSpec:
        if self._pairs is not None:
            prompt, output = self._rng.choice(self._pairs)
        else:
            assert self._lengths is not None
            prompt, output = self._lengths.sample(self._rng)
        if self.spec.max_prompt_tokens is not None:
            prompt = min(prompt, self.spec.max_prompt_tokens)
        return RequestSpec(max(1, prompt), max(1, output))


class _Filler:
    """A long run of words, cut to length for each prompt (built once, grown on demand)."""

    def __init__(self) -> None:
        self._text = ""

    def words(self, count: int) -> str:
        need = count * 4
        if len(self._text) < need:
            rng = random.Random("loadtest-filler")
            words = rng.choices(_FILLER_WORDS, k=max(count, 4096))
            self._text = " " + " ".join(words)
        return self._text[:need]


_FILLER = _Filler()


def prompt_text(words: int, rng: random.Random) -> str:
    """``words`` three-letter words (``4 * words - 1`` characters): ``words`` tokens for
    the simulator. The first words are random, the rest a shared filler."""
    words = max(1, words)
    head = min(words, _UNIQUE_WORDS)
    unique = " ".join("".join(rng.choices(_LETTERS, k=3)) for _ in range(head))
    return unique + _FILLER.words(words - head)


def request_body(
    plan: LoadTestPlan,
    spec: RequestSpec,
    rng: random.Random,
    *,
    stream: bool | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """The JSON body of one request of ``plan`` (``stream``/``model`` override the plan's)."""
    streaming = plan.stream if stream is None else stream
    body: dict[str, Any] = {"model": model or plan.model, "max_tokens": spec.output_tokens}
    if plan.api == "chat":
        words = spec.prompt_tokens - CHAT_OVERHEAD_TOKENS
        body["messages"] = [{"role": "user", "content": prompt_text(words, rng)}]
    else:
        body["prompt"] = prompt_text(spec.prompt_tokens, rng)
    body["stream"] = streaming
    if streaming:
        body["stream_options"] = {"include_usage": True}
    if plan.ignore_eos:
        body["ignore_eos"] = True
    return body


def intended_prompt_tokens(plan: LoadTestPlan, spec: RequestSpec) -> int:
    """The prompt tokens the simulator will count for ``spec`` (chat prompts have at
    least one word besides the template's overhead)."""
    if plan.api == "chat":
        return max(spec.prompt_tokens, CHAT_OVERHEAD_TOKENS + 1)
    return spec.prompt_tokens
