"""The capacity of one simulated replica at an SLO, as the replica model itself knows it.

A load test's stress mode measures from the outside how many requests per second one
replica sustains while ``quantile`` of its requests meet the SLOs (see
:mod:`apps.golive.loadtest`). The simulator can answer the same question from the inside,
by offline replay of the very model its HTTP replicas run (:func:`apps.fleetsim.replica.replay`),
which is what :func:`capacity_at_slo` does; the two agreeing is the evidence that the load
test measures what it claims.

One *step* is the load test's: Poisson arrivals at ``rate`` requests/s for ``step_s``
seconds on an idle replica, prompt and output lengths drawn from a named mix
(:func:`apps.fleetsim.workload.preset_lengths`), every request served to the end. The step
meets the SLO when, over its requests,

* the ``quantile`` of the time to first token is at most ``slo_ttft_s``,
* the ``quantile`` of the per-request inter-token latency (the request's mean gap between
  output tokens: ``(e2e - ttft) / (output - 1)``, the "time per output token") is at most
  ``slo_itl_s``,
* the share of failed requests (a prompt and output the replica cannot hold is answered
  400) is at most ``max_error_rate``.

The capacity is the highest rate whose step meets the SLO, found by bisection (a longer
queue only ever makes the quantiles worse, so the test is monotone in the rate up to the
noise of one Poisson draw), and reported as the median over a few seeds so that it does not
hinge on one draw. Quantiles interpolate linearly between order statistics, as the load
test computes them.

To measure a replica from the outside, :func:`served_replicas` serves replicas of a profile
over HTTP (:class:`apps.fleetsim.replica_http.ReplicaHTTPServer`) in a child process, so
that the client measuring them shares no interpreter (and no GIL) with them.

This differs from :func:`bench.autoscale.oracle.measure_capacity` on purpose: that one sizes
a pool of replicas for a whole trace by TTFT alone; this one answers the load test's
question (one replica, one step, TTFT and ITL and errors).
"""

from __future__ import annotations

import math
import multiprocessing
import random
import statistics
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection

from apps.fleetsim.profiles import GpuProfile, get_profile
from apps.fleetsim.replica import RequestRecord, replay
from apps.fleetsim.workload import Request, TokenLengths, preset_lengths

__all__ = [
    "StepOutcome",
    "capacity_at_slo",
    "interpolated_quantile",
    "served_replicas",
    "step_outcome",
    "step_requests",
]

_CHILD_START_TIMEOUT_S = 60.0


def interpolated_quantile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile of ``values``, linear between order statistics (None if empty)."""
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """What one step did on the replica model (latencies in simulated seconds)."""

    rate_rps: float
    requests: int
    errors: int
    ttft_q_s: float | None
    itl_q_s: float | None

    def meets(self, slo_ttft_s: float, slo_itl_s: float, max_error_rate: float) -> bool:
        if self.requests == 0:
            return True
        return (
            self.errors <= max_error_rate * self.requests
            and (self.ttft_q_s is None or self.ttft_q_s <= slo_ttft_s)
            and (self.itl_q_s is None or self.itl_q_s <= slo_itl_s)
        )


def step_requests(
    rate_rps: float,
    step_s: float,
    lengths: TokenLengths,
    *,
    seed: int,
    max_prompt_tokens: int | None = None,
) -> list[Request]:
    """Poisson arrivals at ``rate_rps`` over ``[0, step_s)`` with lengths from ``lengths``."""
    arrivals = random.Random(f"capacity-arrivals:{seed}")
    sizes = random.Random(f"capacity-lengths:{seed}")
    out: list[Request] = []
    t = arrivals.expovariate(rate_rps)
    while t < step_s:
        prompt, output = lengths.sample(sizes)
        if max_prompt_tokens is not None:
            prompt = min(prompt, max_prompt_tokens)
        out.append(Request(t, prompt, output))
        t += arrivals.expovariate(rate_rps)
    return out


def step_outcome(
    profile: GpuProfile, requests: Sequence[Request], rate_rps: float, q: float
) -> StepOutcome:
    """Serve ``requests`` on one idle replica until every one has finished."""
    records: list[RequestRecord] = replay(profile, requests)
    done = [r for r in records if r.completed]
    ttfts = [r.ttft_s for r in done if r.ttft_s is not None]
    itls = [r.mean_itl_s for r in done if r.mean_itl_s is not None]
    return StepOutcome(
        rate_rps,
        len(records),
        len(records) - len(done),
        interpolated_quantile(ttfts, q),
        interpolated_quantile(itls, q),
    )


def capacity_at_slo(
    profile: GpuProfile | str,
    workload_preset: str,
    slo_ttft_s: float,
    slo_itl_s: float,
    quantile: float = 0.95,
    *,
    max_error_rate: float = 0.01,
    step_s: float = 120.0,
    seeds: Sequence[int] = (0, 1, 2),
    iterations: int = 14,
    max_prompt_tokens: int | None = None,
) -> float:
    """Requests/s one replica of ``profile`` sustains at the SLO (see the module doc).

    ``step_s`` is the length of the load test's step in simulated seconds (a short step
    lets a queue that would grow without bound still look fine at its end, so compare
    like with like). Returns 0.0 when not even a trickle of requests meets the SLO.
    """
    if not 0.0 < quantile < 1.0:
        raise ValueError("quantile must be between 0 and 1")
    if slo_ttft_s <= 0 or slo_itl_s <= 0 or step_s <= 0 or not seeds:
        raise ValueError("the SLOs and step_s must be positive, and seeds not empty")
    gpu = get_profile(profile) if isinstance(profile, str) else profile
    lengths = preset_lengths(workload_preset, gpu.max_model_len)
    # Above the prefill-bound rate (every token at compute speed) the queue only grows.
    mean_tokens = lengths.prompt_mean + lengths.output_mean
    ceiling = 2.0 / (gpu.token_compute_s * mean_tokens)

    def meets(rate: float, seed: int) -> bool:
        requests = step_requests(
            rate, step_s, lengths, seed=seed, max_prompt_tokens=max_prompt_tokens
        )
        outcome = step_outcome(gpu, requests, rate, quantile)
        return outcome.meets(slo_ttft_s, slo_itl_s, max_error_rate)

    found = []
    for seed in seeds:
        lo, hi = 0.0, ceiling
        for _ in range(iterations):
            mid = (lo + hi) / 2
            if meets(mid, seed):
                lo = mid
            else:
                hi = mid
        found.append(lo)
    return float(statistics.median(found))


def _serve_child(
    profile: str,
    replicas: int,
    model: str,
    speed: float,
    tick_s: float,
    niceness: int,
    pipe: Connection,
) -> None:
    import os

    from apps.fleetsim.fleet import Fleet, SimulatedDeployment

    if niceness:
        os.nice(niceness)
    from apps.fleetsim.replica_http import ReplicaHTTPServer

    fleet = Fleet([SimulatedDeployment("capacity", model, "loadtest", profile, replicas, ())])
    server = ReplicaHTTPServer(fleet, tick_s=tick_s)
    server.start()
    fleet.run_realtime(speed=speed)
    try:
        pipe.send([f"http://{e['host']}:{e['port']}" for e in server.endpoints()])
        pipe.recv()  # until told to stop (or the parent goes away)
    except EOFError:
        pass
    finally:
        fleet.stop()
        server.stop()


@contextmanager
def served_replicas(
    profile: str,
    *,
    replicas: int = 1,
    model: str = "capacity-model",
    speed: float = 1.0,
    tick_s: float = 0.002,
    niceness: int = 0,
) -> Iterator[list[str]]:
    """``replicas`` idle replicas of ``profile`` serving ``model`` over HTTP on loopback
    ports, in a child process, the fleet in real time at ``speed`` simulated seconds per
    wall second; yields their base URLs and stops the child afterwards. A positive
    ``niceness`` lowers the child's CPU priority (a benchmark of the client gives the
    client the first claim on the cores, as a remote server would)."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(
        target=_serve_child,
        args=(profile, replicas, model, speed, tick_s, niceness, child),
        name="fleetsim-capacity-replicas",
        daemon=True,
    )
    process.start()
    try:
        if not parent.poll(_CHILD_START_TIMEOUT_S):
            raise RuntimeError("the replica server process did not start in time")
        urls: list[str] = parent.recv()
        yield urls
    finally:
        try:
            parent.send("stop")
        except (BrokenPipeError, OSError):
            pass
        process.join(10.0)
        if process.is_alive():
            process.terminate()
            process.join(5.0)
