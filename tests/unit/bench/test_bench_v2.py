"""Engine v2 in the benchmark: the observations the simulated loop gives it are what the
deployment saw (finished requests/s, waiting with the gateway queue, TTFT p95), the
profile-derived starting capacity, standby replicas and their cost."""

from __future__ import annotations

import pytest

from apps.autoscaling import engine
from apps.autoscaling.engine import presets
from apps.fleetsim.histograms import VLLM_TTFT_BUCKETS, Histogram
from apps.fleetsim.profiles import L4
from apps.fleetsim.workload import Request
from bench.autoscale import cli, policies
from bench.autoscale.sim import FastReading, MetricLog, MetricsView, ScaleState, SimConfig, run


class Watching:
    """Holds a fixed count and keeps what engine v2 would observe at each decision."""

    def __init__(self, replicas: int) -> None:
        self.name = "watching"
        self.replicas = replicas
        self.v2 = policies.OursV2(_policy(), interval_s=15.0)
        self.seen: list[tuple[float, dict[str, engine.Obs], MetricsView]] = []

    def decide(self, view: MetricsView, state: ScaleState) -> int:
        self.seen.append((state.now, self.v2.observations(view), view))
        return self.replicas


def _policy() -> engine.Policy:
    return engine.demand_capacity_policy(
        min_replicas=1, max_replicas=8, initial_capacity=1.0, cold_start_s=120.0, latency_slo_s=2.0
    )


def test_observations__request_rate__finished_per_second_over_the_last_interval() -> None:
    # Two tiny requests per second, each done well within the second it arrived in.
    requests = [Request(0.25 + 0.5 * i, 16, 1) for i in range(240)]
    watcher = Watching(1)
    run("t", requests, 120.0, watcher, SimConfig(initial_replicas=1, max_replicas=1))
    rates = {now: obs["request_rate"].value for now, obs, _ in watcher.seen}
    # At 60 s the newest visible sample is 45 s; the rate covers (30 s, 45 s]: 30 finished.
    assert rates[60.0] == pytest.approx(2.0)
    assert rates[120.0] == pytest.approx(2.0)
    ttft = watcher.seen[-1][1]["ttft_p95"]
    assert ttft.value is not None
    assert ttft.value < 0.25
    assert watcher.seen[-1][1]["queue_length"].value == 0


def test_observations__queue_length__includes_the_gateway_queue() -> None:
    # 300 long requests at 10 s on one L4: far more than its batch and KV cache hold.
    requests = [Request(10.0, 3000, 1000) for _ in range(300)]
    watcher = Watching(1)
    run("t", requests, 60.0, watcher, SimConfig(initial_replicas=1, max_replicas=1))
    for _, obs, view in watcher.seen[1:]:
        finished = view.log.counters["finished"][view.index]
        waiting, running = obs["queue_length"].value, obs["running_requests"].value
        assert waiting is not None
        assert running is not None
        # Everything sent is finished, running or waiting (at the gateway or in the engine).
        assert waiting + running + finished == 300
        assert waiting > L4.max_num_seqs - running


def test_observations__nothing_finished_yet__missing_never_zero() -> None:
    watcher = Watching(1)
    run("t", [Request(100.0, 16, 1)], 30.0, watcher, SimConfig(initial_replicas=1, max_replicas=1))
    first = watcher.seen[0][1]
    assert first["request_rate"].status == "missing"
    assert first["ttft_p95"].status == "missing"


def test_metrics_view__rate_and_ttft_quantile_from_cumulative_counters() -> None:
    log = MetricLog()
    sample = {"spec": 1, "ready": 1, "waiting": 0, "running": 0, "concurrency": 0}
    sample |= {"kv_avg": 0.0, "util_avg": 0.0}
    slow = [0] * (len(VLLM_TTFT_BUCKETS) + 1)
    for t in range(1, 61):
        slow[VLLM_TTFT_BUCKETS.index(1.0)] += 1 if t > 30 else 0  # one 1 s TTFT/s from 31 s
        slow[VLLM_TTFT_BUCKETS.index(0.1)] += 3  # three 0.1 s TTFTs per second
        log.record(float(t), sample, {"finished": 4.0 * t}, tuple(slow))
    view = MetricsView(log, now=75.0, delay_s=15.0)
    assert view.rate("finished", 15.0) == pytest.approx(4.0)
    last_30 = Histogram(VLLM_TTFT_BUCKETS)
    last_30.observe(0.1, 90)
    last_30.observe(1.0, 30)
    assert view.ttft_quantile(0.95, 30.0) == pytest.approx(last_30.quantile(0.95))
    assert MetricsView(log, now=1.0, delay_s=15.0).rate("finished", 15.0) is None


def test_initial_capacity__profile_tokens_over_the_early_mean_request() -> None:
    requests = [Request(float(i), 900, 100) for i in range(300)] + [Request(400.0, 9000, 1000)]
    # 800 tokens/s at the SLO over 1000 tokens per early request: 0.8 req/s; the late
    # long request is not seen.
    assert cli.initial_capacity(requests, 800.0, warmup_s=300.0) == pytest.approx(0.8)


def test_standby__loaded_at_start__woken_on_scale_up__costed_at_a_fraction() -> None:
    class UpAt30:
        name = "up"

        def decide(self, view: MetricsView, state: ScaleState) -> int:
            return 3 if state.now >= 30.0 else 1

    cfg = SimConfig(initial_replicas=1, max_replicas=3, standby=2)
    result = run("t", [Request(1.0, 16, 1)], 120.0, UpAt30(), cfg)
    # Woken standbys are ready seconds after 30 s, not after the 120 s cold start.
    ready_at_45 = [ready for t, _, ready in result.timeline if t == 45.0]
    assert ready_at_45 == [3]
    # Before 30 s two asleep standbys at 0.1 GPU each; after it two refills cold-start
    # (a whole GPU each until loaded at 150 s, past the trace's end).
    expected = (30 * 2 * L4.standby_gpu_fraction + 90 * 2) / 3600.0
    assert result.standby_gpu_hours == pytest.approx(expected, rel=0.02)
    no_standby = run("t", [Request(1.0, 16, 1)], 120.0, UpAt30(), SimConfig(max_replicas=3))
    assert result.gpu_hours == pytest.approx(no_standby.gpu_hours + expected, rel=0.02)


def test_parse_ours_settings__numbers_of_known_settings_only() -> None:
    assert cli.parse_ours_settings(["utilization_target=0.7", "peak_window_s=300"]) == (
        ("utilization_target", 0.7),
        ("peak_window_s", 300.0),
    )
    with pytest.raises(ValueError, match="NAME=VALUE"):
        cli.parse_ours_settings(["latency_signal=ttft"])
    with pytest.raises(ValueError, match="not a number"):
        cli.parse_ours_settings(["learn_rate=fast"])


def test_ours_v2_policy__standby_variant__its_own_utilisation_only_when_set() -> None:
    def target(spec: policies.OursV2Spec, warm: bool) -> float:
        policy = policies.ours_v2_policy(
            spec,
            min_replicas=1,
            max_replicas=8,
            initial_capacity=1.0,
            cold_start_s=120.0,
            latency_slo_s=2.0,
            warm=warm,
        )
        return policy.targets[0].value

    default = target(policies.OursV2Spec(), warm=False)
    assert default == presets.DEFAULT_UTILIZATION
    assert target(policies.OursV2Spec(), warm=True) == default
    set_warm = policies.OursV2Spec(standby_utilization=0.9)
    assert target(set_warm, warm=True) == 0.9
    assert target(set_warm, warm=False) == default


class FastRecording:
    """Holds its count; records when the fast path asks it and what it read."""

    def __init__(self) -> None:
        self.name = "recording"
        self.fast_reads: list[tuple[float, float]] = []
        self.decided: list[float] = []

    def decide(self, view: MetricsView, state: ScaleState) -> int:
        self.decided.append(state.now)
        return state.spec

    def fast(self, reading: FastReading, view: MetricsView, state: ScaleState) -> int | None:
        self.fast_reads.append((reading.now, reading.waiting + reading.running))
        return None


def test_fast_path__asked_every_period_between_evaluations__live_held_requests() -> None:
    # Nothing for 20 s, then a request every 0.1 s that the one replica cannot keep up
    # with (each decodes 400 tokens).
    requests = [Request(20.05 + 0.1 * i, 64, 400) for i in range(400)]
    rec = FastRecording()
    cfg = SimConfig(initial_replicas=1, max_replicas=1, fast_period_s=2.0)
    run("t", requests, 60.0, rec, cfg)
    assert [t for t, _ in rec.fast_reads] == [float(t) for t in range(2, 60, 2) if t % 15]
    assert rec.decided == [15.0, 30.0, 45.0, 60.0]
    held = dict(rec.fast_reads)
    # No scrape delay: nothing held before the requests, then what has arrived and is not
    # finished, as it is at each read.
    assert all(held[t] == 0 for t in (2.0, 4.0, 18.0))
    assert 0 < held[22.0] < held[28.0] < held[38.0]


def _first_scale_up(fast_period_s: float) -> float:
    # 1 request/s for a minute, then 8/s, more than two replicas finish: a step the fast
    # path sees within seconds, as requests piling up in the replicas.
    requests = [Request(0.5 + i, 16, 1) for i in range(60)]
    requests += [Request(60.0625 + 0.125 * i, 64, 300) for i in range(480)]
    ours = policies.OursV2(_policy(), interval_s=15.0)
    cfg = SimConfig(initial_replicas=2, max_replicas=8, fast_period_s=fast_period_s)
    result = run("t", requests, 120.0, ours, cfg)
    return min(t for t, spec, _ in result.timeline if spec > 2)


def test_fast_path__ours__scales_up_on_a_step_before_the_next_scrape_shows_it() -> None:
    # The evaluation at 75 s reads the samples of 60 s, before the step shows in them.
    assert _first_scale_up(2.0) < 75.0
    assert _first_scale_up(0.0) >= 90.0


def test_fast_path__period_not_a_multiple_of_the_sample__refused() -> None:
    with pytest.raises(ValueError, match="fast_period_s"):
        SimConfig(fast_period_s=2.5)
