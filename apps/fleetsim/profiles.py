"""GPU and model profiles of the replica model: what one vLLM replica of a GPU type costs.

All profiles serve a Llama-3.1-8B-class model in BF16 (8.03 B parameters, 16.06 GB of
weights; 32 layers x 8 KV heads x 128 head dim x 2 (K and V) x 2 bytes = 128 KiB of KV
cache per token). Numbers are derived by :func:`derive_profile` from public datasheet
figures with these efficiency assumptions: 80 % of peak HBM bandwidth achieved when
streaming weights and KV, 50 % of dense BF16 tensor peak achieved by prefill GEMMs
(typical model FLOPs utilisation), 1 ms of fixed per-step overhead (scheduling,
sampling, kernel launches with CUDA graphs).

============  ========  ========  ========  ===========  ===========  ========  ====
GPU           HBM GB/s  BF16 TF   step ms   prefill t/s  KV tokens    max seqs  cold
============  ========  ========  ========  ===========  ===========  ========  ====
A100-80GB     2039      312       10.8      ~9,700       ~455k        256       90 s
H100-80GB     3350      989        7.0      ~30,800      ~444k        1024      90 s
L4            300       121       67.9      ~3,800       ~35k         256       120 s
A10G          600       ~70       34.5      ~2,200       ~35k         256       120 s
============  ========  ========  ========  ===========  ===========  ========  ====

Sources: NVIDIA A100 datasheet (80GB SXM: 2,039 GB/s, 312 TFLOPS BF16 dense), NVIDIA
H100 datasheet (SXM: 3.35 TB/s, 989 TFLOPS BF16 dense), NVIDIA L4 datasheet (300 GB/s,
121 TFLOPS BF16 dense, i.e. half the 242 "with sparsity"); the A10G is AWS's variant of
the A10 (600 GB/s GDDR6) for which AWS publishes no tensor figure: ~70 TFLOPS BF16 is
the commonly quoted value and the least certain number here. Framebuffer sizes are the
totals ``nvidia-smi`` reports (81920, 81559, 23034, 23028 MiB). ``max_num_seqs`` and
``max_num_batched_tokens`` follow vLLM's defaults for the OpenAI server
(``EngineArgs.get_batch_defaults`` in ``vllm/engine/arg_utils.py``: 1024 and 8192 on
≥70 GiB GPUs other than A100, else 256 and 2048). The resulting single-stream decode
speeds (A100 ~91 tok/s, H100 ~142, L4 ~15, A10G ~29) and prefill rates fall in the range
commonly reported for 7-8B BF16 models served by vLLM; treat them as calibrated
estimates, not measurements, and override them with :func:`derive_profile`. Cold
starts (image already cached on the node, weights pulled from a nearby cache, CUDA
graph capture) are typical observed figures, not measurements.

Standby (sleep mode). vLLM's sleep mode (https://docs.vllm.ai/en/latest/features/sleep_mode/,
``--enable-sleep-mode``, ``POST /sleep`` and ``POST /wake_up``) keeps the process alive
while level 1 sleep copies the weights to CPU RAM and frees the KV cache, "releasing up
to 90%+ of GPU memory"; waking copies the weights back, skipping image pull, weight
download, allocator set-up and CUDA graph capture. ``wake_s`` is modelled as the weights
crossing PCIe (25 GB/s effective on Gen4 x16, 50 GB/s on the H100's Gen5) plus one second
of re-warming: 1.6 s for 16 GB on Gen4 against a 90-120 s cold start, in line with the
"18-200x faster than full reload" vLLM reports. ``standby_gpu_fraction`` is the share of
the GPU a sleeping replica is charged for (0.1: the framebuffer it keeps). It is a model
assumption, valid only where the freed GPU is packed with other work (several sleeping
models per GPU, MIG or time-slicing); a sleeping replica alone on an exclusively allocated
GPU costs the whole GPU (set it to 1.0 to model that).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "A10G",
    "A100_80GB",
    "DEFAULT_PROFILE",
    "H100_80GB",
    "L4",
    "LLAMA_3_1_8B",
    "PROFILES",
    "GpuProfile",
    "ModelSpec",
    "derive_profile",
    "get_profile",
]

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """The served model, as far as the performance model cares."""

    name: str
    parameters: float
    weight_bytes: int
    kv_bytes_per_token: int


LLAMA_3_1_8B = ModelSpec(
    name="meta-llama/Llama-3.1-8B-Instruct",
    parameters=8.03e9,
    weight_bytes=16_060_000_000,
    # 2 (K and V) x 32 layers x 8 KV heads (grouped-query attention) x 128 x 2 bytes.
    kv_bytes_per_token=2 * 32 * 8 * 128 * 2,
)


@dataclass(frozen=True, slots=True)
class GpuProfile:
    """Serving characteristics of one GPU type running one model with vLLM."""

    name: str
    product_name: str  # as DCGM's modelName label reports it
    framebuffer_mib: int
    step_base_s: float
    token_compute_s: float
    kv_read_s_per_token: float
    max_num_seqs: int
    max_num_batched_tokens: int
    kv_cache_tokens: int
    max_model_len: int
    cold_start_s: float
    gpu_memory_utilization: float = 0.9
    model_name: str = LLAMA_3_1_8B.name
    wake_s: float = 2.0
    standby_gpu_fraction: float = 0.1

    def __post_init__(self) -> None:
        positive = {
            "framebuffer_mib": self.framebuffer_mib,
            "step_base_s": self.step_base_s,
            "token_compute_s": self.token_compute_s,
            "max_num_seqs": self.max_num_seqs,
            "max_num_batched_tokens": self.max_num_batched_tokens,
            "kv_cache_tokens": self.kv_cache_tokens,
            "max_model_len": self.max_model_len,
        }
        for key, value in positive.items():
            if value <= 0:
                raise ValueError(f"GpuProfile {self.name}: {key} must be positive")
        if self.kv_read_s_per_token < 0 or self.cold_start_s < 0:
            raise ValueError(f"GpuProfile {self.name}: costs and delays must be non-negative")
        if self.max_num_batched_tokens < self.max_num_seqs:
            # Guarantees every step has budget left for at least one prefill token.
            raise ValueError(
                f"GpuProfile {self.name}: max_num_batched_tokens must be >= max_num_seqs"
            )
        if not 0.0 < self.gpu_memory_utilization <= 1.0:
            raise ValueError(f"GpuProfile {self.name}: gpu_memory_utilization must be in (0, 1]")
        if self.wake_s < 0 or not 0.0 <= self.standby_gpu_fraction <= 1.0:
            raise ValueError(
                f"GpuProfile {self.name}: wake_s must be >= 0 and standby_gpu_fraction in [0, 1]"
            )

    @property
    def prefill_tokens_per_s(self) -> float:
        """Compute-bound token throughput of a step spent entirely on prefill."""
        return 1.0 / self.token_compute_s

    @property
    def single_stream_decode_tokens_per_s(self) -> float:
        """Decode speed of a lone short sequence (the best-case inter-token latency)."""
        return 1.0 / (self.step_base_s + self.token_compute_s)

    @property
    def max_request_tokens(self) -> int:
        """Largest ``prompt + output`` a replica accepts."""
        return min(self.max_model_len, self.kv_cache_tokens)

    @property
    def framebuffer_used_mib(self) -> int:
        """Framebuffer held by a ready vLLM process (it preallocates its share)."""
        return int(self.framebuffer_mib * self.gpu_memory_utilization)

    @property
    def framebuffer_asleep_mib(self) -> int:
        """Framebuffer a sleeping vLLM process keeps (CUDA context and buffers)."""
        return int(self.framebuffer_used_mib * self.standby_gpu_fraction)

    def step_time_s(self, decode_seqs: int, context_tokens: int, prefill_tokens: int = 0) -> float:
        """Duration of one scheduler step with the given composition."""
        return (
            self.step_base_s
            + self.token_compute_s * (decode_seqs + prefill_tokens)
            + self.kv_read_s_per_token * context_tokens
        )

    def decode_tokens_per_s(self, batch: int, mean_context_tokens: float) -> float:
        """Aggregate generation throughput of a steady decode-only batch."""
        if batch <= 0:
            return 0.0
        return batch / self.step_time_s(batch, round(batch * mean_context_tokens))


def derive_profile(
    name: str,
    product_name: str,
    *,
    framebuffer_mib: int,
    hbm_gb_per_s: float,
    dense_bf16_tflops: float,
    cold_start_s: float,
    max_num_seqs: int,
    max_num_batched_tokens: int,
    model: ModelSpec = LLAMA_3_1_8B,
    bandwidth_efficiency: float = 0.8,
    compute_efficiency: float = 0.5,
    step_overhead_s: float = 0.001,
    gpu_memory_utilization: float = 0.9,
    non_kv_overhead_mib: int = 1536,
    max_model_len: int = 16_384,
    block_size: int = 16,
    pcie_gb_per_s: float = 25.0,
    standby_gpu_fraction: float = 0.1,
) -> GpuProfile:
    """Build a :class:`GpuProfile` from datasheet numbers by roofline reasoning.

    ``non_kv_overhead_mib`` covers what vLLM's memory profiling sets aside besides
    weights: peak activations for one ``max_num_batched_tokens`` step, CUDA graphs and
    the CUDA context. The KV cache gets the rest of ``gpu_memory_utilization``, rounded
    down to whole ``block_size`` pages.
    """
    bandwidth = hbm_gb_per_s * 1e9 * bandwidth_efficiency
    flops = dense_bf16_tflops * 1e12 * compute_efficiency
    budget_bytes = framebuffer_mib * MIB * gpu_memory_utilization
    kv_bytes = budget_bytes - model.weight_bytes - non_kv_overhead_mib * MIB
    kv_tokens = int(kv_bytes // model.kv_bytes_per_token) // block_size * block_size
    if kv_tokens <= 0:
        raise ValueError(f"{name}: the model does not fit in {framebuffer_mib} MiB")
    return GpuProfile(
        name=name,
        product_name=product_name,
        framebuffer_mib=framebuffer_mib,
        step_base_s=step_overhead_s + model.weight_bytes / bandwidth,
        token_compute_s=2.0 * model.parameters / flops,
        kv_read_s_per_token=model.kv_bytes_per_token / bandwidth,
        max_num_seqs=max_num_seqs,
        max_num_batched_tokens=max_num_batched_tokens,
        kv_cache_tokens=kv_tokens,
        max_model_len=max_model_len,
        cold_start_s=cold_start_s,
        gpu_memory_utilization=gpu_memory_utilization,
        model_name=model.name,
        wake_s=round(1.0 + model.weight_bytes / (pcie_gb_per_s * 1e9), 2),
        standby_gpu_fraction=standby_gpu_fraction,
    )


A100_80GB = derive_profile(
    "A100-80GB",
    "NVIDIA A100-SXM4-80GB",
    framebuffer_mib=81_920,
    hbm_gb_per_s=2039,
    dense_bf16_tflops=312,
    cold_start_s=90.0,
    max_num_seqs=256,
    max_num_batched_tokens=2048,
)
H100_80GB = derive_profile(
    "H100-80GB",
    "NVIDIA H100 80GB HBM3",
    framebuffer_mib=81_559,
    hbm_gb_per_s=3350,
    dense_bf16_tflops=989,
    cold_start_s=90.0,
    max_num_seqs=1024,
    max_num_batched_tokens=8192,
    # A 4x larger step budget needs correspondingly more activation memory.
    non_kv_overhead_mib=2560,
    pcie_gb_per_s=50.0,
)
L4 = derive_profile(
    "L4",
    "NVIDIA L4",
    framebuffer_mib=23_034,
    hbm_gb_per_s=300,
    dense_bf16_tflops=121,
    cold_start_s=120.0,
    max_num_seqs=256,
    max_num_batched_tokens=2048,
    non_kv_overhead_mib=1024,
)
A10G = derive_profile(
    "A10G",
    "NVIDIA A10G",
    framebuffer_mib=23_028,
    hbm_gb_per_s=600,
    dense_bf16_tflops=70,
    cold_start_s=120.0,
    max_num_seqs=256,
    max_num_batched_tokens=2048,
    non_kv_overhead_mib=1024,
)

PROFILES: dict[str, GpuProfile] = {p.name: p for p in (A100_80GB, H100_80GB, L4, A10G)}
DEFAULT_PROFILE = A100_80GB


def get_profile(name: str) -> GpuProfile:
    """Look a profile up by name, case-insensitively (``"a100-80gb"``, ``"L4"``...)."""
    for key, profile in PROFILES.items():
        if key.lower() == name.lower():
            return profile
    raise KeyError(f"unknown GPU profile {name!r}; known: {', '.join(PROFILES)}")
