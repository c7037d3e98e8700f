"""Performance model of one LLM serving replica with continuous batching (vLLM-like).

The model is pure and deterministic: no I/O, no wall clock, no randomness. Time is a
float in seconds on the simulation clock.

Scheduler iterations ("steps")
------------------------------
A replica runs back-to-back scheduler iterations while it has work, as vLLM's engine
loop does. Each step

* generates one token for every *decoding* sequence (one whose prompt is fully
  processed), and
* spends the remaining token budget (``max_num_batched_tokens`` minus the decode
  tokens) on *chunked prefill*: first the sequences whose prompt is partly processed,
  then new sequences admitted from the FIFO waiting queue. This is vLLM V1's default
  scheduling policy (chunked prefill is always on in V1). A sequence whose prompt
  completes in a step emits its first token at the end of that step.

The duration of a step is a roofline-style sum of its costs::

    t_step = step_base_s                                  # stream the weights once
           + token_compute_s * (decode_seqs + prefill_tokens)   # 2·params FLOPs/token
           + kv_read_s_per_token * decode_context_tokens        # attention KV reads

Decode at small batch is memory-bandwidth bound: every step reads all weights from HBM
once (``step_base_s``) plus the KV cache of every running sequence. Prefill is compute
bound: each prompt token costs about ``2 x parameters`` FLOPs; a decode token costs the
same FLOPs, which is what makes large decode batches turn compute bound. Summing the
terms instead of taking their maximum is deliberately conservative: a step is a chain
of kernels, some memory bound (attention, small GEMMs) and some compute bound, and
they overlap little. It lands close to published vLLM throughput for 8B models (see
the profile notes below).

Admission and the KV cache
--------------------------
A waiting request is admitted when fewer than ``max_num_seqs`` sequences are running
and the KV cache can hold its whole lifetime, ``prompt + output`` tokens, which are
reserved at admission. The waiting queue is strictly FIFO: a head that does not fit
blocks the requests behind it, like vLLM's scheduler. vLLM itself admits on the
prompt's blocks and *preempts* (recomputes) sequences when the cache later runs out;
reserving up front trades that rare recomputation for a model without preemption,
which keeps it analytically steppable. Requests that could never fit (``prompt +
output`` above ``max_model_len`` or the cache) are rejected at submission, as vLLM's
API server answers HTTP 400.

The reported KV-cache usage (``vllm:kv_cache_usage_perc``) is the fraction of cache
tokens *actually holding* context (prompts processed so far plus generated tokens),
as vLLM reports used blocks, not the reservation.

Speed: decoding in closed form
------------------------------
Between events (an arrival at this replica, a prefill step, a completion) the batch
is fixed, so the k-th decode step lasts ``a0 + s·k`` with ``s = kv_read_s_per_token x
batch`` (each step adds one context token per sequence). The time of n steps is then
``n·a0 + s·n(n-1)/2`` and the number of steps that start before a given time is the
root of a quadratic. The replica jumps whole decode segments at once and even defers
them ("lazy" replica): :meth:`Replica.sync` only materialises steps when the time
asked for reaches the start of the step that will finish the next sequence
(:attr:`Replica.horizon`), which is all a least-load router needs. Prefill steps are
simulated one by one; there are about as many as there are requests.

Cold start
----------
A replica created at ``created_at_s`` runs no step before ``ready_at_s`` (image pull,
weight loading, CUDA graph capture). Requests submitted earlier simply wait.

Sleep and wake (standby)
------------------------
:meth:`Replica.sleep` models vLLM's level 1 sleep mode: the weights go to CPU RAM and the
KV cache is freed, so an idle replica keeps only ``standby_gpu_fraction`` of its
framebuffer and serves nothing. :meth:`Replica.wake` makes it ready again ``wake_s``
later (weights copied back) instead of a whole cold start (see
:mod:`apps.fleetsim.profiles` for the figures and what they assume). A replica may be
put to sleep before its cold start ended (a standby being prepared): it then sleeps as
soon as it is loaded, and waking it makes it ready at ``max(loaded, now + wake_s)``.

GPU telemetry
-------------
* GPU utilisation is the fraction of the trailing ``util_window_s`` in which the
  replica was executing steps. It mirrors ``DCGM_FI_DEV_GPU_UTIL``, which is the
  fraction of time *any* kernel was running: with a single request in flight it
  already reads 100 %, so it is a poor load signal, as on real clusters.
* vLLM preallocates ``gpu_memory_utilization`` of the framebuffer for weights,
  activations and the KV cache at start-up, so framebuffer use is flat once ready; it
  ramps linearly during the cold start as weights load.

GPU profiles (step costs, KV cache size, cold start) are in :mod:`apps.fleetsim.profiles`,
latency histograms in :mod:`apps.fleetsim.histograms`.
"""

from __future__ import annotations

import heapq
import math
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from apps.fleetsim.histograms import (
    VLLM_E2E_BUCKETS,
    VLLM_ITL_BUCKETS,
    VLLM_TTFT_BUCKETS,
    Histogram,
)
from apps.fleetsim.profiles import GpuProfile
from apps.fleetsim.workload import Request

__all__ = [
    "Job",
    "Replica",
    "ReplicaSnapshot",
    "ReplicaStats",
    "RequestRecord",
    "replay",
]


class ReplicaStats:
    """Cumulative counters of one replica, the raw material of its /metrics."""

    __slots__ = (
        "busy_s",
        "e2e",
        "failures",
        "generation_tokens",
        "itl",
        "prompt_tokens",
        "success",
        "truncated",
        "ttft",
    )

    def __init__(self) -> None:
        self.success = 0
        # Of those, requests that ended at their token limit (vLLM's finish reason "length").
        self.truncated = 0
        self.failures: dict[str, int] = {}
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.busy_s = 0.0
        self.ttft = Histogram(VLLM_TTFT_BUCKETS)
        self.itl = Histogram(VLLM_ITL_BUCKETS)
        self.e2e = Histogram(VLLM_E2E_BUCKETS)

    @property
    def failure_total(self) -> int:
        return sum(self.failures.values())

    def copy(self) -> ReplicaStats:
        other = ReplicaStats()
        other.merge(self)
        return other

    def merge(self, other: ReplicaStats) -> None:
        self.success += other.success
        self.truncated += other.truncated
        for reason, n in other.failures.items():
            self.failures[reason] = self.failures.get(reason, 0) + n
        self.prompt_tokens += other.prompt_tokens
        self.generation_tokens += other.generation_tokens
        self.busy_s += other.busy_s
        self.ttft.merge(other.ttft)
        self.itl.merge(other.itl)
        self.e2e.merge(other.e2e)


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """Outcome of one request, for SLO computations.

    Latencies are measured from ``arrival_s``, when the request first reached the
    serving system, so queueing at the gateway and re-queueing after a scale-down
    count against it. ``mean_itl_s`` is ``None`` for single-token outputs.
    """

    request_id: int
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    completed: bool
    finish_s: float
    pod: str
    ttft_s: float | None = None
    mean_itl_s: float | None = None
    e2e_s: float | None = None
    queue_s: float | None = None
    requeues: int = 0
    failure_reason: str | None = None


@dataclass(slots=True)
class Job:
    """A request in flight through the serving system, identity included.

    A ``pinned`` job came over a connection to one replica (the simulator's HTTP
    endpoint, see :mod:`apps.fleetsim.replica_http`): it is never re-queued on another
    replica, and the replica holding it reports its progress (:meth:`Replica.tokens_generated`).
    A ``truncated`` job's output ends at the request's token limit rather than at a stop
    token; it is counted apart (vLLM's ``finished_reason="length"``).
    """

    request_id: int
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    requeues: int = 0
    pinned: bool = False
    truncated: bool = False

    @classmethod
    def from_request(cls, request_id: int, request: Request) -> Job:
        return cls(request_id, request.arrival_s, request.prompt_tokens, request.output_tokens)

    def record(
        self, *, completed: bool, finish_s: float, pod: str, **outcome: Any
    ) -> RequestRecord:
        """This request's :class:`RequestRecord`; ``outcome`` is the rest of its fields
        (latencies when completed, the failure reason when not)."""
        return RequestRecord(
            request_id=self.request_id,
            arrival_s=self.arrival_s,
            prompt_tokens=self.prompt_tokens,
            output_tokens=self.output_tokens,
            completed=completed,
            finish_s=finish_s,
            pod=pod,
            requeues=self.requeues,
            **outcome,
        )


@dataclass(frozen=True, slots=True)
class ReplicaSnapshot:
    """Instant state of a replica plus a copy of its cumulative counters."""

    pod: str
    ready: bool
    time_s: float
    num_running: int
    num_waiting: int
    kv_cache_usage: float
    gpu_utilization: float
    fb_used_mib: int
    fb_free_mib: int
    gpu_uuid: str
    hostname: str
    product_name: str
    ready_at_s: float
    stats: ReplicaStats
    asleep: bool = False
    waking: bool = False

    @property
    def state(self) -> str:
        """``ready``, ``starting`` (cold start), ``waking`` (back from sleep) or ``asleep``."""
        if self.asleep:
            return "asleep"
        if self.ready:
            return "ready"
        return "waking" if self.waking else "starting"


class _Seq:
    """Per-replica progress of one job (hot-path object, hence slots and short names)."""

    __slots__ = (
        "admitted_s",
        "arrival",
        "first_token_s",
        "job",
        "need",
        "output",
        "prefilled",
        "prompt",
        "rid",
        "start",
    )

    def __init__(self, job: Job) -> None:
        self.job = job
        self.rid = job.request_id
        self.arrival = job.arrival_s
        self.prompt = job.prompt_tokens
        self.output = job.output_tokens
        self.need = job.prompt_tokens + job.output_tokens
        self.prefilled = 0
        self.start = 0
        self.first_token_s = 0.0
        self.admitted_s = 0.0


# ---------------------------------------------------------------------------- replica


def _fake_uuid(seed: str) -> str:
    return f"GPU-{uuid.uuid5(uuid.NAMESPACE_URL, 'llmcp-fleetsim/' + seed)}"


def _steps_starting_before(a0: float, slope: float, span: float) -> int:
    """Number of k >= 0 with ``k*a0 + slope*k*(k-1)/2 < span`` (at least 1 for span > 0)."""
    if slope <= 0.0:
        n = math.ceil(span / a0)
    else:
        b = a0 - 0.5 * slope
        n = math.ceil(2.0 * span / (b + math.sqrt(b * b + 2.0 * slope * span)))
    n = max(n, 1)
    # The closed form can land one off either way through rounding; settle exactly.
    while n > 1 and (n - 1) * a0 + 0.5 * slope * (n - 1) * (n - 2) >= span:
        n -= 1
    while n * a0 + 0.5 * slope * n * (n - 1) < span:
        n += 1
    return n


class Replica:
    """One serving replica (one vLLM engine on one GPU).

    Drive it with :meth:`submit` (in non-decreasing time order) and :meth:`advance`;
    read it with :meth:`snapshot` or the counters in :attr:`stats`. Finished and
    failed requests are handed to ``sink`` (default: kept in :meth:`completed`).
    """

    def __init__(
        self,
        profile: GpuProfile,
        *,
        pod: str = "replica-0",
        ready_at_s: float = 0.0,
        created_at_s: float | None = None,
        gpu_uuid: str | None = None,
        hostname: str = "sim-gpu-node-0",
        util_window_s: float = 1.0,
        sink: Callable[[RequestRecord], None] | None = None,
    ) -> None:
        if util_window_s <= 0:
            raise ValueError("util_window_s must be positive")
        self.profile = profile
        self.pod = pod
        self.ready_at_s = ready_at_s
        self.created_at_s = ready_at_s if created_at_s is None else min(created_at_s, ready_at_s)
        self.gpu_uuid = gpu_uuid or _fake_uuid(pod)
        self.hostname = hostname
        self.util_window_s = util_window_s
        self.stats = ReplicaStats()
        # Sleep mode: asleep, and when the last wake began (None: never woken).
        self.asleep = False
        self.woken_at_s: float | None = None
        self._records: list[RequestRecord] = []
        self._sink: Callable[[RequestRecord], None] = (
            sink if sink is not None else self._records.append
        )
        # Profile scalars cached as attributes: they are read in every step.
        self.slowdown = 1.0
        self._base = profile.step_base_s
        self._tok = profile.token_compute_s
        self._kv = profile.kv_read_s_per_token
        self._max_seqs = profile.max_num_seqs
        self._budget = profile.max_num_batched_tokens
        self._kv_cap = profile.kv_cache_tokens
        self._max_need = profile.max_request_tokens

        # Start time of the next step (or, when idle, the latest time reached).
        self._t = ready_at_s
        # Decode steps executed so far; a decoding sequence's token count derives from it.
        self._counter = 0
        # Decoding sequences as a heap keyed by the counter value that finishes them.
        self._decoding: list[tuple[int, int, _Seq]] = []
        self._b = 0
        self._sum_prompt = 0
        self._sum_start = 0
        self._prefilling: deque[_Seq] = deque()
        self._prefill_held = 0
        self._waiting: deque[_Seq] = deque()
        self._reserved = 0
        self._horizon = math.inf
        # Pinned jobs still held, by request id, so their progress can be read.
        self._pinned: dict[int, _Seq] = {}
        # Merged [start, end] intervals of step execution, for utilisation windows.
        self._busy: deque[list[float]] = deque()

    # ---------------------------------------------------------------- inspection

    def is_ready(self, t: float) -> bool:
        return not self.asleep and t >= self.ready_at_s

    def is_waking(self, t: float) -> bool:
        return not self.asleep and self.woken_at_s is not None and t < self.ready_at_s

    @property
    def horizon(self) -> float:
        """Earliest time for which :meth:`sync` must do work; before it counts are exact."""
        return self._horizon

    @property
    def clock(self) -> float:
        """Start of the next step, or the latest time reached when idle."""
        return self._t

    @property
    def num_running(self) -> int:
        return self._b + len(self._prefilling)

    @property
    def num_waiting(self) -> int:
        return len(self._waiting)

    @property
    def outstanding(self) -> int:
        """Requests accepted and not yet finished (what a least-load router compares)."""
        return self._b + len(self._prefilling) + len(self._waiting)

    def has_room(self, prompt_tokens: int, output_tokens: int) -> bool:
        """Whether the engine would admit such a request into its batch now: fewer than
        ``max_num_seqs`` sequences running and waiting, and KV cache for everything it
        holds (running and waiting) plus this request. What a gateway with flow control
        asks before sending a request (see ``SimulatedDeployment(flow_control=True)``)."""
        waiting = self._waiting
        if self.num_running + len(waiting) >= self._max_seqs:
            return False
        held = self._reserved + sum(seq.need for seq in waiting)
        return held + prompt_tokens + output_tokens <= self._kv_cap

    @property
    def kv_tokens_used(self) -> int:
        decoding_context = self._sum_prompt + self._b * (1 + self._counter) - self._sum_start
        return decoding_context + self._prefill_held

    @property
    def kv_cache_usage(self) -> float:
        return min(1.0, self.kv_tokens_used / self._kv_cap)

    def gpu_utilization(self, now: float, window_s: float | None = None) -> float:
        """Busy fraction of ``[now - window_s, now]`` (call :meth:`advance` to ``now`` first)."""
        window = self.util_window_s if window_s is None else window_s
        lo = now - window
        busy = 0.0
        for start, end in reversed(self._busy):
            if end <= lo:
                break
            overlap = min(end, now) - max(start, lo)
            if overlap > 0.0:
                busy += overlap
        return min(1.0, busy / window)

    def fb_used_mib(self, now: float) -> int:
        target = self.profile.framebuffer_used_mib
        asleep = self.profile.framebuffer_asleep_mib
        if self.asleep and now >= self.ready_at_s:
            return asleep
        if now >= self.ready_at_s:
            return target
        if self.woken_at_s is not None:  # weights copied back from CPU RAM
            since, base = self.woken_at_s, asleep
        else:
            since, base = self.created_at_s, 0
        if self.ready_at_s <= since:
            return target
        loading = (now - since) / (self.ready_at_s - since)
        return base + int((target - base) * max(0.0, loading))

    def snapshot(self, now: float) -> ReplicaSnapshot:
        self.advance(now)
        used = self.fb_used_mib(now)
        return ReplicaSnapshot(
            pod=self.pod,
            ready=self.is_ready(now),
            time_s=now,
            num_running=self.num_running,
            num_waiting=self.num_waiting,
            kv_cache_usage=self.kv_cache_usage,
            gpu_utilization=self.gpu_utilization(now),
            fb_used_mib=used,
            fb_free_mib=self.profile.framebuffer_mib - used,
            gpu_uuid=self.gpu_uuid,
            hostname=self.hostname,
            product_name=self.profile.product_name,
            ready_at_s=self.ready_at_s,
            stats=self.stats.copy(),
            asleep=self.asleep,
            waking=self.is_waking(now),
        )

    def completed(self) -> list[RequestRecord]:
        """Records kept by the default sink (empty when a custom sink was given)."""
        return list(self._records)

    def tokens_generated(self, request_id: int) -> int | None:
        """Output tokens a pinned request has so far (0 while queued or prefilling).

        ``None`` once the replica no longer holds it (finished, failed or drained). The
        count includes the tokens of a step that started before the time last advanced
        to and ends just after it: a reader sees each token up to one step early.
        """
        seq = self._pinned.get(request_id)
        if seq is None:
            return None
        if seq.start == 0:  # decoding sequences start at a counter value >= 1
            return 0
        return min(seq.output, 1 + self._counter - seq.start)

    # ------------------------------------------------------------------- driving

    def submit(self, job: Job, t: float) -> bool:
        """Hand a request to this replica at time ``t``; False if it is rejected outright."""
        self.advance(t)
        if job.prompt_tokens + job.output_tokens > self._max_need:
            self.fail(job, t, "rejected")
            return False
        seq = _Seq(job)
        if job.pinned:
            self._pinned[job.request_id] = seq
        self._waiting.append(seq)
        self._refresh_horizon()
        return True

    def fail(self, job: Job, t: float, reason: str) -> None:
        """Account a request this replica answered with an error, using no GPU time."""
        self.stats.failures[reason] = self.stats.failures.get(reason, 0) + 1
        self._sink(job.record(completed=False, finish_s=t, pod=self.pod, failure_reason=reason))

    def abort(self, request_id: int, t: float) -> bool:
        """Drop a pinned request at ``t`` (its client went away), as vLLM aborts a request
        whose connection closed: its batch slot and KV cache are freed at once and it
        fails with reason ``aborted``. False when the replica no longer holds it."""
        self.advance(t)
        seq = self._pinned.pop(request_id, None)
        if seq is None:
            return False
        if seq.start:  # decoding
            self._decoding = [entry for entry in self._decoding if entry[2] is not seq]
            heapq.heapify(self._decoding)
            self._b -= 1
            self._sum_prompt -= seq.prompt
            self._sum_start -= seq.start
            self._reserved -= seq.need
        elif seq in self._prefilling:
            self._prefilling.remove(seq)
            self._prefill_held -= seq.prefilled
            self._reserved -= seq.need
        else:
            self._waiting.remove(seq)
        self._refresh_horizon()
        self.fail(seq.job, t, "aborted")
        return True

    def set_slowdown(self, factor: float, t: float) -> None:
        """Make every step that starts after ``t`` ``factor`` times longer, as a throttled
        or degraded GPU would (1 restores the profile's speed). Steps started before
        ``t`` keep the old speed."""
        if not math.isfinite(factor) or factor <= 0:
            raise ValueError("slowdown factor must be a finite number > 0")
        self.advance(t)
        self.slowdown = float(factor)
        self._base = self.profile.step_base_s * factor
        self._tok = self.profile.token_compute_s * factor
        self._kv = self.profile.kv_read_s_per_token * factor
        self._refresh_horizon()

    def sleep(self, t: float) -> None:
        """Put the replica to sleep at ``t`` (vLLM level 1): it must hold no request (take
        them off with :meth:`drain` first); its KV cache is freed and it serves nothing
        until :meth:`wake`. Raises ValueError when it still holds requests."""
        self.advance(t)
        if self.outstanding:
            raise ValueError(f"{self.pod} holds {self.outstanding} requests; drain it first")
        self.asleep = True

    def wake(self, t: float) -> float:
        """Wake the replica at ``t``: it is ready ``wake_s`` later (or when its cold start
        ends, if later). Returns that time. A replica that is not asleep is left alone."""
        if not self.asleep:
            return self.ready_at_s
        self.asleep = False
        self.woken_at_s = t
        self.ready_at_s = max(self.ready_at_s, t + self.profile.wake_s)
        self._t = max(self._t, self.ready_at_s)
        self._refresh_horizon()
        return self.ready_at_s

    def sync(self, t: float) -> None:
        """Make ``outstanding`` exact at ``t`` while materialising as little as possible."""
        if t > self._horizon:
            self.advance(t)

    def advance(self, t: float) -> None:
        """Execute every step that starts before ``t``.

        A step in flight at ``t`` completes (its end may lie after ``t``): a request
        arriving during a step joins the next one, as in a real engine loop.
        """
        while True:
            if self._prefilling or (self._waiting and self._head_admissible()):
                if self._t >= t:
                    break
                self._mixed_step()
            elif self._b:
                if self._t >= t:
                    break
                self._decode_until(t)
            else:
                if self._t < t < math.inf:
                    self._t = t
                break
        self._refresh_horizon()

    def run_until_idle(self) -> float:
        """Finish everything accepted so far; returns the time the last step ended."""
        self.advance(math.inf)
        return self._t

    def drain(self) -> list[Job]:
        """Remove every accepted request (for re-queueing elsewhere), oldest first.

        Progress is lost: the requests restart from scratch where they land, as when a
        pod is deleted and the gateway retries.
        """
        seqs = [entry[2] for entry in self._decoding]
        seqs.extend(self._prefilling)
        seqs.extend(self._waiting)
        self._decoding = []
        self._b = self._sum_prompt = self._sum_start = 0
        self._prefilling.clear()
        self._prefill_held = 0
        self._waiting.clear()
        self._reserved = 0
        self._horizon = math.inf
        self._pinned.clear()
        jobs = [s.job for s in seqs]
        jobs.sort(key=lambda j: (j.arrival_s, j.request_id))
        return jobs

    # ------------------------------------------------------------------ internals

    def _head_admissible(self) -> bool:
        return (
            self._b + len(self._prefilling) < self._max_seqs
            and self._reserved + self._waiting[0].need <= self._kv_cap
        )

    def _refresh_horizon(self) -> None:
        if self._prefilling or (self._waiting and self._head_admissible()):
            self._horizon = self._t
        elif self._b:
            b = self._b
            steps_before_finish = self._decoding[0][0] - self._counter - 1
            context = self._sum_prompt + b * (1 + self._counter) - self._sum_start
            a0 = self._base + self._tok * b + self._kv * context
            slope = self._kv * b
            k = steps_before_finish
            self._horizon = self._t + k * a0 + 0.5 * slope * k * (k - 1)
        else:
            self._horizon = math.inf

    def _mark_busy(self, start: float, end: float) -> None:
        busy = self._busy
        if busy and busy[-1][1] >= start - 1e-9:
            busy[-1][1] = end
        else:
            busy.append([start, end])
            if len(busy) > 512:
                horizon = end - 600.0
                while busy and busy[0][1] < horizon:
                    busy.popleft()
        self.stats.busy_s += end - start

    def _decode_until(self, t: float) -> None:
        """Run decode-only steps that start before ``t``, stopping at the next finish."""
        b = self._b
        counter = self._counter
        to_finish = self._decoding[0][0] - counter
        context = self._sum_prompt + b * (1 + counter) - self._sum_start
        a0 = self._base + self._tok * b + self._kv * context
        slope = self._kv * b
        span = t - self._t
        k = to_finish - 1
        if k * a0 + 0.5 * slope * k * (k - 1) < span:
            n = to_finish
        else:
            n = min(to_finish, _steps_starting_before(a0, slope, span))
        duration = n * a0 + 0.5 * slope * n * (n - 1)
        start = self._t
        self._mark_busy(start, start + duration)
        stats = self.stats
        stats.itl.observe_linear(a0, slope, n, b)
        stats.generation_tokens += b * n
        self._t = start + duration
        self._counter = counter + n
        if n == to_finish:
            self._retire()

    def _mixed_step(self) -> None:
        """One step with prefill work: chunked prefill plus a decode token per sequence."""
        b = self._b
        budget = self._budget - b
        chunk = 0
        done = 0
        prefilling = self._prefilling
        for seq in prefilling:
            remaining = seq.prompt - seq.prefilled
            take = remaining if remaining <= budget else budget
            seq.prefilled += take
            chunk += take
            budget -= take
            if take == remaining:
                done += 1
            if budget == 0:
                break
        t0 = self._t
        waiting = self._waiting
        # Admission only happens with budget left, i.e. when every partially prefilled
        # sequence above has completed: finished prefills stay a prefix of the deque.
        while budget > 0 and waiting and self._head_admissible():
            seq = waiting.popleft()
            self._reserved += seq.need
            seq.admitted_s = t0
            prefilling.append(seq)
            take = seq.prompt if seq.prompt <= budget else budget
            seq.prefilled = take
            chunk += take
            budget -= take
            if take == seq.prompt:
                done += 1
        self._prefill_held += chunk

        context = self._sum_prompt + b * (1 + self._counter) - self._sum_start
        duration = self._base + self._tok * (b + chunk) + self._kv * context
        t1 = t0 + duration
        self._mark_busy(t0, t1)
        stats = self.stats
        if b:
            stats.itl.observe(duration, b)
            stats.generation_tokens += b
        self._t = t1
        self._counter += 1
        if b and self._decoding[0][0] <= self._counter:
            self._retire()
        for _ in range(done):
            seq = prefilling.popleft()
            self._prefill_held -= seq.prompt
            stats.prompt_tokens += seq.prompt
            stats.generation_tokens += 1
            seq.first_token_s = t1
            stats.ttft.observe(t1 - seq.arrival)
            if seq.output <= 1:
                self._reserved -= seq.need
                self._finish(seq, t1)
            else:
                start = self._counter
                seq.start = start
                heapq.heappush(self._decoding, (start + seq.output - 1, seq.rid, seq))
                self._b += 1
                self._sum_prompt += seq.prompt
                self._sum_start += start

    def _retire(self) -> None:
        heap = self._decoding
        counter = self._counter
        t = self._t
        while heap and heap[0][0] <= counter:
            seq = heapq.heappop(heap)[2]
            self._b -= 1
            self._sum_prompt -= seq.prompt
            self._sum_start -= seq.start
            self._reserved -= seq.need
            self._finish(seq, t)

    def _finish(self, seq: _Seq, t: float) -> None:
        if self._pinned:
            self._pinned.pop(seq.rid, None)
        stats = self.stats
        e2e = t - seq.arrival
        stats.success += 1
        if seq.job.truncated:
            stats.truncated += 1
        stats.e2e.observe(e2e)
        self._sink(
            seq.job.record(
                completed=True,
                finish_s=t,
                pod=self.pod,
                ttft_s=seq.first_token_s - seq.arrival,
                mean_itl_s=(t - seq.first_token_s) / (seq.output - 1) if seq.output > 1 else None,
                e2e_s=e2e,
                queue_s=seq.admitted_s - seq.arrival,
            )
        )


def replay(
    profile: GpuProfile,
    requests: Iterable[Request],
    *,
    ready_at_s: float = 0.0,
    pod: str = "replica-0",
) -> list[RequestRecord]:
    """Serve ``requests`` (sorted by arrival) on a single replica until all finish."""
    replica = Replica(profile, pod=pod, ready_at_s=ready_at_s)
    for i, request in enumerate(requests):
        replica.submit(Job.from_request(i, request), request.arrival_s)
    replica.run_until_idle()
    return replica.completed()
