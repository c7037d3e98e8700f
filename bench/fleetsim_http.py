"""Drive the simulated replicas' OpenAI-compatible endpoints with real HTTP and time it.

Usage::

    .venv/bin/python bench/fleetsim_http.py [--replicas 2] [--concurrency 64]
        [--duration 5] [--speed 100] [--max-tokens 16,64]

A child process runs a fleet of ``--replicas`` A100 replicas in fast mode (``--speed``
simulated seconds per wall second) with their HTTP endpoints
(:mod:`apps.fleetsim.replica_http`); this process keeps ``--concurrency`` requests in
flight, spread round robin over the replicas, for ``--duration`` wall seconds per case:
non-streamed completions, then streamed ones. Printed per case: requests per second,
wall-clock latency percentiles (time to the whole answer, and for streams to the first
event), tokens delivered per second, failed requests, and the replicas' mean TTFT in
simulated seconds from their /metrics. The server and the client share no interpreter,
so the figures are the server's, on whatever else the machine is doing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

MODEL = "bench-llama-8b"


def _serve(replicas: int, speed: float, pipe: Connection) -> None:
    from apps.fleetsim.fleet import Fleet, SimulatedDeployment
    from apps.fleetsim.replica_http import ReplicaHTTPServer

    fleet = Fleet([SimulatedDeployment("bench", MODEL, "bench", "A100-80GB", replicas, ())])
    server = ReplicaHTTPServer(fleet)
    server.start()
    fleet.run_realtime(speed=speed)
    pipe.send([e["port"] for e in server.endpoints()])
    pipe.recv()  # until told to stop
    fleet.stop()
    server.stop()


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _one(
    session: aiohttp.ClientSession, url: str, max_tokens: int, stream: bool
) -> tuple[float, float, int]:
    """(seconds to the first event or the answer, seconds in all, tokens received)."""
    body = {"model": MODEL, "prompt": "benchmark " * 50, "max_tokens": max_tokens}
    if stream:
        body["stream"] = True
    start = time.perf_counter()
    async with session.post(url, json=body) as response:
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")
        if not stream:
            payload = await response.json()
            done = time.perf_counter() - start
            return done, done, payload["usage"]["completion_tokens"]
        first = 0.0
        tokens = 0
        async for line in response.content:
            if not line.startswith(b"data: "):
                continue
            if not first:
                first = time.perf_counter() - start
            if line.strip() == b"data: [DONE]":
                break
            tokens += 1
        return first, time.perf_counter() - start, tokens


async def _case(
    ports: list[int], concurrency: int, duration: float, max_tokens: int, stream: bool
) -> dict[str, Any]:
    urls = [f"http://127.0.0.1:{port}/v1/completions" for port in ports]
    firsts: list[float] = []
    totals: list[float] = []
    tokens = 0
    failures = 0
    deadline = time.perf_counter() + duration
    counter = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal tokens, failures, counter
            while time.perf_counter() < deadline:
                url = urls[counter % len(urls)]
                counter += 1
                try:
                    first, total, got = await _one(session, url, max_tokens, stream)
                except (aiohttp.ClientError, RuntimeError):
                    failures += 1
                    continue
                firsts.append(first)
                totals.append(total)
                tokens += got

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        ttft_sum = ttft_count = 0.0
        for port in ports:
            async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                text = await response.text()
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name == "vllm:time_to_first_token_seconds_sum":
                        ttft_sum += sample.value
                    elif sample.name == "vllm:time_to_first_token_seconds_count":
                        ttft_count += sample.value
    return {
        "requests": len(totals),
        "req_per_s": len(totals) / elapsed,
        "first_p50_ms": 1000 * _percentile(firsts, 0.5),
        "first_p99_ms": 1000 * _percentile(firsts, 0.99),
        "total_p50_ms": 1000 * _percentile(totals, 0.5),
        "total_p99_ms": 1000 * _percentile(totals, 0.99),
        "tokens_per_s": tokens / elapsed,
        "failed": failures,
        "sim_ttft_mean_s_cumulative": ttft_sum / ttft_count if ttft_count else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--speed", type=float, default=100.0)
    parser.add_argument("--max-tokens", default="16,64", help="non-streamed,streamed")
    args = parser.parse_args()
    plain_tokens, stream_tokens = (int(x) for x in args.max_tokens.split(","))

    ours, theirs = multiprocessing.Pipe()
    child = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(args.replicas, args.speed, theirs), daemon=True
    )
    child.start()
    ports = ours.recv()
    print(
        f"replicas={args.replicas} concurrency={args.concurrency} speed={args.speed:g} "
        f"duration={args.duration:g}s per case"
    )
    try:
        for label, stream, max_tokens in (
            ("completions", False, plain_tokens),
            ("streamed", True, stream_tokens),
        ):
            result = asyncio.run(_case(ports, args.concurrency, args.duration, max_tokens, stream))
            print(f"{label} (max_tokens={max_tokens}): {json.dumps(result)}")
    finally:
        ours.send("stop")
        child.join(30)


if __name__ == "__main__":
    main()
