"""Log lines of the simulated replicas, in vLLM's own words, and their shipping to a
Loki-compatible push endpoint (the control plane's ``/loki/api/v1/push``).

:class:`FleetLogs` turns successive fleet snapshots into lines, as each replica's vLLM
server would print them: the server starting and loading weights when a replica appears,
startup complete when it turns ready, a throughput line every ``interval_s`` (from the
replica's token counters), KV-cache preemption warnings when the cache is nearly full,
errors for failed requests (and now and then a CUDA out-of-memory error on a full cache),
and aborted requests when a replica is removed with requests still running on it.

:class:`LokiShipper` batches lines as Loki push JSON (gzip), authenticated with a bearer
token, and retries with backoff on 429, 5xx and connection errors; lines it cannot ship
after its retries are dropped with a warning, never retried forever.
"""

from __future__ import annotations

import gzip
import json
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import requests
import structlog
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from .fleet import FleetSnapshot

logger = structlog.get_logger("controlplane.fleetsim")

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class LogLine:
    labels: Labels  # namespace, deployment, pod, container, level
    timestamp_ns: int
    line: str


@dataclass
class _Pod:
    ready: bool
    prompt_tokens: int
    generation_tokens: int
    failures: dict[str, int]
    running: int
    last_report_s: float


def _stamp(level: str, source: str, text: str, wall_ns: int) -> str:
    """vLLM's log prefix: ``INFO 11-29 14:03:07 [metrics.py:455] ...``."""
    clock = time.strftime("%m-%d %H:%M:%S", time.gmtime(wall_ns / 1e9))
    return f"{level} {clock} [{source}] {text}"


@dataclass
class FleetLogs:
    """Lines from the difference between a snapshot and the one before it."""

    interval_s: float = 10.0
    seed: int = 0
    oom_chance: float = 0.02  # per replica observation with a full KV cache
    _pods: dict[tuple[str, str], _Pod] = field(default_factory=dict)
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def observe(self, fleet: FleetSnapshot, wall_ns: int) -> list[LogLine]:
        out: list[LogLine] = []
        seen: set[tuple[str, str]] = set()
        for dep in fleet.deployments:
            for replica in dep.replicas:
                key = (dep.namespace, replica.pod)
                seen.add(key)
                labels = {"deployment": dep.name, "namespace": dep.namespace, "pod": replica.pod}
                lines = self._replica_lines(key, dep, replica, fleet.time_s)
                out += self._stamped(labels, lines, wall_ns, len(out))
        for key in [k for k in self._pods if k not in seen]:
            pod = self._pods.pop(key)
            namespace, name = key
            labels = {"namespace": namespace, "pod": name}
            for dep in fleet.deployments:
                if dep.namespace == namespace and name.startswith(dep.name):
                    labels["deployment"] = dep.name
            # Requests still running when the replica went away are aborted.
            lines = [
                ("INFO", "async_llm_engine.py:186", f"Aborted request cmpl-{self._id()}.")
                for _ in range(pod.running)
            ]
            lines.append(("INFO", "launcher.py:29", "Shutting down FastAPI HTTP server."))
            out += self._stamped(labels, lines, wall_ns, len(out))
        return out

    def _id(self) -> str:
        return f"{self._rng.getrandbits(64):016x}"

    def _stamped(
        self, labels: dict[str, str], lines: list[tuple[str, str, str]], wall_ns: int, n: int
    ) -> list[LogLine]:
        """The lines as entries of their level's stream, a nanosecond apart (in order)."""
        return [
            LogLine(
                tuple(sorted({**labels, "container": "vllm", "level": level.lower()}.items())),
                wall_ns + n + i,
                _stamp(level, source, text, wall_ns),
            )
            for i, (level, source, text) in enumerate(lines)
        ]

    def _replica_lines(
        self, key: tuple[str, str], dep: Any, replica: Any, now_s: float
    ) -> list[tuple[str, str, str]]:
        lines: list[tuple[str, str, str]] = []
        stats = replica.stats
        failures = dict(stats.failures)
        pod = self._pods.get(key)
        if pod is None:
            lines.append(
                (
                    "INFO",
                    "api_server.py:1043",
                    f"vLLM API server for model {dep.model_name} on {replica.product_name}",
                )
            )
            lines.append(
                ("INFO", "model_runner.py:1110", f"Starting to load model {dep.model_name}...")
            )
            pod = _Pod(
                False,
                stats.prompt_tokens,
                stats.generation_tokens,
                failures,
                replica.num_running,
                now_s,
            )
            self._pods[key] = pod
        if replica.ready and not pod.ready:
            weights = f"{replica.fb_used_mib / 1024:.4f} GB"
            lines.append(("INFO", "model_runner.py:1115", f"Loading model weights took {weights}"))
            lines.append(("INFO", "launcher.py:19", "Application startup complete."))
            pod.ready = True
        for reason, count in failures.items():
            for _ in range(count - pod.failures.get(reason, 0)):
                lines.append(
                    ("ERROR", "engine.py:135", f"Request cmpl-{self._id()} failed: {reason}")
                )
        if replica.ready and replica.kv_cache_usage >= 0.95:
            lines.append(
                (
                    "WARNING",
                    "scheduler.py:1560",
                    f"Sequence group {self._rng.randrange(10**6)} is preempted by "
                    "PreemptionMode.RECOMPUTE mode because there is not enough KV cache space.",
                )
            )
            if self._rng.random() < self.oom_chance:
                size = self._rng.randrange(2, 16) * 128
                lines.append(
                    (
                        "ERROR",
                        "engine.py:140",
                        f"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate "
                        f"{size} MiB. GPU 0 has {replica.fb_free_mib} MiB free.",
                    )
                )
        elapsed = now_s - pod.last_report_s
        if replica.ready and elapsed >= self.interval_s:
            prompt = (stats.prompt_tokens - pod.prompt_tokens) / elapsed
            generation = (stats.generation_tokens - pod.generation_tokens) / elapsed
            lines.append(
                (
                    "INFO",
                    "metrics.py:455",
                    f"Avg prompt throughput: {prompt:.1f} tokens/s, Avg generation "
                    f"throughput: {generation:.1f} tokens/s, Running: "
                    f"{replica.num_running} reqs, Swapped: 0 reqs, Pending: "
                    f"{replica.num_waiting} reqs, GPU KV cache usage: "
                    f"{replica.kv_cache_usage * 100:.1f}%, CPU KV cache usage: 0.0%.",
                )
            )
            pod.prompt_tokens, pod.generation_tokens = stats.prompt_tokens, stats.generation_tokens
            pod.last_report_s = now_s
        pod.failures = failures
        pod.running = replica.num_running
        return lines


class ShipError(Exception):
    """A push that may succeed if tried again (429, 5xx, connection failure)."""


def loki_push_body(lines: Iterable[LogLine]) -> bytes:
    """Loki's push JSON for the lines, grouped by label set, gzip-compressed."""
    streams: dict[Labels, list[list[str]]] = defaultdict(list)
    for line in lines:
        streams[line.labels].append([str(line.timestamp_ns), line.line])
    body = {"streams": [{"stream": dict(k), "values": v} for k, v in streams.items()]}
    return gzip.compress(json.dumps(body).encode())


@dataclass
class LokiShipper:
    """Ships lines to ``url`` (``.../loki/api/v1/push``) with ``token``."""

    url: str
    token: str
    attempts: int = 5
    timeout_s: float = 5.0
    session: requests.Session = field(default_factory=requests.Session)

    def ship(self, lines: list[LogLine], *, sleep: Callable[[float], None] = time.sleep) -> bool:
        """True when the lines were stored (2xx); False when they were given up on."""
        if not lines:
            return True
        body = loki_push_body(lines)
        try:
            for attempt in Retrying(
                stop=stop_after_attempt(self.attempts),
                wait=wait_exponential(multiplier=0.5, max=10),
                retry=retry_if_exception_type(ShipError),
                sleep=sleep,
            ):
                with attempt:
                    self._post(body)
        except RetryError as exc:
            logger.warning(
                "fleetsim-logs-dropped", lines=len(lines), error=str(exc.last_attempt.exception())
            )
            return False
        except requests.HTTPError as exc:
            logger.warning("fleetsim-logs-refused", lines=len(lines), error=str(exc))
            return False
        return True

    def _post(self, body: bytes) -> None:
        try:
            response = self.session.post(
                self.url,
                data=body,
                timeout=self.timeout_s,
                headers={
                    "Content-Type": "application/json",
                    "Content-Encoding": "gzip",
                    "Authorization": f"Bearer {self.token}",
                },
            )
        except requests.RequestException as exc:
            raise ShipError(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise ShipError(f"HTTP {response.status_code}: {response.text[:200]}")
        response.raise_for_status()


class LogPump:
    """A thread that observes the fleet every ``interval_s`` and ships what it saw."""

    def __init__(
        self,
        snapshot: Callable[[], FleetSnapshot],
        shipper: LokiShipper,
        *,
        interval_s: float = 5.0,
        logs: FleetLogs | None = None,
    ) -> None:
        self.snapshot = snapshot
        self.shipper = shipper
        self.interval_s = interval_s
        self.logs = logs or FleetLogs()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fleetsim-logs", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def pump_once(self) -> int:
        lines = self.logs.observe(self.snapshot(), time.time_ns())
        self.shipper.ship(lines)
        return len(lines)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.pump_once()
            except Exception:
                logger.exception("fleetsim-logs-failed")
