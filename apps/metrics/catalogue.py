"""The PromQL behind every signal the control plane reads, per serving framework.

Each template is written for *all deployments at once*: ``$sel`` becomes the label
matchers that select the fleet (always ending in a comma, which PromQL accepts, so a
template can append its own matchers), ``$by`` the labels that identify a deployment and
``$w`` the rate window. One query per signal thus returns one series per deployment.

Metric names match these versions (checked against their documentation):
- vLLM ≥ 0.10 (V1 engine): ``vllm:kv_cache_usage_perc`` and ``vllm:inter_token_latency_seconds``
  replaced ``vllm:gpu_cache_usage_perc`` and ``vllm:time_per_output_token_seconds``.
  https://docs.vllm.ai/en/latest/usage/metrics.html
- Text Generation Inference 2.x/3.x:
  https://huggingface.co/docs/text-generation-inference/reference/metrics
- SGLang ≥ 0.4 (``--enable-metrics``): https://docs.sglang.io/references/production_metrics.html
- Triton Inference Server 24.x+ with the TensorRT-LLM backend (``nv_trt_llm_*``) and Triton's
  own ``nv_inference_*`` counters: https://docs.nvidia.com/deeplearning/triton-inference-server/
  user-guide/docs/user_guide/metrics.html
- NVIDIA DCGM exporter 3.x (``DCGM_FI_DEV_*``, labels ``pod``/``namespace`` from its Kubernetes
  mode): https://github.com/NVIDIA/dcgm-exporter

A signal a framework does not expose is absent from its table (``None``): it reads as
"not supported", never as zero.
"""

from __future__ import annotations

import string

from django.db import models


class Signal(models.TextChoices):
    QUEUE_LENGTH = "queue_length", "Waiting requests"
    RUNNING_REQUESTS = "running_requests", "Running requests"
    KV_CACHE_USAGE = "kv_cache_usage", "KV-cache use (0-1)"
    TTFT_P50 = "ttft_p50", "Time to first token p50 (s)"
    TTFT_P95 = "ttft_p95", "Time to first token p95 (s)"
    TTFT_P99 = "ttft_p99", "Time to first token p99 (s)"
    ITL_P95 = "itl_p95", "Inter-token latency p95 (s)"
    E2E_P95 = "e2e_p95", "End-to-end latency p95 (s)"
    REQUEST_RATE = "request_rate", "Finished requests/s"
    PROMPT_TOKEN_RATE = "prompt_token_rate", "Prompt tokens/s"
    GENERATION_TOKEN_RATE = "generation_token_rate", "Generated tokens/s"
    ERROR_RATIO = "error_ratio", "Failed / all requests"
    GPU_UTILIZATION = "gpu_utilization", "GPU utilisation (0-1)"
    GPU_MEMORY_USED = "gpu_memory_used", "GPU memory used (0-1)"


GPU_SIGNALS = frozenset({Signal.GPU_UTILIZATION, Signal.GPU_MEMORY_USED})


def _hq(q: float, metric: str, scale: str = "") -> str:
    return f"histogram_quantile({q}, sum by (le, $by) (rate({metric}_bucket{{$sel}}[$w]))){scale}"


def _sum(metric: str, extra: str = "") -> str:
    return f"sum by ($by) ({metric}{{${{sel}}{extra}}})"


def _avg(metric: str) -> str:
    # Averaged, not summed: each replica reports its own fill level.
    return f"avg by ($by) ({metric}{{$sel}})"


def _rate(metric: str, extra: str = "") -> str:
    return f"sum by ($by) (rate({metric}{{${{sel}}{extra}}}[$w]))"


_VLLM: dict[str, str | None] = {
    Signal.QUEUE_LENGTH: _sum("vllm:num_requests_waiting"),
    Signal.RUNNING_REQUESTS: _sum("vllm:num_requests_running"),
    Signal.KV_CACHE_USAGE: _avg("vllm:kv_cache_usage_perc"),
    Signal.TTFT_P50: _hq(0.5, "vllm:time_to_first_token_seconds"),
    Signal.TTFT_P95: _hq(0.95, "vllm:time_to_first_token_seconds"),
    Signal.TTFT_P99: _hq(0.99, "vllm:time_to_first_token_seconds"),
    Signal.ITL_P95: _hq(0.95, "vllm:inter_token_latency_seconds"),
    Signal.E2E_P95: _hq(0.95, "vllm:e2e_request_latency_seconds"),
    Signal.REQUEST_RATE: _rate("vllm:request_success_total"),
    Signal.PROMPT_TOKEN_RATE: _rate("vllm:prompt_tokens_total"),
    Signal.GENERATION_TOKEN_RATE: _rate("vllm:generation_tokens_total"),
    # vLLM counts finished requests by reason; "abort" is the closest it has to a failure.
    # A gateway's HTTP status metrics make a better SLI: set a custom query for that.
    Signal.ERROR_RATIO: (
        _rate("vllm:request_success_total", 'finished_reason="abort"')
        + " / "
        + _rate("vllm:request_success_total")
    ),
}

_TGI: dict[str, str | None] = {
    Signal.QUEUE_LENGTH: _sum("tgi_queue_size"),
    Signal.RUNNING_REQUESTS: _sum("tgi_batch_current_size"),
    Signal.KV_CACHE_USAGE: None,
    # TGI exports no time-to-first-token histogram; its queue time is only a lower bound
    # and is not passed off as TTFT.
    Signal.TTFT_P50: None,
    Signal.TTFT_P95: None,
    Signal.TTFT_P99: None,
    Signal.ITL_P95: _hq(0.95, "tgi_request_mean_time_per_token_duration"),
    Signal.E2E_P95: _hq(0.95, "tgi_request_duration"),
    Signal.REQUEST_RATE: _rate("tgi_request_success"),
    Signal.PROMPT_TOKEN_RATE: _rate("tgi_request_input_length_sum"),
    Signal.GENERATION_TOKEN_RATE: _rate("tgi_request_generated_tokens_sum"),
    Signal.ERROR_RATIO: _rate("tgi_request_failure") + " / " + _rate("tgi_request_count"),
}

_SGLANG: dict[str, str | None] = {
    Signal.QUEUE_LENGTH: _sum("sglang:num_queue_reqs"),
    Signal.RUNNING_REQUESTS: _sum("sglang:num_running_reqs"),
    Signal.KV_CACHE_USAGE: _avg("sglang:token_usage"),
    Signal.TTFT_P50: _hq(0.5, "sglang:time_to_first_token_seconds"),
    Signal.TTFT_P95: _hq(0.95, "sglang:time_to_first_token_seconds"),
    Signal.TTFT_P99: _hq(0.99, "sglang:time_to_first_token_seconds"),
    Signal.ITL_P95: _hq(0.95, "sglang:inter_token_latency_seconds"),
    Signal.E2E_P95: _hq(0.95, "sglang:e2e_request_latency_seconds"),
    Signal.REQUEST_RATE: _rate("sglang:num_requests_total"),
    Signal.PROMPT_TOKEN_RATE: _rate("sglang:prompt_tokens_total"),
    Signal.GENERATION_TOKEN_RATE: _rate("sglang:generation_tokens_total"),
    Signal.ERROR_RATIO: (
        _rate("sglang:num_aborted_requests_total") + " / " + _rate("sglang:num_requests_total")
    ),
}

_TRITON: dict[str, str | None] = {
    Signal.QUEUE_LENGTH: _sum("nv_inference_pending_request_count"),
    Signal.RUNNING_REQUESTS: _sum("nv_trt_llm_request_metrics", 'request_type="active"'),
    Signal.KV_CACHE_USAGE: (
        _sum("nv_trt_llm_kv_cache_block_metrics", 'kv_cache_block_type="used"')
        + " / "
        + _sum("nv_trt_llm_kv_cache_block_metrics", 'kv_cache_block_type="max"')
    ),
    # Triton reports first-response time in milliseconds when histograms are enabled.
    Signal.TTFT_P50: _hq(0.5, "nv_inference_first_response_histogram_ms", " / 1000"),
    Signal.TTFT_P95: _hq(0.95, "nv_inference_first_response_histogram_ms", " / 1000"),
    Signal.TTFT_P99: _hq(0.99, "nv_inference_first_response_histogram_ms", " / 1000"),
    Signal.ITL_P95: None,
    Signal.E2E_P95: None,
    Signal.REQUEST_RATE: _rate("nv_inference_request_success"),
    Signal.PROMPT_TOKEN_RATE: None,
    Signal.GENERATION_TOKEN_RATE: None,
    Signal.ERROR_RATIO: (
        _rate("nv_inference_request_failure")
        + " / ("
        + _rate("nv_inference_request_success")
        + " + "
        + _rate("nv_inference_request_failure")
        + ")"
    ),
}

_DCGM: dict[str, str | None] = {
    Signal.GPU_UTILIZATION: _avg("DCGM_FI_DEV_GPU_UTIL") + " / 100",
    Signal.GPU_MEMORY_USED: (
        _sum("DCGM_FI_DEV_FB_USED")
        + " / ("
        + _sum("DCGM_FI_DEV_FB_USED")
        + " + "
        + _sum("DCGM_FI_DEV_FB_FREE")
        + ")"
    ),
}

CATALOGUE: dict[str, dict[str, str | None]] = {
    "vllm": _VLLM,
    "tgi": _TGI,
    "sglang": _SGLANG,
    "tensorrt-llm": _TRITON,
    "dcgm": _DCGM,
}

# The series whose last scrape time tells whether a deployment's data is fresh.
FRESHNESS_METRIC = {
    "vllm": "vllm:num_requests_running",
    "tgi": "tgi_queue_size",
    "sglang": "sglang:num_running_reqs",
    "tensorrt-llm": "nv_inference_pending_request_count",
}


def template_for(framework: str, signal: str) -> str | None:
    if signal in GPU_SIGNALS:
        return _DCGM.get(signal)
    return CATALOGUE.get(framework, {}).get(signal)


def render(template: str, *, sel: str, by: str, window: str) -> str:
    """Fill a template. ``sel`` is a comma-terminated matcher list (may be empty)."""
    text = string.Template(template).substitute(sel=sel, by=by, w=window)
    # Grouping by no label at all is written "by ()".
    return text.replace("by (le, )", "by (le)")


def catalogue_table() -> list[dict[str, str | None]]:
    """Rows for the docs and the API: one per (framework, signal)."""
    rows = []
    for framework, table in CATALOGUE.items():
        for signal, template in table.items():
            rows.append(
                {
                    "framework": framework,
                    "signal": str(signal),
                    "promql": None
                    if template is None
                    else render(template, sel="<selector>,", by="<identity labels>", window="1m"),
                }
            )
    return rows
