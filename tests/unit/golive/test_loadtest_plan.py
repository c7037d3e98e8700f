"""The load test's plan: bounds and validation, the requests it sends, its JSON form."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.fleetsim import openai_api as oai
from apps.fleetsim.capacity import interpolated_quantile
from apps.golive.loadtest import (
    CheckOutcome,
    ClientStats,
    LoadTestPlan,
    LoadTestResult,
    Quantiles,
    StepResult,
    WorkloadSpec,
    validate_plan,
)
from apps.golive.loadtest.result import REDACTED
from apps.golive.loadtest.workload import (
    LengthSampler,
    RequestSpec,
    intended_prompt_tokens,
    prompt_text,
    request_body,
)

PLAN = LoadTestPlan(base_url="http://127.0.0.1:8000", model="llama", mode="stress")


def test_validate_plan__defaults__no_problem() -> None:
    assert validate_plan(PLAN) == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"base_url": "ftp://host"}, "base_url must be an http"),
        ({"base_url": "http://127.0.0.1:8000/v1"}, "no path"),
        ({"model": " "}, "model must be"),
        ({"mode": "soak"}, "mode must be one of"),
        ({"api": "embeddings"}, "api must be one of"),
        ({"rate_rps": 0}, "rate_rps must be a positive"),
        ({"rate_rps": float("nan")}, "rate_rps must be a positive"),
        ({"rate_rps": 60.0}, "rate_rps must not exceed max_rate_rps"),
        ({"max_rate_rps": 1e6}, "max_rate_rps must be at most"),
        ({"max_total_s": 86_400.0}, "max_total_s must be at most"),
        ({"duration_s": 400.0}, "duration_s must not exceed max_total_s"),
        ({"rate_factor": 1.0}, "rate_factor must be a number above 1"),
        ({"max_concurrency": 0}, "max_concurrency must be"),
        ({"max_concurrency": True}, "max_concurrency must be"),
        ({"slo_quantile": 1.0}, "slo_quantile must be between"),
        ({"max_error_rate": 1.0}, "max_error_rate must be"),
        ({"replicas": 0}, "replicas must be a positive integer"),
        ({"refine_steps": 11}, "refine_steps must be"),
        ({"request_timeout_s": -1}, "request_timeout_s must be a positive"),
        ({"headers": {"X-Key": 3}}, "headers must map strings"),
        ({"workload": WorkloadSpec(preset="video")}, "workload preset must be one of"),
        ({"workload": WorkloadSpec(trace_path="/nonexistent.csv")}, "not a readable file"),
        ({"workload": WorkloadSpec(max_prompt_tokens=4)}, "max_prompt_tokens"),
    ],
)
def test_validate_plan__bad_field__says_which(changes: dict[str, object], message: str) -> None:
    problems = validate_plan(replace(PLAN, **changes))  # type: ignore[arg-type]
    assert any(message in p for p in problems), problems


@given(words=st.integers(min_value=1, max_value=20_000), seed=st.integers(0, 1000))
def test_prompt_text__any_length__is_that_many_simulator_tokens(words: int, seed: int) -> None:
    text = prompt_text(words, random.Random(seed))
    assert oai.estimate_text_tokens(text) == words


@given(
    prompt=st.integers(min_value=1, max_value=8000),
    output=st.integers(min_value=1, max_value=2000),
    api=st.sampled_from(["chat", "completions"]),
    stream=st.booleans(),
)
def test_request_body__parsed_by_the_simulator__prompt_and_output_as_meant(
    prompt: int, output: int, api: str, stream: bool
) -> None:
    plan = replace(PLAN, api=api, stream=stream)
    spec = RequestSpec(prompt, output)
    body = request_body(plan, spec, random.Random(0))
    parse = oai.parse_chat_completion if api == "chat" else oai.parse_completion
    wanted = parse(json.dumps(body).encode())
    assert wanted.prompt_tokens == intended_prompt_tokens(plan, spec)
    assert wanted.output_tokens() == (output, "length")
    assert wanted.stream is stream
    assert wanted.include_usage is stream


def test_request_body__two_requests__prompts_start_differently() -> None:
    rng = random.Random(0)
    spec = RequestSpec(500, 10)
    first, second = (request_body(PLAN, spec, rng)["messages"][0]["content"] for _ in range(2))
    assert first[:60] != second[:60]
    assert len(first) == len(second)


def test_simulator__ignore_eos_false_or_missing__natural_length_applies() -> None:
    body = {"model": "m", "prompt": "hello there", "max_tokens": 100_000}
    natural = oai.parse_completion(json.dumps(body).encode()).output_tokens()
    assert natural[1] == "stop"
    assert natural[0] < 100_000
    forced = oai.parse_completion(json.dumps({**body, "ignore_eos": True}).encode())
    assert forced.output_tokens() == (100_000, "length")
    with pytest.raises(oai.InvalidRequest, match="ignore_eos"):
        oai.parse_completion(json.dumps({**body, "ignore_eos": "yes"}).encode())


def test_length_sampler__trace__draws_its_rows_clipped(tmp_path: Path) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:50.9951690,9000,3\n"
    )
    sampler = LengthSampler(WorkloadSpec(trace_path=str(trace), max_prompt_tokens=2000), seed=1)
    drawn = {sampler.sample() for _ in range(50)}
    assert drawn == {RequestSpec(374, 44), RequestSpec(2000, 3)}


def test_length_sampler__preset__respects_max_prompt_tokens() -> None:
    sampler = LengthSampler(WorkloadSpec(preset="long-context", max_prompt_tokens=3000), seed=2)
    prompts = [sampler.sample().prompt_tokens for _ in range(300)]
    assert max(prompts) == 3000
    assert min(prompts) >= 1


@given(
    values=st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=50),
    q1=st.floats(0, 1),
    q2=st.floats(0, 1),
)
def test_interpolated_quantile__any_values__monotone_and_within_range(
    values: list[float], q1: float, q2: float
) -> None:
    low, high = sorted((q1, q2))
    a, b = interpolated_quantile(values, low), interpolated_quantile(values, high)
    assert a is not None
    assert b is not None
    assert min(values) <= a <= b <= max(values)


def _result() -> LoadTestResult:
    step = StepResult(
        index=0,
        phase="ramp",
        rate_rps=2.0,
        achieved_rps=1.9,
        duration_s=10.0,
        sent=20,
        completed=19,
        errors={"http_500": 1},
        client_limited=0,
        ttft=Quantiles.of([0.1, 0.2, 0.3], 0.95),
        itl=Quantiles(),
        e2e=Quantiles.of([1.0, float("inf")], 0.5),
        output_tokens_per_s=50.0,
        error_rate=0.05,
        slo_met=False,
        slo_reasons=["error rate 5.0% > 1.0%"],
        lag_p99_s=0.001,
        max_lag_s=0.002,
        cpu_s=0.5,
    )
    plan = replace(PLAN, headers={"Authorization": "Bearer secret-token"})
    return LoadTestResult(
        plan=plan,
        started_at=1.0,
        finished_at=2.0,
        steps=[step],
        functional=[CheckOutcome("no-errors", True, "none")],
        capacity_rps=None,
        stopped_reason="slo_broken",
        client=ClientStats(cpu_s=0.5, requests=20),
    )


def test_result__to_dict__json_safe_round_trip_with_credentials_redacted() -> None:
    data = _result().to_dict()
    text = json.dumps(data, allow_nan=False)
    assert "secret-token" not in text
    assert data["plan"]["headers"] == {"Authorization": REDACTED}
    assert data["steps"][0]["e2e"]["p99"] is None  # infinity is not JSON
    back = LoadTestResult.from_dict(json.loads(text))
    assert back.functional == [CheckOutcome("no-errors", True, "none")]
    name, passed, _ = back.functional[0]  # the go-live app unpacks checks as triples
    assert (name, passed) == ("no-errors", True)
    assert data["functional"] == [{"name": "no-errors", "passed": True, "observed": "none"}]
    assert back.steps[0].errors == {"http_500": 1}
    assert back.steps[0].ttft == Quantiles.of([0.1, 0.2, 0.3], 0.95)
    assert back.plan.workload == PLAN.workload
    assert back.plan.mode == "stress"
    assert back.stopped_reason == "slo_broken"
    assert back.passed is False
    assert back.to_dict() == data
