"""Running a load test: open-loop Poisson arrivals, steps, the stress search, the bounds.

Arrivals are scheduled in advance as a seeded Poisson process at the step's rate and each
request is started at its time whatever the earlier ones are doing (open loop: a slow
server does not slow the offered load down, as real users would not). A request that
would exceed ``max_concurrency`` in flight is not sent and counted as client-limited; a
step with any is not taken as meeting the SLO, since it did not offer the asked rate.
After a step's last arrival the step waits for its requests to finish (each is bounded by
``request_timeout_s``), so every step starts on an idle server and is judged on all of its
requests. ``should_stop`` is polled about once a second, ``max_total_s`` bounds the whole
run: either cancels what is in flight (those requests count as ``cancelled``) and ends the
run with a partial result.
"""

from __future__ import annotations

import asyncio
import math
import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import aiohttp

from .client import Observation, send
from .functional import run_functional_checks
from .plan import LoadTestPlan, validate_plan
from .result import ClientStats, LoadTestResult, Quantiles, StepResult
from .workload import LengthSampler, request_body

__all__ = ["run_load_test"]

SessionFactory = Callable[[], Any]
ProgressCallback = Callable[[dict[str, Any]], None]
_POLL_S = 1.0
_LOOP_DONE = object()  # the loop thread's last event


class _Stopped(Exception):
    """The run must end now (``reason``: ``should_stop`` or ``max_total_s``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Runner:
    def __init__(
        self,
        plan: LoadTestPlan,
        session: aiohttp.ClientSession,
        should_stop: Callable[[], bool] | None,
        on_progress: ProgressCallback | None,
    ) -> None:
        self.plan = plan
        self.session = session
        self.should_stop = should_stop
        self.on_progress = on_progress
        self.loop = asyncio.get_running_loop()
        self.started = self.loop.time()
        self.deadline = self.started + plan.max_total_s
        self.sampler = LengthSampler(plan.workload, plan.seed)
        self.bodies = random.Random(f"loadtest-prompts:{plan.seed}")
        self.url = plan.url(plan.endpoint_path)
        self.headers = dict(plan.headers)
        self.in_flight = 0
        self.last_poll = self.started
        self.steps: list[StepResult] = []
        self.lags: list[float] = []
        self.sent = 0

    # ------------------------------------------------------------------ bounds

    def elapsed(self) -> float:
        return self.loop.time() - self.started

    def check(self, *, force: bool = False) -> None:
        """Raise :class:`_Stopped` when time is up or the caller asked to stop (polled at
        most once per :data:`_POLL_S` unless ``force``)."""
        now = self.loop.time()
        if now >= self.deadline:
            raise _Stopped("max_total_s")
        if self.should_stop is not None and (force or now - self.last_poll >= _POLL_S):
            self.last_poll = now
            if self.should_stop():
                raise _Stopped("should_stop")

    def time_left(self) -> float:
        return self.deadline - self.loop.time()

    def progress(self, event: str, **values: Any) -> None:
        if self.on_progress is not None:
            self.on_progress(
                {"event": event, "mode": self.plan.mode, "elapsed_s": self.elapsed(), **values}
            )

    # ------------------------------------------------------------------- steps

    async def _one(self, observations: list[Observation]) -> None:
        spec = self.sampler.sample()
        body = request_body(self.plan, spec, self.bodies)
        self.in_flight += 1
        try:
            observations.append(
                await send(
                    self.session,
                    self.url,
                    body,
                    headers=self.headers,
                    timeout_s=self.plan.request_timeout_s,
                    stream=self.plan.stream,
                )
            )
        except asyncio.CancelledError:
            observations.append(Observation(error="cancelled"))
            raise
        finally:
            self.in_flight -= 1

    async def step(self, rate: float, phase: str) -> StepResult:
        """Offer ``rate`` requests/s for ``duration_s``, then wait for them to finish."""
        plan = self.plan
        index = len(self.steps)
        arrivals = random.Random(f"loadtest-arrivals:{plan.seed}:{index}")
        observations: list[Observation] = []
        tasks: set[asyncio.Task[None]] = set()
        lags: list[float] = []
        sent = limited = 0
        interrupted: str | None = None
        cpu0 = time.thread_time()
        start = self.loop.time()
        self.progress("step-started", step=index, phase=phase, rate_rps=rate)
        offset = arrivals.expovariate(rate)
        window_end = start + plan.duration_s
        last_start = start
        try:
            while start + offset < window_end:
                due = start + offset
                while (now := self.loop.time()) < due:
                    self.check()
                    await asyncio.sleep(min(due - now, _POLL_S))
                self.check()
                last_start = self.loop.time()
                lags.append(last_start - due)
                sent += 1
                if self.in_flight >= plan.max_concurrency:
                    limited += 1
                else:
                    task = self.loop.create_task(self._one(observations))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                offset += arrivals.expovariate(rate)
            while (now := self.loop.time()) < window_end:  # the window's quiet tail
                self.check()
                await asyncio.sleep(min(window_end - now, _POLL_S))
            while tasks:
                self.check()
                await asyncio.wait(set(tasks), timeout=min(_POLL_S, max(self.time_left(), 0.0)))
        except _Stopped as stop:
            interrupted = stop.reason
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finished = self.loop.time()
        result = self._summarise(
            index,
            phase,
            rate,
            observations,
            sent=sent,
            limited=limited,
            lags=lags,
            window_s=max(min(finished, window_end), last_start) - start,
            busy_s=finished - start,
            cpu_s=time.thread_time() - cpu0,
            interrupted=interrupted,
        )
        self.steps.append(result)
        self.lags.extend(lags)
        self.sent += sent
        self.progress(
            "step-finished",
            step=index,
            phase=phase,
            rate_rps=rate,
            slo_met=result.slo_met,
            completed=result.completed,
            errors=sum(result.errors.values()),
        )
        if interrupted is not None:
            raise _Stopped(interrupted)
        return result

    def _summarise(
        self,
        index: int,
        phase: str,
        rate: float,
        observations: list[Observation],
        *,
        sent: int,
        limited: int,
        lags: list[float],
        window_s: float,
        busy_s: float,
        cpu_s: float,
        interrupted: str | None,
    ) -> StepResult:
        plan = self.plan
        q = plan.slo_quantile
        done = [o for o in observations if o.ok]
        errors = Counter(o.error or "malformed" for o in observations if not o.ok)
        judged = sum(n for kind, n in errors.items() if kind != "cancelled") + len(done)
        error_rate = (judged - len(done)) / judged if judged else 0.0
        ttft = Quantiles.of([o.ttft_s for o in done if o.ttft_s is not None], q)
        itl = Quantiles.of([o.itl_s for o in done if o.itl_s is not None], q)
        e2e = Quantiles.of([o.e2e_s for o in done if o.e2e_s is not None], q)
        tokens = sum(o.output_tokens or 0 for o in done)
        reasons = []
        if interrupted is not None:
            reasons.append(f"the step was cut short ({interrupted})")
        if limited:
            reasons.append(
                f"{limited} requests were not sent: {plan.max_concurrency} in flight "
                "(client-limited, the asked rate was not offered)"
            )
        if sent - limited > 0 and not done:
            reasons.append("no request succeeded")
        if error_rate > plan.max_error_rate:
            reasons.append(f"error rate {error_rate:.1%} > {plan.max_error_rate:.1%}")
        label = f"p{q * 100:g}"
        if ttft.slo is not None and ttft.slo > plan.slo_ttft_s:
            reasons.append(f"TTFT {label} {ttft.slo:.3f} s > {plan.slo_ttft_s:g} s")
        if itl.slo is not None and itl.slo > plan.slo_itl_s:
            reasons.append(f"ITL {label} {itl.slo:.4f} s > {plan.slo_itl_s:g} s")
        return StepResult(
            index=index,
            phase=phase,
            rate_rps=rate,
            achieved_rps=(sent - limited) / window_s if window_s > 0 else 0.0,
            duration_s=busy_s,
            sent=sent,
            completed=len(done),
            errors=dict(sorted(errors.items())),
            client_limited=limited,
            ttft=ttft,
            itl=itl,
            e2e=e2e,
            output_tokens_per_s=tokens / busy_s if busy_s > 0 else 0.0,
            error_rate=error_rate,
            slo_met=not reasons,
            slo_reasons=reasons,
            lag_p99_s=_p99(lags),
            max_lag_s=max(lags, default=0.0),
            cpu_s=cpu_s,
            interrupted=interrupted,
        )

    # ------------------------------------------------------------------- modes

    async def performance(self) -> str:
        await self.step(self.plan.rate_rps, "performance")
        return "completed"

    def _room_for_a_step(self) -> bool:
        return self.time_left() >= self.plan.duration_s

    async def stress(self) -> tuple[str, float | None]:
        """Ramp up by ``rate_factor`` until a step breaks the SLO, then bisect (geometric
        mean) between the best good and the first bad rate."""
        plan = self.plan
        good: float | None = None
        bad: float | None = None
        rate = plan.rate_rps
        reason = "slo_broken"
        while True:
            if not self._room_for_a_step():
                return "max_total_s", good
            if (await self.step(rate, "ramp")).slo_met:
                good = rate
            else:
                bad = rate
                break
            if rate >= plan.max_rate_rps:
                return "max_rate_rps", good
            rate = min(rate * plan.rate_factor, plan.max_rate_rps)
        if good is None:
            return reason, None
        for _ in range(plan.refine_steps):
            if not self._room_for_a_step():
                return "max_total_s", good
            assert bad is not None
            mid = math.sqrt(good * bad)
            if (await self.step(mid, "refine")).slo_met:
                good = mid
            else:
                bad = mid
        return reason, good

    def client_stats(self, cpu_s: float) -> ClientStats:
        return ClientStats(
            cpu_s=cpu_s,
            max_lag_s=max(self.lags, default=0.0),
            lag_p99_s=_p99(self.lags),
            client_limited=sum(s.client_limited for s in self.steps),
            requests=self.sent,
        )


def _p99(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def _default_session(plan: LoadTestPlan) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=plan.max_concurrency + 8, limit_per_host=0)
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=None), trust_env=False
    )


async def _run(
    plan: LoadTestPlan,
    should_stop: Callable[[], bool] | None,
    on_progress: ProgressCallback | None,
    session_factory: SessionFactory | None,
) -> LoadTestResult:
    result = LoadTestResult(plan=plan, started_at=time.time())
    cpu0 = time.thread_time()
    session = session_factory() if session_factory is not None else _default_session(plan)
    try:
        runner = _Runner(plan, session, should_stop, on_progress)
        try:
            runner.check(force=True)
            if plan.mode == "functional":
                runner.progress("step-started", step=0, phase="functional", rate_rps=0.0)
                result.functional, step = await run_functional_checks(
                    plan, session, runner.sampler, runner.bodies
                )
                runner.steps.append(step)
                runner.progress(
                    "step-finished",
                    step=0,
                    phase="functional",
                    rate_rps=0.0,
                    slo_met=step.slo_met,
                    completed=step.completed,
                    errors=sum(step.errors.values()),
                )
            elif plan.mode == "performance":
                result.stopped_reason = await runner.performance()
            else:
                reason, capacity = await runner.stress()
                result.stopped_reason = reason
                result.capacity_rps = capacity
        except _Stopped as stop:
            result.stopped_reason = stop.reason
            if plan.mode == "stress":
                met = [s.rate_rps for s in runner.steps if s.slo_met]
                result.capacity_rps = max(met) if met else None
        if result.capacity_rps is not None:
            result.capacity_rps_per_replica = result.capacity_rps / plan.replicas
        result.steps = runner.steps
        result.client = runner.client_stats(time.thread_time() - cpu0)
    finally:
        await session.close()
    result.finished_at = time.time()
    return result


def run_load_test(
    plan: LoadTestPlan,
    *,
    should_stop: Callable[[], bool] | None = None,
    on_progress: ProgressCallback | None = None,
    session_factory: SessionFactory | None = None,
) -> LoadTestResult:
    """Run ``plan`` to the end (or its bounds) and return its result.

    The requests go out from a new event loop in a thread of its own; the callbacks run in
    the calling thread, never inside the loop, so they may block or use what belongs to the
    caller's thread (a Django database connection, which refuses to be used from a running
    event loop): ``should_stop()`` is polled about twice a second and the run ends within
    about a second after it returns True; ``on_progress(event)`` receives each event (a dict,
    when a step starts and ends) in order. ``session_factory()`` is called once, inside the
    run's event loop, to make the ``aiohttp.ClientSession`` (or alike) that sends every
    request, and the run closes it. ValueError when :func:`validate_plan` objects; an
    exception of a callback ends the run and is raised once the loop has stopped.
    """
    problems = validate_plan(plan)
    if problems:
        raise ValueError("; ".join(problems))
    events: queue.SimpleQueue[Any] = queue.SimpleQueue()
    stop = threading.Event()
    outcome: dict[str, Any] = {}

    def loop_thread() -> None:
        loop = asyncio.new_event_loop()
        try:
            outcome["result"] = loop.run_until_complete(
                _run(
                    plan,
                    stop.is_set if should_stop is not None else None,
                    events.put if on_progress is not None else None,
                    session_factory,
                )
            )
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            outcome["error"] = exc
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                events.put(_LOOP_DONE)

    thread = threading.Thread(target=loop_thread, name="loadtest-loop", daemon=True)
    thread.start()
    failure: BaseException | None = None
    while True:
        try:
            item = events.get(timeout=_POLL_S / 2)
        except queue.Empty:
            item = None
        if item is _LOOP_DONE:
            break
        try:
            if item is not None and on_progress is not None:
                on_progress(item)
            if should_stop is not None and not stop.is_set() and should_stop():
                stop.set()
        except BaseException as exc:  # noqa: BLE001 - stop the run, then raise it
            failure = failure or exc
            stop.set()
    thread.join()
    if failure is not None:
        raise failure
    if "error" in outcome:
        raise outcome["error"]
    result: LoadTestResult = outcome["result"]
    return result
