"""Functional mode: a few small requests, each answer's shape checked.

The checks, each a :class:`CheckOutcome` with what was observed:

``models-listed``
    ``GET /v1/models`` answers a list whose ids include the plan's model.
``response-shape``
    Whole (non-streamed) answers are 200 JSON with ``choices`` carrying text, an ``object``
    of the API's kind and a ``finish_reason``.
``response-model``
    Every answer, whole or streamed chunk, names the plan's model.
``usage-counts``
    ``usage`` holds integer prompt and completion tokens, the completion no longer than
    ``max_tokens`` (exactly that with ``ignore_eos``), and the prompt within 25 % of what
    was meant (a real tokenizer counts the synthetic prompt a little differently).
``stream-framing``
    Streamed answers are ``text/event-stream`` of ``data:`` JSON events ending with
    ``data: [DONE]``, with at least one event carrying text and chunks of the API's kind.
``stream-usage``
    A streamed answer asked for ``include_usage`` ends with a usage chunk whose completion
    tokens are at least the text events seen.
``unknown-model-rejected``
    A request for a model the server does not serve is answered 4xx with OpenAI's error
    JSON (``{"error": {"message": ...}}``), not 200 nor 5xx.
``no-errors``
    None of the requests above failed (errors are counted by kind).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any

import aiohttp

from .client import Observation, send
from .plan import LoadTestPlan
from .result import CheckOutcome, Quantiles, StepResult
from .workload import LengthSampler, RequestSpec, intended_prompt_tokens, request_body

__all__ = ["run_functional_checks"]

WHOLE_REQUESTS = 2
STREAMED_REQUESTS = 3
PROMPT_CAP = 256
OUTPUT_CAP = 32
PROMPT_TOLERANCE = 0.25
_OBJECTS = {
    "chat": ("chat.completion", "chat.completion.chunk"),
    "completions": ("text_completion", "text_completion"),
}


def _small(spec: RequestSpec) -> RequestSpec:
    return RequestSpec(min(spec.prompt_tokens, PROMPT_CAP), min(spec.output_tokens, OUTPUT_CAP))


async def _models(
    plan: LoadTestPlan, session: aiohttp.ClientSession, timeout_s: float
) -> CheckOutcome:
    try:
        async with session.get(
            plan.url("/v1/models"),
            headers=dict(plan.headers),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as response:
            status = response.status
            body = await response.json(content_type=None) if status == 200 else None
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
        return CheckOutcome("models-listed", False, f"GET /v1/models failed: {exc!r}"[:300])
    if status != 200:
        return CheckOutcome("models-listed", False, f"GET /v1/models answered {status}")
    data = body.get("data") if isinstance(body, dict) else None
    ids = [m.get("id") for m in data if isinstance(m, dict)] if isinstance(data, list) else []
    return CheckOutcome(
        "models-listed", plan.model in ids, f"served models: {', '.join(map(str, ids)) or 'none'}"
    )


def _check(name: str, failures: list[str], fine: str) -> CheckOutcome:
    return CheckOutcome(name, not failures, "; ".join(failures[:5]) if failures else fine)


def _usage_failures(
    plan: LoadTestPlan, spec: RequestSpec, obs: Observation, where: str
) -> list[str]:
    if obs.usage is None:
        return [f"{where}: no usage"]
    out = []
    completion = obs.output_tokens or 0
    if completion > spec.output_tokens or (plan.ignore_eos and completion != spec.output_tokens):
        out.append(f"{where}: {completion} completion tokens for max_tokens {spec.output_tokens}")
    meant = intended_prompt_tokens(plan, spec)
    prompt = obs.prompt_tokens or 0
    if abs(prompt - meant) > PROMPT_TOLERANCE * meant:
        out.append(f"{where}: {prompt} prompt tokens counted, {meant} meant")
    total = obs.usage.get("total_tokens")
    if total is not None and total != prompt + completion:
        out.append(f"{where}: total_tokens {total} != prompt + completion")
    return out


async def run_functional_checks(
    plan: LoadTestPlan,
    session: aiohttp.ClientSession,
    sampler: LengthSampler,
    rng: random.Random,
) -> tuple[list[CheckOutcome], StepResult]:
    """The checks above, and a step summarising the requests they sent."""
    # Eight requests one after the other: together within max_total_s.
    timeout = min(plan.request_timeout_s, 60.0, plan.max_total_s / 8)
    url = plan.url(plan.endpoint_path)
    headers = dict(plan.headers)
    whole_kind, chunk_kind = _OBJECTS[plan.api]
    started = time.perf_counter()
    checks = [await _models(plan, session, timeout)]
    sent: list[tuple[RequestSpec, bool, Observation]] = []
    for streamed in [False] * WHOLE_REQUESTS + [True] * STREAMED_REQUESTS:
        spec = _small(sampler.sample())
        body = request_body(plan, spec, rng, stream=streamed)
        obs = await send(
            session, url, body, headers=headers, timeout_s=timeout, stream=streamed, strict=True
        )
        sent.append((spec, streamed, obs))

    shape: list[str] = []
    model: list[str] = []
    usage: list[str] = []
    framing: list[str] = []
    stream_usage: list[str] = []
    for i, (spec, streamed, obs) in enumerate(sent):
        where = f"{'streamed' if streamed else 'whole'} request {i + 1}"
        if not obs.ok:
            (framing if streamed else shape).append(f"{where}: {obs.error} {obs.detail}".strip())
            continue
        wrong_models = obs.models - {plan.model}
        if wrong_models or not obs.models:
            model.append(f"{where}: model {', '.join(sorted(obs.models)) or 'missing'}")
        usage.extend(_usage_failures(plan, spec, obs, where))
        if streamed:
            framing.extend(f"{where}: {p}" for p in obs.problems)
            if not obs.content_type.startswith("text/event-stream"):
                framing.append(f"{where}: Content-Type {obs.content_type!r}")
            if obs.objects != {chunk_kind}:
                framing.append(f"{where}: chunk objects {sorted(obs.objects)}")
            if obs.text_events == 0:
                framing.append(f"{where}: no event carried text")
            if obs.usage is None:
                stream_usage.append(f"{where}: no usage chunk although include_usage was set")
            elif (obs.output_tokens or 0) < obs.text_events:
                stream_usage.append(
                    f"{where}: usage says {obs.output_tokens} tokens, {obs.text_events} "
                    "text events seen"
                )
        else:
            shape.extend(f"{where}: {p}" for p in obs.problems)
            if obs.objects != {whole_kind}:
                shape.append(f"{where}: object {sorted(obs.objects)}")
            if not obs.finish_reasons:
                shape.append(f"{where}: no finish_reason")

    streamed_obs = [o for _, s, o in sent if s]
    checks += [
        _check("response-shape", shape, f"{WHOLE_REQUESTS} whole answers well formed"),
        _check("response-model", model, f"every answer names {plan.model}"),
        _check("usage-counts", usage, "usage consistent with the requests"),
        _check(
            "stream-framing",
            framing,
            f"{STREAMED_REQUESTS} streams, {sum(o.events for o in streamed_obs)} events, "
            "each ending with [DONE]",
        ),
        _check("stream-usage", stream_usage, "every stream ended with its usage"),
    ]
    checks.append(await _unknown_model(plan, session, sampler, rng, timeout))
    observations = [o for _, _, o in sent]
    errors = Counter(o.error for o in observations if o.error)
    checks.append(
        CheckOutcome(
            "no-errors",
            not errors,
            f"{len(observations)} requests, errors: "
            + (", ".join(f"{k} {v}" for k, v in sorted(errors.items())) or "none"),
        )
    )
    return checks, _summary(plan, observations, errors, time.perf_counter() - started)


async def _unknown_model(
    plan: LoadTestPlan,
    session: aiohttp.ClientSession,
    sampler: LengthSampler,
    rng: random.Random,
    timeout: float,
) -> CheckOutcome:
    wrong = f"{plan.model}-not-served-loadtest"
    body = request_body(plan, _small(sampler.sample()), rng, stream=False, model=wrong)
    obs = await send(
        session,
        plan.url(plan.endpoint_path),
        body,
        headers=dict(plan.headers),
        timeout_s=timeout,
        stream=False,
    )
    error: Any = obs.body.get("error") if isinstance(obs.body, dict) else None
    passed = (
        obs.status is not None
        and 400 <= obs.status < 500
        and isinstance(error, dict)
        and isinstance(error.get("message"), str)
    )
    return CheckOutcome(
        "unknown-model-rejected",
        passed,
        f"model {wrong!r} answered {obs.status or obs.error}: {obs.detail[:120]}",
    )


def _summary(
    plan: LoadTestPlan, observations: list[Observation], errors: Counter[str], busy_s: float
) -> StepResult:
    q = plan.slo_quantile
    done = [o for o in observations if o.ok]
    return StepResult(
        index=0,
        phase="functional",
        rate_rps=0.0,
        achieved_rps=0.0,
        duration_s=busy_s,
        sent=len(observations),
        completed=len(done),
        errors=dict(sorted(errors.items())),
        client_limited=0,
        ttft=Quantiles.of([o.ttft_s for o in done if o.ttft_s is not None], q),
        itl=Quantiles.of([o.itl_s for o in done if o.itl_s is not None], q),
        e2e=Quantiles.of([o.e2e_s for o in done if o.e2e_s is not None], q),
        output_tokens_per_s=sum(o.output_tokens or 0 for o in done) / busy_s if busy_s else 0.0,
        error_rate=(len(observations) - len(done)) / len(observations) if observations else 0.0,
        slo_met=not errors,
        slo_reasons=[f"{sum(errors.values())} requests failed"] if errors else [],
        lag_p99_s=0.0,
        max_lag_s=0.0,
        cpu_s=0.0,
    )
