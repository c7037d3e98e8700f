"""Fleet simulator: deployments of LLM serving replicas over simulated time.

A :class:`SimulatedDeployment` plays the part of a Kubernetes Deployment of vLLM pods
behind a load-balancing gateway:

* **Routing.** Each arriving request goes to the *ready* replica with the fewest
  outstanding requests (running + waiting in that engine), ties broken by the replica
  that received a request least recently. When no replica is ready the request waits
  in a gateway queue (counted as waiting) and is dispatched the moment one is.
* **Gateway flow control** (``flow_control=True``). Requests wait at the gateway, in
  arrival order, until a ready replica has room (:meth:`Replica.has_room`: it would admit
  the request into its batch now); among those with room the least loaded gets it. A
  replica that turns ready takes over the backlog at once, as behind production LLM
  routers with flow control; without it a request is bound to a replica on arrival, so
  replicas added later never take over an existing backlog. Room appears when a replica
  turns ready (served at once) or a sequence finishes: the gateway is re-checked every
  ``flow_control_tick_s`` (0.1 s) while it holds requests. Requests too long for any
  replica go straight to one, which rejects them. :attr:`gateway_queue_length` is the
  queue (also in snapshots and in the ``llmcp_sim_gateway_queue_requests`` metric).
* **Scaling.** :meth:`SimulatedDeployment.scale` adds replicas that only serve after the
  GPU profile's cold start, and removes the replicas the call names (``remove``) first,
  then starting replicas (newest first), then the least-loaded ready ones. The requests
  held by a removed replica are re-queued through the router, never dropped; their
  latencies keep counting from the original arrival. That is what vLLM does by default on
  SIGTERM (in-flight requests are aborted and the gateway retries them). With a positive
  ``drain_s`` a removed ready replica drains instead, like vLLM's ``--shutdown-timeout``: it gets
  no new requests, finishes those it holds and leaves when idle; whatever it still holds
  after ``drain_s`` is re-queued. Draining replicas still hold their GPU
  (:attr:`SimulatedDeployment.draining_replicas`) but are no longer part of the spec.
* **Standby replicas.** :meth:`SimulatedDeployment.set_standby` keeps ``K`` replicas
  loaded and asleep beside the spec (vLLM sleep mode, see :mod:`apps.fleetsim.replica`):
  they hold ``standby_gpu_fraction`` of a GPU, serve nothing and are no members. A
  scale-up wakes the standbys first (ready ``wake_s`` later, those already loaded
  first) and cold-starts only the rest; the standby pool is then refilled by cold starts.
  A scale-down puts a removed ready replica to sleep in place of a standby still
  cold-starting (or while the pool is short) instead of deleting it.
  :meth:`SimulatedDeployment.sleep` and :meth:`SimulatedDeployment.wake` do the same for
  one named replica (the per-replica ``POST /sleep`` and ``POST /wake_up``).
* **Fault and load injection.** ``set_rate_multiplier`` scales the arrival rate of
  the workload (thinning or duplicating arrivals), ``inject_latency`` delays every new
  request before it reaches an engine (a slow frontend: the delay shows up in TTFT and
  E2E but not in inter-token latency), ``inject_error_ratio`` makes a fraction of
  dispatches fail immediately.

Metrics. Every replica keeps cumulative Prometheus-style counters and histograms (see
:class:`apps.fleetsim.replica.ReplicaStats`) with vLLM's own bucket boundaries. When a
replica is removed its series disappear, as a deleted pod's do, while deployment-wide
totals (:meth:`SimulatedDeployment.totals`) and per-request records
(:meth:`SimulatedDeployment.completed`) keep everything for SLO figures.

vLLM has no failure counter: production setups compute error ratios from the
gateway's HTTP status metrics. The simulator counts failed requests per pod itself as
``llmcp_sim_request_failure_total`` (reasons: ``injected`` for injected errors,
``rejected`` for requests longer than the model's context), a name that is obviously
the simulator's own rather than an imitation of a real exporter.

A :class:`Fleet` groups deployments, advances them together (:meth:`Fleet.step_to`
for tests and benchmarks) or follows the wall clock in a background thread
(:meth:`Fleet.run_realtime`). All public methods of a fleet take its re-entrant lock;
code that touches deployments directly while the real-time driver runs must hold
``fleet.lock`` too.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from apps.fleetsim.profiles import DEFAULT_PROFILE, GpuProfile, get_profile
from apps.fleetsim.replica import Job, Replica, ReplicaSnapshot, ReplicaStats, RequestRecord
from apps.fleetsim.workload import Request

__all__ = [
    "DeploymentSnapshot",
    "DeploymentTotals",
    "Fleet",
    "FleetSnapshot",
    "SimulatedDeployment",
]


@dataclass(frozen=True, slots=True)
class DeploymentTotals:
    """Cumulative outcome counts over the deployment's lifetime, removed pods included."""

    completed: int
    failed: int
    failures_by_reason: dict[str, int]
    prompt_tokens: int
    generation_tokens: int
    requeued: int
    stats: ReplicaStats

    @property
    def error_ratio(self) -> float:
        total = self.completed + self.failed
        return self.failed / total if total else 0.0


@dataclass(frozen=True, slots=True)
class DeploymentSnapshot:
    """Instant state of a deployment and of each of its replicas."""

    name: str
    namespace: str
    model_name: str
    gpu_profile: str
    time_s: float
    spec_replicas: int
    ready_replicas: int
    starting_replicas: int
    num_running: int
    num_waiting: int
    gateway_queue: int
    completed: int
    failed: int
    rate_multiplier: float
    extra_latency_s: float
    error_ratio: float
    replicas: tuple[ReplicaSnapshot, ...] = field(default_factory=tuple)
    standby_replicas: int = 0
    standby_target: int = 0

    def scale_status(self) -> dict[str, int]:
        return {
            "spec_replicas": self.spec_replicas,
            "ready_replicas": self.ready_replicas,
            "starting_replicas": self.starting_replicas,
        }

    def as_dict(self) -> dict[str, object]:
        """JSON-friendly summary (no per-request data, no histograms)."""
        return {
            "name": self.name,
            "namespace": self.namespace,
            "model_name": self.model_name,
            "gpu_profile": self.gpu_profile,
            "time_s": self.time_s,
            **self.scale_status(),
            "standby_replicas": self.standby_replicas,
            "standby_target": self.standby_target,
            "num_running": self.num_running,
            "num_waiting": self.num_waiting,
            "gateway_queue": self.gateway_queue,
            "completed": self.completed,
            "failed": self.failed,
            "rate_multiplier": self.rate_multiplier,
            "extra_latency_s": self.extra_latency_s,
            "error_ratio": self.error_ratio,
            "replicas": [
                {
                    "pod": r.pod,
                    "state": r.state,
                    "num_running": r.num_running,
                    "num_waiting": r.num_waiting,
                    "kv_cache_usage": r.kv_cache_usage,
                    "gpu_utilization": r.gpu_utilization,
                }
                for r in self.replicas
            ],
        }


@dataclass(frozen=True, slots=True)
class FleetSnapshot:
    time_s: float
    deployments: tuple[DeploymentSnapshot, ...]


class SimulatedDeployment:
    """A Deployment of identical vLLM replicas behind a least-load router.

    ``workload`` is any iterable of :class:`~apps.fleetsim.workload.Request` sorted by
    arrival; it is consumed lazily, so an endless generator is fine. Arrival times are
    relative to ``workload_offset_s`` on the simulation clock (default:
    ``start_time_s``). Requests arriving out of order are served when reached.

    ``initial_ready`` makes the initial replicas ready at ``start_time_s`` (a
    deployment already running when the simulation starts); otherwise they cold-start.
    ``max_records`` bounds the per-request history kept for :meth:`completed` (oldest
    dropped first), for long real-time runs.
    """

    def __init__(
        self,
        name: str,
        model_name: str,
        namespace: str = "default",
        gpu_profile: GpuProfile | str = DEFAULT_PROFILE,
        replicas: int = 1,
        workload: Iterable[Request] = (),
        *,
        start_time_s: float = 0.0,
        workload_offset_s: float | None = None,
        initial_ready: bool = True,
        seed: int = 0,
        util_window_s: float = 1.0,
        max_records: int | None = None,
        copy_spread_s: float = 1.0,
        flow_control: bool = False,
        flow_control_tick_s: float = 0.1,
    ) -> None:
        _check_count("replicas", replicas)
        if copy_spread_s < 0:
            raise ValueError("copy_spread_s must be non-negative")
        if not flow_control_tick_s > 0:
            raise ValueError("flow_control_tick_s must be positive")
        self.flow_control = flow_control
        self.flow_control_tick_s = flow_control_tick_s
        self.name = name
        self.model_name = model_name
        self.namespace = namespace
        self.profile = get_profile(gpu_profile) if isinstance(gpu_profile, str) else gpu_profile
        self.util_window_s = util_window_s
        self.copy_spread_s = copy_spread_s
        self._now = start_time_s
        self._offset = start_time_s if workload_offset_s is None else workload_offset_s
        self._source: Iterator[Request] = iter(workload)
        self._lookahead: Request | None = next(self._source, None)
        self._rng = random.Random(f"deployment:{namespace}/{name}:{seed}")
        self._next_request_id = 0
        self._pending_seq = 0
        # Requests delayed before dispatch (injected latency, spread duplicates).
        self._pending: list[tuple[float, int, Job]] = []
        # Requests that arrived while no replica was ready.
        self._gateway: deque[Job] = deque()
        self._starting: list[Replica] = []
        # Removed replicas finishing their requests: (deadline, sequence, replica).
        self._draining: list[tuple[float, int, Replica]] = []
        self._drain_seq = 0
        self._ready: list[Replica] = []
        # Standby replicas (asleep, or loading before they fall asleep), oldest first.
        self._asleep: list[Replica] = []
        self._standby_target = 0
        # Every replica holding a GPU (starting, ready, draining or asleep) by pod name.
        self._by_pod: dict[str, Replica] = {}
        self._last_pick: dict[str, int] = {}
        self._pick_seq = 0
        self._next_ordinal = 0
        self._records: deque[RequestRecord] | list[RequestRecord] = (
            deque(maxlen=max_records) if max_records is not None else []
        )
        self._retired_stats = ReplicaStats()
        self._requeued = 0
        # Pinned requests (see submit_pinned) by id, with their record once they end.
        self._pinned: dict[int, RequestRecord | None] = {}
        self._rate_multiplier = 1.0
        self._extra_latency_s = 0.0
        self._error_ratio = 0.0
        for _ in range(replicas):
            ready_at = start_time_s if initial_ready else start_time_s + self.profile.cold_start_s
            self._add_replica(ready_at, created_at=start_time_s)

    # ------------------------------------------------------------------ inspection

    @property
    def now(self) -> float:
        return self._now

    @property
    def spec_replicas(self) -> int:
        return len(self._starting) + len(self._ready)

    @property
    def ready_replicas(self) -> int:
        return len(self._ready)

    @property
    def starting_replicas(self) -> int:
        return len(self._starting)

    @property
    def gateway_queue_length(self) -> int:
        """Requests accepted and not yet sent to a replica: the gateway queue and requests
        delayed before dispatch (injected latency, spread duplicates)."""
        return len(self._gateway) + len(self._pending)

    @property
    def draining_replicas(self) -> int:
        """Removed replicas still finishing their requests (see :meth:`scale`)."""
        return len(self._draining)

    @property
    def standby_replicas(self) -> int:
        """Standby replicas, asleep or still loading (see :meth:`set_standby`)."""
        return len(self._asleep)

    @property
    def standby_target(self) -> int:
        return self._standby_target

    @property
    def replicas(self) -> list[Replica]:
        """Live replicas, ready ones first, each group in creation order."""
        return [*self._ready, *self._starting]

    def replica_states(self) -> dict[str, str]:
        """Every replica holding a GPU by pod name: ``starting`` (a replica waking up
        included), ``ready``, ``draining`` or ``asleep`` (a standby, not in the spec)."""
        states = {r.pod: "ready" for r in self._ready}
        states.update((r.pod, "starting") for r in self._starting)
        states.update((d[2].pod, "draining") for d in self._draining)
        states.update((r.pod, "asleep") for r in self._asleep)
        return states

    def find_replica(self, pod: str) -> Replica | None:
        """The replica ``pod`` if it is ready, starting, draining or asleep."""
        return self._by_pod.get(pod)

    @property
    def rate_multiplier(self) -> float:
        return self._rate_multiplier

    @property
    def extra_latency_s(self) -> float:
        return self._extra_latency_s

    @property
    def error_ratio(self) -> float:
        return self._error_ratio

    def scale_status(self) -> dict[str, int]:
        return {
            "spec_replicas": self.spec_replicas,
            "ready_replicas": self.ready_replicas,
            "starting_replicas": self.starting_replicas,
        }

    def completed(self) -> list[RequestRecord]:
        """Records of finished and failed requests, in order of finishing per replica."""
        return list(self._records)

    def totals(self) -> DeploymentTotals:
        stats = self._retired_stats.copy()
        for replica in (
            *self._ready,
            *self._starting,
            *(d[2] for d in self._draining),
            *self._asleep,
        ):
            stats.merge(replica.stats)
        return DeploymentTotals(
            completed=stats.success,
            failed=stats.failure_total,
            failures_by_reason=dict(stats.failures),
            prompt_tokens=stats.prompt_tokens,
            generation_tokens=stats.generation_tokens,
            requeued=self._requeued,
            stats=stats,
        )

    def outstanding(self) -> int:
        """Requests accepted by the deployment and not finished, as of the last advance."""
        in_engines = (
            sum(r.outstanding for r in self._ready)
            + sum(r.outstanding for r in self._starting)
            + sum(d[2].outstanding for d in self._draining)
        )
        return in_engines + len(self._gateway) + len(self._pending)

    def is_idle(self) -> bool:
        """True once the workload is exhausted and every accepted request finished."""
        return self._lookahead is None and self.outstanding() == 0

    def snapshot(self) -> DeploymentSnapshot:
        now = self._now
        replicas = tuple(r.snapshot(now) for r in (*self._ready, *self._starting, *self._asleep))
        draining = [d[2] for d in self._draining]
        stats_success = (
            self._retired_stats.success
            + sum(r.stats.success for r in replicas)
            + sum(r.stats.success for r in draining)
        )
        stats_failed = (
            self._retired_stats.failure_total
            + sum(r.stats.failure_total for r in replicas)
            + sum(r.stats.failure_total for r in draining)
        )
        gateway = len(self._gateway) + len(self._pending)
        return DeploymentSnapshot(
            name=self.name,
            namespace=self.namespace,
            model_name=self.model_name,
            gpu_profile=self.profile.name,
            time_s=now,
            spec_replicas=self.spec_replicas,
            ready_replicas=self.ready_replicas,
            starting_replicas=self.starting_replicas,
            num_running=sum(r.num_running for r in replicas),
            num_waiting=sum(r.num_waiting for r in replicas) + gateway,
            gateway_queue=gateway,
            completed=stats_success,
            failed=stats_failed,
            rate_multiplier=self._rate_multiplier,
            extra_latency_s=self._extra_latency_s,
            error_ratio=self._error_ratio,
            replicas=replicas,
            standby_replicas=len(self._asleep),
            standby_target=self._standby_target,
        )

    # ------------------------------------------------------------- pinned requests

    def submit_pinned(
        self, pod: str, *, prompt_tokens: int, output_tokens: int, truncated: bool = False
    ) -> int:
        """Hand a request straight to the ready replica ``pod`` at the current time.

        This is a request that reached the pod's own endpoint (a gateway in front chose
        the pod, not this deployment's router). It counts against the pod's batch and KV
        cache like any other, is subject to ``inject_error_ratio`` but not to injected
        latency, and is never re-queued elsewhere: when its pod is removed without drain
        (or the drain times out) it fails with reason ``aborted``. Returns the request
        id for :meth:`pinned_progress`; raises ``KeyError`` when ``pod`` is not ready.
        """
        replica = self._by_pod.get(pod)
        if replica is None or replica not in self._ready:
            raise KeyError(f"{pod} is not a ready replica of {self.namespace}/{self.name}")
        now = self._now
        job = Job(
            self._next_request_id,
            now,
            prompt_tokens,
            output_tokens,
            pinned=True,
            truncated=truncated,
        )
        self._next_request_id += 1
        self._pinned[job.request_id] = None
        if self._error_ratio > 0.0 and self._rng.random() < self._error_ratio:
            replica.fail(job, now, "injected")
        else:
            replica.submit(job, now)
        return job.request_id

    def pinned_progress(self, pod: str, request_id: int) -> tuple[int, RequestRecord | None]:
        """Tokens generated so far for a pinned request, and its record once it ended.

        The record is handed out once; the request is forgotten afterwards.
        """
        record = self._pinned.get(request_id)
        if record is not None:
            del self._pinned[request_id]
            return (record.output_tokens if record.completed else 0), record
        replica = self.find_replica(pod)
        tokens = replica.tokens_generated(request_id) if replica is not None else None
        return (tokens or 0), None

    def abort_pinned(self, pod: str, request_id: int) -> None:
        """Drop a pinned request whose client went away (see :meth:`Replica.abort`)."""
        self._pinned.pop(request_id, None)
        replica = self.find_replica(pod)
        if replica is not None:
            replica.abort(request_id, self._now)

    # ------------------------------------------------------------------- controls

    def set_rate_multiplier(self, multiplier: float) -> None:
        """Scale the arrival rate of requests arriving from now on.

        Above 1 each workload arrival is duplicated (``floor(x)`` copies plus one more
        with probability ``frac(x)``), the extra copies spread uniformly over the next
        ``copy_spread_s``; below 1 arrivals are thinned. The workload's time pattern
        (diurnal phase, bursts) is preserved.
        """
        if not math.isfinite(multiplier) or multiplier < 0:
            raise ValueError("rate multiplier must be a finite number >= 0")
        self._rate_multiplier = float(multiplier)

    def inject_latency(self, extra_seconds: float) -> None:
        """Delay every request arriving from now on by ``extra_seconds`` before dispatch."""
        if not math.isfinite(extra_seconds) or extra_seconds < 0:
            raise ValueError("extra latency must be a finite number >= 0")
        self._extra_latency_s = float(extra_seconds)

    def inject_error_ratio(self, ratio: float) -> None:
        """Make each dispatch to a replica fail immediately with probability ``ratio``."""
        if not 0.0 <= ratio <= 1.0:
            raise ValueError("error ratio must be within [0, 1]")
        self._error_ratio = float(ratio)

    def slow_down(self, pod: str, factor: float) -> None:
        """Make replica ``pod`` ``factor`` times slower from now on (see
        :meth:`Replica.set_slowdown`); raises ``KeyError`` for an unknown pod."""
        replica = self._by_pod.get(pod)
        if replica is None:
            raise KeyError(f"no replica {pod} in {self.namespace}/{self.name}")
        replica.set_slowdown(factor, self._now)

    def scale(
        self, replicas: int, *, drain_s: float = 0.0, remove: Sequence[str] = ()
    ) -> dict[str, int]:
        """Set the desired replica count at the current simulation time.

        ``drain_s`` > 0 lets removed ready replicas finish their requests for up to that
        long instead of re-queueing them at once (see the module docstring).

        ``remove`` names replicas (starting or ready) that a scale-down removes first, in
        place of the simulator's own choice: a gateway that already drained those replicas
        needs exactly them to go. Any further replicas to remove are chosen as usual. It
        raises ValueError when it names a replica twice, a replica that is not starting or
        ready, or more replicas than the scale-down removes (nothing changes then).
        """
        _check_count("replicas", replicas)
        if not math.isfinite(drain_s) or drain_s < 0:
            raise ValueError("drain_s must be a finite number >= 0")
        now = self._now
        current = self.spec_replicas
        chosen = list(remove)
        if chosen:
            live = {r.pod for r in (*self._starting, *self._ready)}
            unknown = [pod for pod in chosen if pod not in live]
            if len(set(chosen)) != len(chosen):
                raise ValueError("remove names a replica more than once")
            if unknown:
                raise ValueError(
                    f"remove names replicas that are not starting or ready: {', '.join(unknown)}"
                )
            if len(chosen) > current - replicas:
                raise ValueError(
                    f"remove names {len(chosen)} replicas but scaling from {current} to "
                    f"{replicas} removes {max(current - replicas, 0)}"
                )
        if replicas > current:
            for _ in range(replicas - current):
                if self._asleep:
                    # Loaded standbys first (the earliest loaded), then those still loading.
                    self._wake_replica(min(self._asleep, key=lambda r: r.ready_at_s), now)
                else:
                    self._add_replica(now + self.profile.cold_start_s, created_at=now)
            self._fill_standby()
        elif replicas < current:
            to_remove = current - replicas
            displaced: list[Job] = []
            for pod in chosen:
                victim = self._by_pod[pod]
                if victim in self._starting:
                    self._starting.remove(victim)
                    self._park_or_retire(victim, now)
                else:
                    displaced.extend(self._remove_ready(victim, now, drain_s))
                to_remove -= 1
            while to_remove and self._starting:
                self._park_or_retire(self._starting.pop(), now)
                to_remove -= 1
            while to_remove and self._ready:
                for replica in self._ready:
                    replica.advance(now)
                victim = min(
                    reversed(self._ready),  # newest wins ties: keep long-lived pods
                    key=lambda r: r.outstanding,
                )
                displaced.extend(self._remove_ready(victim, now, drain_s))
                to_remove -= 1
            self._requeue(displaced, now)
        return self.scale_status()

    def set_standby(self, count: int, *, loaded: bool = False) -> dict[str, int]:
        """Keep ``count`` standby replicas: loaded, asleep, outside the spec (0: none).

        Missing ones cold-start now and fall asleep once loaded (``loaded``: they are
        loaded and asleep at once, as ``initial_ready`` replicas are ready at once: a
        simulation that starts with its standby pool in place); surplus ones go, those
        still loading first (newest first). Returns the scale status with
        ``standby_replicas``."""
        _check_count("standby", count)
        if loaded:
            while len(self._asleep) < count:
                self._add_replica(self._now, created_at=self._now, standby=True)
        self._standby_target = count
        while len(self._asleep) > count:
            loading = [r for r in self._asleep if r.ready_at_s > self._now]
            victim = loading[-1] if loading else self._asleep[-1]
            self._asleep.remove(victim)
            self._retire_replica(victim)
        self._fill_standby()
        return {**self.scale_status(), "standby_replicas": len(self._asleep)}

    def sleep(self, pod: str) -> None:
        """Put the ready replica ``pod`` to sleep now: it leaves the spec (one replica
        fewer) and becomes a standby; what it holds is re-queued (pinned requests fail
        as ``aborted``), as when it is removed without drain. KeyError when ``pod`` is
        not ready; an asleep one is left alone."""
        replica = self._by_pod.get(pod)
        if replica is not None and replica in self._asleep:
            return
        if replica is None or replica not in self._ready:
            raise KeyError(f"{pod} is not a ready replica of {self.namespace}/{self.name}")
        self._ready.remove(replica)
        displaced = self._evict(replica, self._now)
        replica.sleep(self._now)
        self._asleep.append(replica)
        self._requeue(displaced, self._now)

    def wake(self, pod: str) -> float:
        """Wake the standby ``pod`` now: it joins the spec (one replica more) and is ready
        ``wake_s`` later; returns that time. The standby pool is refilled by a cold
        start. KeyError for a replica that is not asleep; a starting or ready one is left
        alone."""
        replica = self._by_pod.get(pod)
        if replica is not None and (replica in self._starting or replica in self._ready):
            return replica.ready_at_s
        if replica is None or replica not in self._asleep:
            raise KeyError(f"{pod} is not a standby replica of {self.namespace}/{self.name}")
        ready_at = self._wake_replica(replica, self._now)
        self._fill_standby()
        return ready_at

    def _remove_ready(self, victim: Replica, now: float, drain_s: float) -> list[Job]:
        """Take a ready replica out of the spec: it drains (``drain_s`` > 0 and busy), goes
        to sleep while the standby pool is short, or goes at once; returns the requests to
        re-queue."""
        self._ready.remove(victim)
        victim.advance(now)
        if drain_s > 0 and victim.outstanding:
            heapq.heappush(self._draining, (now + drain_s, self._drain_seq, victim))
            self._drain_seq += 1
            return []
        displaced = self._evict(victim, now)
        self._park_or_retire(victim, now)
        return displaced

    def _park_or_retire(self, replica: Replica, now: float) -> None:
        """A replica leaving the spec (holding no request) becomes a standby while the
        pool is short, or in place of a standby still cold-starting if it is loaded
        itself (that cold start is cancelled); else it goes."""
        loading = [r for r in self._asleep if r.ready_at_s > now]
        if len(self._asleep) < self._standby_target:
            replica.sleep(now)
            self._asleep.append(replica)
        elif loading and replica.ready_at_s <= now:
            self._asleep.remove(loading[-1])
            self._retire_replica(loading[-1])
            replica.sleep(now)
            self._asleep.append(replica)
        else:
            self._retire_replica(replica)

    def _wake_replica(self, replica: Replica, now: float) -> float:
        self._asleep.remove(replica)
        ready_at = replica.wake(now)
        if ready_at <= now:
            self._ready.append(replica)
        else:
            bisect.insort(self._starting, replica, key=lambda r: r.ready_at_s)
        return ready_at

    def _fill_standby(self) -> None:
        """Cold-start standbys until the pool holds its target; they sleep once loaded."""
        while len(self._asleep) < self._standby_target:
            self._add_replica(
                self._now + self.profile.cold_start_s, created_at=self._now, standby=True
            )

    # -------------------------------------------------------------------- driving

    def advance(self, t: float) -> None:
        """Process every event up to and including time ``t`` and bring replicas to ``t``
        (with flow control, re-checking the gateway every ``flow_control_tick_s`` while it
        holds requests)."""
        if t < self._now:
            raise ValueError(f"cannot move {self.name} back in time ({t} < {self._now})")
        while self.flow_control and self._gateway and self._ready:
            t_room = self._now + self.flow_control_tick_s
            if t_room > t:
                break
            self._advance_events(t_room)
            self._serve_gateway(t_room)
        self._advance_events(t)

    def _advance_events(self, t: float) -> None:
        pending = self._pending
        starting = self._starting
        while True:
            t_ready = starting[0].ready_at_s if starting else math.inf
            t_source = (
                self._offset + self._lookahead.arrival_s
                if self._lookahead is not None
                else math.inf
            )
            t_pending = pending[0][0] if pending else math.inf
            t_drain = self._draining[0][0] if self._draining else math.inf
            t_event = min(t_ready, t_source, t_pending, t_drain)
            if t_event > t:
                break
            t_event = max(t_event, self._now)
            if t_drain < min(t_ready, t_source, t_pending):
                self._on_drain_deadline(t_event)
            elif t_ready <= t_source and t_ready <= t_pending:
                self._on_ready(t_event)
            elif t_source <= t_pending:
                request = self._lookahead
                assert request is not None
                self._lookahead = next(self._source, None)
                self._on_arrival(request, t_event)
            else:
                self._dispatch(heapq.heappop(pending)[2], t_event)
            self._now = t_event
        for replica in self._ready:
            replica.advance(t)
        if self._draining:
            for _, _, replica in self._draining:
                replica.advance(t)
            done = [d for d in self._draining if d[2].outstanding == 0]
            if done:
                self._draining = [d for d in self._draining if d[2].outstanding]
                heapq.heapify(self._draining)
                for _, _, replica in done:
                    self._retire_replica(replica)
        self._now = t

    # ------------------------------------------------------------------ internals

    def _add_replica(
        self, ready_at: float, created_at: float | None = None, *, standby: bool = False
    ) -> None:
        ordinal = self._next_ordinal
        self._next_ordinal += 1
        pod = f"{self.name}-{ordinal}"
        replica = Replica(
            self.profile,
            pod=pod,
            ready_at_s=ready_at,
            created_at_s=ready_at if created_at is None else created_at,
            gpu_uuid=_gpu_uuid(self.namespace, pod),
            hostname=f"gpu-node-{self.namespace}-{self.name}-{ordinal}",
            util_window_s=self.util_window_s,
            sink=self._on_record,
        )
        self._by_pod[pod] = replica
        if standby:
            replica.asleep = True  # it sleeps as soon as it is loaded
            self._asleep.append(replica)
        elif ready_at <= self._now:
            self._ready.append(replica)
        else:
            # Kept sorted by readiness: a woken standby may be ready before a cold start.
            bisect.insort(self._starting, replica, key=lambda r: r.ready_at_s)

    def _on_record(self, record: RequestRecord) -> None:
        self._records.append(record)
        if self._pinned and record.request_id in self._pinned:
            self._pinned[record.request_id] = record

    def _evict(self, replica: Replica, t: float) -> list[Job]:
        """Take every request off ``replica``: pinned ones fail as ``aborted`` (their
        connection goes with the pod), the others are returned for re-queueing."""
        displaced = []
        for job in replica.drain():
            if job.pinned:
                replica.fail(job, t, "aborted")
            else:
                displaced.append(job)
        return displaced

    def _retire_replica(self, replica: Replica) -> None:
        self._by_pod.pop(replica.pod, None)
        self._retired_stats.merge(replica.stats)
        self._last_pick.pop(replica.pod, None)

    def _on_drain_deadline(self, t: float) -> None:
        """Drain time is up: what a draining replica still holds is re-queued."""
        displaced: list[Job] = []
        while self._draining and self._draining[0][0] <= t:
            replica = heapq.heappop(self._draining)[2]
            replica.advance(t)
            displaced.extend(self._evict(replica, t))
            self._retire_replica(replica)
        self._requeue(displaced, t)

    def _requeue(self, displaced: list[Job], t: float) -> None:
        """Dispatch again, oldest first, the requests taken from replicas that went away."""
        displaced.sort(key=lambda j: (j.arrival_s, j.request_id))
        for job in displaced:
            job.requeues += 1
            self._requeued += 1
            # A re-queued request already passed the error roll on its first dispatch.
            self._dispatch(job, t, roll_failure=False)

    def _on_ready(self, t: float) -> None:
        while self._starting and self._starting[0].ready_at_s <= t:
            replica = self._starting.pop(0)
            replica.advance(t)
            self._ready.append(replica)
        if self.flow_control:
            self._serve_gateway(t)
            return
        while self._gateway and self._ready:
            self._dispatch(self._gateway.popleft(), t)

    def _serve_gateway(self, t: float) -> None:
        """Flow control: send queued requests, oldest first, while a replica has room."""
        while self._gateway and self._ready:
            replica = self._pick_with_room(self._gateway[0], t)
            if replica is None:
                return
            self._send(replica, self._gateway.popleft(), t, roll_failure=True)

    def _pick_with_room(self, job: Job, t: float) -> Replica | None:
        """The least-loaded ready replica with room for ``job`` (ties: least recently
        picked); any ready replica for a request too long for all of them."""
        best: Replica | None = None
        best_key = (0, 0)
        too_long = job.prompt_tokens + job.output_tokens > self.profile.max_request_tokens
        for replica in self._ready:
            if t > replica.horizon:
                replica.advance(t)
            if not too_long and not replica.has_room(job.prompt_tokens, job.output_tokens):
                continue
            key = (replica.outstanding, self._last_pick.get(replica.pod, -1))
            if best is None or key < best_key:
                best, best_key = replica, key
        return best

    def _enqueue(self, job: Job) -> None:
        """Into the gateway queue in arrival order (a re-queued request keeps its place)."""
        gateway = self._gateway
        if not gateway or gateway[-1].arrival_s <= job.arrival_s:
            gateway.append(job)
            return
        i = bisect.bisect_right([j.arrival_s for j in gateway], job.arrival_s)
        gateway.insert(i, job)

    def _send(self, replica: Replica, job: Job, t: float, *, roll_failure: bool) -> None:
        self._pick_seq += 1
        self._last_pick[replica.pod] = self._pick_seq
        if roll_failure and self._error_ratio > 0.0 and self._rng.random() < self._error_ratio:
            replica.fail(job, t, "injected")
            return
        replica.submit(job, t)

    def _on_arrival(self, request: Request, t: float) -> None:
        multiplier = self._rate_multiplier
        copies = int(multiplier)
        if multiplier != copies and self._rng.random() < multiplier - copies:
            copies += 1
        delay = self._extra_latency_s
        for i in range(copies):
            arrival = t if i == 0 else t + self._rng.random() * self.copy_spread_s
            job = Job(self._next_request_id, arrival, request.prompt_tokens, request.output_tokens)
            self._next_request_id += 1
            release = arrival + delay
            if release <= t:
                self._dispatch(job, t)
            else:
                heapq.heappush(self._pending, (release, self._pending_seq, job))
                self._pending_seq += 1

    def _dispatch(self, job: Job, t: float, *, roll_failure: bool = True) -> None:
        if self.flow_control:
            if self._gateway:
                self._enqueue(job)  # first come, first served
                self._serve_gateway(t)
                return
            picked = self._pick_with_room(job, t) if self._ready else None
            if picked is None:
                self._enqueue(job)
            else:
                self._send(picked, job, t, roll_failure=roll_failure)
            return
        if not self._ready:
            self._gateway.append(job)
            return
        best: Replica | None = None
        best_load = 0
        best_pick = 0
        last_pick = self._last_pick
        for replica in self._ready:
            if t > replica.horizon:
                replica.advance(t)
            load = replica.outstanding
            pick = last_pick.get(replica.pod, -1)
            if best is None or load < best_load or (load == best_load and pick < best_pick):
                best, best_load, best_pick = replica, load, pick
        assert best is not None
        self._send(best, job, t, roll_failure=roll_failure)


def _gpu_uuid(namespace: str, pod: str) -> str:
    return f"GPU-{uuid.uuid5(uuid.NAMESPACE_URL, f'llmcp-fleetsim/{namespace}/{pod}')}"


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


class Fleet:
    """Several simulated deployments sharing one simulation clock."""

    def __init__(
        self, deployments: Iterable[SimulatedDeployment] = (), *, start_time_s: float = 0.0
    ) -> None:
        self.lock = threading.RLock()
        self._deployments: dict[tuple[str, str], SimulatedDeployment] = {}
        self._now = start_time_s
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._speed = 1.0
        self._wall_origin = 0.0
        self._sim_origin = 0.0
        for deployment in deployments:
            self.add(deployment)

    # ----------------------------------------------------------------- membership

    def add(self, deployment: SimulatedDeployment) -> SimulatedDeployment:
        """Register a deployment; it is brought forward to the fleet's current time."""
        with self.lock:
            key = (deployment.namespace, deployment.name)
            if key in self._deployments:
                raise ValueError(f"deployment {key[0]}/{key[1]} already exists")
            if deployment.now < self._now:
                deployment.advance(self._now)
            self._deployments[key] = deployment
            return deployment

    def get(self, namespace: str, name: str) -> SimulatedDeployment:
        """The deployment ``namespace/name``; raises KeyError when unknown."""
        with self.lock:
            return self._deployments[(namespace, name)]

    def find(self, namespace: str, name: str) -> SimulatedDeployment | None:
        with self.lock:
            return self._deployments.get((namespace, name))

    @property
    def deployments(self) -> list[SimulatedDeployment]:
        with self.lock:
            return list(self._deployments.values())

    # ---------------------------------------------------------------------- time

    @property
    def now(self) -> float:
        return self._now

    def step_to(self, t: float) -> None:
        """Advance every deployment to simulation time ``t`` (never backwards)."""
        with self.lock:
            if t < self._now:
                raise ValueError(f"cannot step the fleet back in time ({t} < {self._now})")
            for deployment in self._deployments.values():
                deployment.advance(t)
            self._now = t

    def sync(self) -> float:
        """Catch up with the wall clock when running in real time; returns the sim time."""
        with self.lock:
            if self._thread is not None:
                target = self._realtime_target()
                if target > self._now:
                    self.step_to(target)
            return self._now

    def is_idle(self) -> bool:
        with self.lock:
            return all(d.is_idle() for d in self._deployments.values())

    def run_until_idle(self, max_time_s: float = 86_400.0, chunk_s: float = 600.0) -> float:
        """Step until every workload is exhausted and served, or ``max_time_s`` passes.

        Returns the simulation time reached. A deployment with no replica and queued
        requests never drains, hence the bound.
        """
        with self.lock:
            limit = self._now + max_time_s
            while not self.is_idle() and self._now < limit:
                self.step_to(min(limit, self._now + chunk_s))
            return self._now

    def snapshot(self) -> FleetSnapshot:
        with self.lock:
            now = self.sync()
            return FleetSnapshot(now, tuple(d.snapshot() for d in self._deployments.values()))

    # --------------------------------------------------------- real-time driving

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run_realtime(self, speed: float = 1.0, tick_s: float = 0.1) -> None:
        """Advance simulated time with the wall clock (``speed`` sim seconds per second).

        Runs in a daemon thread until :meth:`stop`. Readers such as the metrics
        endpoint call :meth:`sync` to see the state as of this very moment.
        """
        if speed <= 0 or tick_s <= 0:
            raise ValueError("speed and tick_s must be positive")
        with self.lock:
            if self._thread is not None:
                raise RuntimeError("the real-time driver is already running")
            self._speed = speed
            self._wall_origin = time.monotonic()
            self._sim_origin = self._now
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._drive, args=(tick_s,), name="fleetsim-realtime", daemon=True
            )
            self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the real-time driver; simulated time freezes where it is."""
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout_s)
        with self.lock:
            self._thread = None

    def _realtime_target(self) -> float:
        return self._sim_origin + (time.monotonic() - self._wall_origin) * self._speed

    def _drive(self, tick_s: float) -> None:
        while not self._stop.wait(tick_s):
            with self.lock:
                target = self._realtime_target()
                if target > self._now:
                    self.step_to(target)
