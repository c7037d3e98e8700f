"""The benchmark's fairness rules: CSV reading, feasibility, shared start and maximum,
full-length windows, gateway queueing, target checks and the matrix summary."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from apps.autoscaling import engine
from apps.fleetsim.fleet import Fleet, SimulatedDeployment
from apps.fleetsim.profiles import H100_80GB, L4
from apps.fleetsim.replica import RequestRecord
from apps.fleetsim.workload import Request, steady
from bench.autoscale import cli, oracle, policies, report, traces
from bench.autoscale.sim import RunResult, SimConfig, feasible_share, run
from bench.autoscale.traces import LENGTHS
from tests.unit.bench.helpers import state, view_of

# --------------------------------------------------------------------------- CSV reader


def _csv(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_read_csv__datetimes__relative_seconds(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:50.1805900,396,109\n",
    )
    read = traces.read_csv(path)
    assert read.unit == "datetime"
    assert [r.arrival_s for r in read.requests] == pytest.approx([0.0, 3.5])
    assert read.requests[1].prompt_tokens == 396


def test_read_csv__numbers__seconds_and_milliseconds_detected(tmp_path: Path) -> None:
    seconds = _csv(tmp_path, "TIMESTAMP,ContextTokens,GeneratedTokens\n0,10,5\n1.5,10,5\n", "s.csv")
    millis = _csv(
        tmp_path,
        "TIMESTAMP,ContextTokens,GeneratedTokens\n0,10,5\n1500,10,5\n3600000,10,5\n",
        "ms.csv",
    )
    epoch_ms = _csv(
        tmp_path,
        "TIMESTAMP,ContextTokens,GeneratedTokens\n1700000000000,10,5\n1700000002500,10,5\n",
        "epoch_ms.csv",
    )
    epoch_s = _csv(
        tmp_path,
        "TIMESTAMP,ContextTokens,GeneratedTokens\n1700000000,10,5\n1700000002.5,10,5\n",
        "epoch_s.csv",
    )
    assert traces.read_csv(seconds).unit == "s"
    assert [r.arrival_s for r in traces.read_csv(seconds).requests] == [0.0, 1.5]
    assert traces.read_csv(millis).unit == "ms"
    assert [r.arrival_s for r in traces.read_csv(millis).requests] == [0.0, 1.5, 3600.0]
    assert traces.read_csv(epoch_ms).unit == "ms"
    assert traces.read_csv(epoch_ms).requests[1].arrival_s == pytest.approx(2.5)
    assert traces.read_csv(epoch_s).unit == "s"
    assert traces.read_csv(epoch_s).requests[1].arrival_s == pytest.approx(2.5)
    # A stated unit wins over detection.
    forced = traces.read_csv(seconds, time_unit="ms")
    assert forced.requests[1].arrival_s == pytest.approx(0.0015)


def test_read_csv__messy_rows__skipped_and_counted_rest_sorted(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "\ufeffgeneratedtokens, timestamp ,contexttokens,extra\n"
        "5,30,100,x\n"
        "oops,10,100,x\n"
        "7,nan,100,x\n"
        "0,20,0,x\n"
        "3,,100,x\n"
        "\n"
        "4,-5,-1,x\n"
        "2,10,50\n",
    )
    read = traces.read_csv(path)
    # Rows kept: t=30, t=20 (zero tokens clamped to one), t=10; unsorted input sorted.
    assert read.skipped == 4
    assert [(r.arrival_s, r.prompt_tokens, r.output_tokens) for r in read.requests] == [
        (0.0, 50, 2),
        (10.0, 1, 1),
        (20.0, 100, 5),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        ("a,b,c\n1,2,3\n", "missing column"),
        ("TIMESTAMP,ContextTokens,GeneratedTokens\n", "no readable row"),
        ("TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,1,2\nx,y,z\n", "no readable row"),
    ],
)
def test_read_csv__unusable_file__value_error_with_reason(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        traces.read_csv(_csv(tmp_path, text))


def test_from_csv__single_row__spans_a_minute(tmp_path: Path) -> None:
    trace = traces.from_csv(_csv(tmp_path, "TIMESTAMP,ContextTokens,GeneratedTokens\n5,10,5\n"))
    assert trace.duration_s == traces.MIN_DURATION_S
    assert len(trace.requests) == 1


NASTY = {
    "one_row": "TIMESTAMP,ContextTokens,GeneratedTokens\n5,10,5\n",
    "same_instant": "TIMESTAMP,ContextTokens,GeneratedTokens\n" + "7,300,30\n" * 40,
    "all_too_long": "TIMESTAMP,ContextTokens,GeneratedTokens\n"
    + "".join(f"{i},20000,10\n" for i in range(30)),
    "half_garbage": "TIMESTAMP,ContextTokens,GeneratedTokens\n"
    + "".join(f"{i * 3},{'x' if i % 2 else 900},{50}\n" for i in range(60)),
    "header_only": "TIMESTAMP,ContextTokens,GeneratedTokens\n",
    "wrong_columns": "time,prompt,output\n1,2,3\n",
}


@pytest.mark.parametrize("name", sorted(NASTY))
def test_cli__nasty_csv__status_without_traceback(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _csv(tmp_path, NASTY[name], f"{name}.csv")
    status = cli.main(
        [
            "--trace-csv",
            str(path),
            "--gpus",
            "L4",
            "--policies",
            "oracle,ours,hpa-signals",
            "--jobs",
            "1",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if name in ("header_only", "wrong_columns"):
        assert status == 1
        assert "cannot load a trace" in err
        return
    assert status == 0
    data = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))
    cell = data["cells"][f"L4/{name}"]
    if name == "all_too_long":
        assert cell["infeasible"] == 30
        assert "no request of the trace is feasible" in cell["error"]
        assert "skipped" in (tmp_path / "out" / "results.md").read_text(encoding="utf-8")
    else:
        assert cell["error"] is None
        assert {r["policy"] for r in cell["results"]} == {"oracle", "ours", "hpa-signals"}


# ------------------------------------------------------------------------- feasibility


def test_feasibility__l4__long_prompts_and_oversized_requests_infeasible() -> None:
    feas = oracle.feasibility(L4, 2.0)
    assert feas.max_request_tokens == L4.max_request_tokens
    # L4 prefill runs at a few thousand tokens/s: a 2 s budget ends well below 16k.
    assert 3000 < feas.max_prompt_tokens < 10_000
    assert feas.feasible(feas.max_prompt_tokens, 10)
    assert not feas.feasible(feas.max_prompt_tokens + 1, 10)
    assert not feas.feasible(1000, L4.max_request_tokens)  # over max_model_len
    # The boundary is the replica model's own: one token more misses the SLO when idle.
    from apps.fleetsim.replica import replay

    ttft = replay(L4, [Request(0.0, feas.max_prompt_tokens + 1, 1)])[0].ttft_s
    assert ttft is not None
    assert ttft > 2.0
    # An H100 prefills any prompt that fits its context within 2 s.
    assert oracle.feasibility(H100_80GB, 2.0).max_prompt_tokens == H100_80GB.max_request_tokens - 1


def _long_prompt_mix() -> list[Request]:
    """Chat traffic with every tenth prompt too long to prefill within 2 s on an L4."""
    base = steady(1.0, 600.0, seed=5, lengths=LENGTHS)
    return [
        Request(r.arrival_s, 9000 if i % 10 == 0 else r.prompt_tokens, r.output_tokens)
        for i, r in enumerate(base)
    ]


def test_measure_capacity__infeasible_share_above_one_percent__counted_apart() -> None:
    requests = _long_prompt_mix()
    feas = oracle.feasibility(L4, 2.0)
    with pytest.raises(oracle.NoCapacity):
        oracle.measure_capacity(requests, L4, 2.0, sample=300, iterations=6)
    cap = oracle.measure_capacity(requests, L4, 2.0, sample=300, iterations=6, feasible=feas)
    assert cap.tokens_per_s > 0


def test_run__feasible_flags__attainment_over_feasible_and_overall() -> None:
    requests = _long_prompt_mix()
    flags = oracle.feasibility(L4, 2.0).flags(requests)
    result = run(
        "t", requests, 600.0, policies.Static("s", 4), SimConfig(initial_replicas=4), flags
    )
    assert result.infeasible == len(requests) - sum(flags) > 0
    # Every infeasible request misses, so overall attainment sits below the feasible one.
    assert result.ttft_ok <= sum(flags) / len(requests)
    assert result.ttft_ok_feasible > 0.95
    assert result.ttft_ok_feasible == pytest.approx(result.ttft_ok * len(requests) / sum(flags))


# ------------------------------------------------------------- start, maximum, windows


def test_initial_count__sized_from_the_first_minutes_only() -> None:
    calm = [Request(float(t), 900, 100) for t in range(0, 600)]
    spike_later = calm + [Request(600.0 + t / 50, 900, 100) for t in range(5000)]
    # 1,000 tokens/s over the first 300 s at 400 tokens/s per replica: 2.5, 3 replicas;
    # at 80 % of that capacity 3.125, 4 replicas.
    assert cli.initial_count(calm, 400.0, 300.0, 32, 1.0) == 3
    assert cli.initial_count(calm, 400.0, 300.0, 32) == 4
    assert cli.initial_count(spike_later, 400.0, 300.0, 32) == 4
    assert cli.initial_count(calm, 10.0, 300.0, 32) == 32  # within the maximum


def _plan_for(requests: list[Request], name: str) -> cli.Plan:
    trace = traces.Trace(name, tuple(requests), 600.0, "test")
    cli._TRACES[name] = trace
    cli._FLAGS[name] = [True] * len(requests)
    settings = cli.Settings(oracle_iterations=2, max_replicas=12)
    return cli.make_plan(name, SimConfig(cold_start_s=60.0, max_replicas=10_000), settings)


def test_make_plan__future_surge__same_start_and_maximum() -> None:
    base = steady(1.0, 600.0, seed=2, lengths=LENGTHS)
    # The same first 300 s, then four times the load.
    later = [
        Request(300.0 + r.arrival_s, r.prompt_tokens, r.output_tokens)
        for r in steady(4.0, 300.0, seed=3, lengths=LENGTHS)
    ]
    surge = [r for r in base if r.arrival_s < 300.0] + later
    calm_plan = _plan_for(base, "calm")
    surge_plan = _plan_for(surge, "surge")
    assert surge_plan.oracle_peak > calm_plan.oracle_peak  # the future differs...
    assert surge_plan.max_replicas == calm_plan.max_replicas == 12  # ...the maximum does not
    assert surge_plan.initial == cli.initial_count(
        surge, surge_plan.capacity.tokens_per_s if surge_plan.capacity else 0.0, 300.0, 12
    )
    # Ours starts there, not at the oracle's count.
    result = cli.run_policy("ours", surge_plan, SimConfig(cold_start_s=60.0), cli.Settings())
    assert result.timeline[0][1] == surge_plan.initial


def test_reactive_ideal__future_surge__seen_only_once_it_has_come() -> None:
    calm = steady(1.0, 300.0, seed=2, lengths=LENGTHS)
    later = [
        Request(300.0 + r.arrival_s, r.prompt_tokens, r.output_tokens)
        for r in steady(4.0, 300.0, seed=3, lengths=LENGTHS)
    ]
    plan = _plan_for(calm + later, "surge-reactive")
    settings = cli.Settings(oracle_iterations=2, max_replicas=12)
    result = cli.run_policy("reactive-ideal", plan, SimConfig(cold_start_s=60.0), settings)
    assert result.policy == "reactive-ideal"
    assert result.timeline[0][1] == plan.initial  # the shared start, not the oracle's

    def first_rise(timeline: list[tuple[float, int, int]]) -> float:
        before = max(spec for t, spec, _ in timeline if t < 200.0)
        return min(t for t, spec, _ in timeline if spec > before)

    # The oracle orders the surge's replicas a cold start ahead; the reactive ideal once
    # the windows holding the surge have ended, after it began.
    assert plan.oracle_result is not None
    assert first_rise(plan.oracle_result.timeline) < 300.0 <= first_rise(result.timeline)
    assert report.meets(result, settings.slo_target)  # its headroom is searched to meet it


def test_make_plan__pooling__fitted_to_load_tests_on_4_and_8_replicas_and_given_to_ours() -> None:
    requests = steady(1.0, 600.0, seed=2, lengths=LENGTHS)
    plan = _plan_for(requests, "pooled")
    assert plan.capacity is not None
    assert plan.capacity.pool == 4
    profile = SimConfig().profile()
    on_8 = oracle.measure_capacity(
        requests, profile, 2.0, pool=8, sample=2000, iterations=10, seed=0,
        feasible=oracle.feasibility(profile, 2.0),
    )  # fmt: skip
    assert on_8.tokens_per_s > plan.capacity.tokens_per_s  # 8 replicas do more each
    assert (
        0
        < plan.pooling
        == pytest.approx(engine.pooling_from(4, plan.capacity.tokens_per_s, 8, on_8.tokens_per_s))
    )
    controller = cli.make_controller("ours", plan, SimConfig(cold_start_s=60.0), cli.Settings())
    assert isinstance(controller, policies.OursV2)
    sizing = controller.policy.capacity
    assert (sizing.pooling, sizing.pool_size) == (plan.pooling, 4)
    # Without the second load test nothing is assumed.
    cli._TRACES["alone"], cli._FLAGS["alone"] = cli._TRACES["pooled"], cli._FLAGS["pooled"]
    alone = cli.make_plan(
        "alone",
        SimConfig(cold_start_s=60.0, max_replicas=10_000),
        cli.Settings(oracle_iterations=2, max_replicas=12, pooling_pool=0),
    )
    assert alone.pooling == 0.0


def test_demand_tokens__last_windows__full_length_ending_with_the_trace() -> None:
    requests = [Request(0.5, 100, 10), Request(15.0, 90, 10), Request(29.5, 900, 100)]
    demand = oracle.demand_tokens(requests, 30.0, 10.0, 20.0)
    # The window from 20 s would reach 40 s: it becomes [10, 30), 1,100 tokens over 20 s;
    # neither 1,000 tokens over the 10 s inside the trace nor over [20, 40).
    assert demand == [210 / 20, 1100 / 20, 1100 / 20]
    # A trace shorter than the window averages over the whole trace.
    assert oracle.demand_tokens(requests, 30.0, 10.0, 60.0)[0] == pytest.approx(1210 / 30)


def test_feasible_share__only_flagged_requests_count() -> None:
    def rec(i: int, ttft: float | None) -> RequestRecord:
        return RequestRecord(i, 0.0, 10, 10, ttft is not None, 1.0, "p", ttft, 0.01)

    records = [rec(0, 0.5), rec(1, 3.0), rec(2, 0.5), rec(3, None)]
    assert feasible_share(records, [True, True, True, True], 2.0) == 0.5
    # Request 2 met the SLO but is flagged infeasible: 1 of the 3 feasible ones is in.
    assert feasible_share(records, [True, True, False, True], 2.0) == pytest.approx(1 / 3)
    assert math.isnan(feasible_share(records, [False] * 4, 2.0))


# ------------------------------------------------------------------- gateway queueing


def _backlog() -> list[Request]:
    # 40 long requests at once: an L4's KV cache (~35k tokens) holds about 8 of them.
    return [Request(0.0, 3000, 1000) for _ in range(40)]


def _scaled_up(*, flow_control: bool) -> SimulatedDeployment:
    dep = SimulatedDeployment(
        "d", L4.model_name, "ns", L4, 1, _backlog(), flow_control=flow_control
    )
    dep.advance(1.0)
    dep.scale(2)  # the new replica is ready after the L4's cold start
    Fleet([dep]).run_until_idle()
    return dep


def test_queueing__replica_added_later__takes_over_the_backlog() -> None:
    dep = _scaled_up(flow_control=True)
    by_pod: dict[str, int] = {}
    for record in dep.completed():
        assert record.completed
        by_pod[record.pod] = by_pod.get(record.pod, 0) + 1
    # Every request arrived at 0 s; the replica added at 1 s serves a good share of them.
    assert by_pod.get("d-1", 0) >= 10
    first_on_new = min(r.ttft_s or math.inf for r in dep.completed() if r.pod == "d-1")
    assert first_on_new >= L4.cold_start_s


def test_bound_routing__replica_added_later__gets_none_of_the_backlog() -> None:
    dep = _scaled_up(flow_control=False)
    assert {r.pod for r in dep.completed()} == {"d-0"}


def test_queueing__gateway_admits_only_what_a_replica_can_hold() -> None:
    dep = SimulatedDeployment("d", L4.model_name, "ns", L4, 1, _backlog(), flow_control=True)
    dep.advance(1.0)
    replica = dep.replicas[0]
    held = replica.outstanding
    assert 0 < held < 40
    assert held * 4000 <= L4.kv_cache_tokens
    assert dep.gateway_queue_length == 40 - held


def test_run__routing__queue_default_bind_kept() -> None:
    assert SimConfig().routing == "queue"
    with pytest.raises(ValueError, match="routing"):
        SimConfig(routing="random")
    requests = steady(1.0, 300.0, seed=1, lengths=LENGTHS)
    bound = run(
        "t", requests, 300.0, policies.Static("s", 2), SimConfig(initial_replicas=2, routing="bind")
    )
    assert bound.ttft_ok > 0.9


# ------------------------------------------------------------------- HPA on our signals


def test_hpa_on_signals__larger_of_queue_and_kv_proposals() -> None:
    hpa = policies.HpaOnSignals("hpa-signals", queue_target=1.0, kv_target=0.5)
    kv_bound = [{"spec": 4, "ready": 4, "waiting": 2.0, "kv_avg": 0.75}] * 20
    # Queue: 2 waiting / 4 replicas = 0.5 per replica -> 2; KV: 4 x 0.75 / 0.5 = 6.
    assert hpa.decide(view_of(kv_bound, 20.0), state(20.0, 4)) == 6
    hpa = policies.HpaOnSignals("hpa-signals", queue_target=1.0, kv_target=0.5)
    queue_bound = [{"spec": 4, "ready": 4, "waiting": 7.0, "kv_avg": 0.5}] * 20
    # Queue: 7 / 4 / 1 = 1.75 -> 7 (capped at the HPA's doubling: 8).
    assert hpa.decide(view_of(queue_bound, 20.0), state(20.0, 4)) == 7


# ----------------------------------------------------------------- checks and summary


def _result(policy: str, ok: float, gpu_hours: float, at_max: float = 0.0) -> RunResult:
    return RunResult(
        "t", policy, 1000, ok * 0.9, 1.0, 0.3, 1.0, 1.9, gpu_hours, gpu_hours, 3, 1, 9, 0, 0,
        0.1, infeasible=100, ttft_ok_feasible=ok, at_max=at_max,
    )  # fmt: skip


def test_check_targets__slo_missed__cost_targets_not_met_even_if_cheap() -> None:
    results = [
        _result("ours", 0.95, 5.0),
        _result("oracle", 0.99, 10.0),
        _result("kpa", 0.995, 12.0),
    ]
    check = report.check_targets(results, slo_target=0.99)
    assert check is not None
    assert (check.oracle_ratio, check.baseline_ratio) == (0.5, 5.0 / 12.0)
    assert not check.slo_met
    assert not check.oracle_met
    assert not check.baseline_met
    text = report.describe_check(check, 0.99)
    assert "met" not in text.replace("not met", "").replace("MISSED", "")


def test_check_targets__clairvoyant_statics__never_the_baseline() -> None:
    results = [
        _result("ours", 0.995, 10.0),
        _result("oracle", 0.99, 9.5),
        _result("static-peak", 0.999, 10.5),
        _result("static-mean", 0.995, 9.0),
        _result("hpa-signals", 0.993, 20.0),
    ]
    check = report.check_targets(results, slo_target=0.99)
    assert check is not None
    assert check.cheapest_baseline == "hpa-signals"
    assert check.baseline_met
    assert check.oracle_met


def test_check_targets__feasible_attainment_decides() -> None:
    # 99.5 % of the feasible requests, 89.55 % of all: the SLO counts as met.
    check = report.check_targets([_result("ours", 0.995, 1.0)], slo_target=0.99)
    assert check is not None
    assert check.slo_met


def test_summarize_matrix__min_cells_geomeans_and_time_at_max() -> None:
    cells = [
        [
            _result("oracle", 0.99, 10.0),
            _result("ours", 0.995, 12.0, 0.1),
            _result("kpa", 0.99, 15.0),
        ],
        [_result("oracle", 0.99, 4.0), _result("ours", 0.97, 2.0, 0.0), _result("kpa", 0.98, 8.0)],
    ]
    rows = {s.policy: s for s in report.summarize_matrix(cells, 0.99)}
    ours = rows["ours"]
    assert ours.min_attainment == 0.97
    assert (ours.cells_meeting, ours.cells) == (1, 2)
    assert ours.vs_oracle == pytest.approx(math.sqrt(1.2 * 0.5))
    assert (ours.vs_baseline, ours.baseline_cells) == (pytest.approx(0.8), 1)
    assert ours.at_max_worst == 0.1
    assert (ours.vs_reactive, ours.reactive_cells) == (None, 0)
    text = report.summary_table(list(rows.values()), 0.99)
    assert "oracle (reference)" in text
    assert "reactive ideal" not in text  # no column for a reference that did not run


def test_summarize_matrix__against_the_reactive_ideal__only_cells_it_meets() -> None:
    cells = [
        [_result("oracle", 0.99, 10.0), _result("reactive-ideal", 0.99, 12.0)],
        [_result("oracle", 0.99, 4.0), _result("reactive-ideal", 0.98, 5.0)],
    ]
    cells[0].append(_result("ours", 0.995, 15.0))
    cells[1].append(_result("ours", 0.995, 4.0))
    rows = {s.policy: s for s in report.summarize_matrix(cells, 0.99)}
    assert (rows["ours"].vs_reactive, rows["ours"].reactive_cells) == (pytest.approx(1.25), 1)
    assert rows["reactive-ideal"].vs_oracle == pytest.approx(math.sqrt(1.2 * 1.25))
    text = report.summary_table(list(rows.values()), 0.99)
    assert "GPU-h vs reactive ideal, geomean (cells)" in text.splitlines()[0]
    assert "| reactive-ideal (reference) |" in text
    assert "| 1.25x (1) |" in text


# ---------------------------------------------------------------------------- matrix


def test_cli__tiny_matrix__summary_and_cells(tmp_path: Path) -> None:
    out = tmp_path / "m"
    status = cli.main(
        [
            "--gpus",
            "L4,H100-80GB",
            "--workloads",
            "code",
            "--seeds",
            "0",
            "--duration",
            "240",
            "--policies",
            "oracle,reactive-ideal,ours,static-peak,hpa-signals",
            "--jobs",
            "1",
            "--out",
            str(out),
        ]
    )
    assert status == 0
    data = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert set(data["cells"]) == {"L4/code/s0", "H100-80GB/code/s0"}
    l4 = data["cells"]["L4/code/s0"]
    assert l4["infeasible"] > 0  # long code prompts an L4 cannot prefill within 2 s
    assert data["cells"]["H100-80GB/code/s0"]["infeasible"] == 0
    assert {s["policy"] for s in data["summary"]} == {
        "oracle",
        "reactive-ideal",
        "ours",
        "static-peak",
        "hpa-signals",
    }
    assert data["config"]["routing"] == "queue"
    text = (out / "results.md").read_text(encoding="utf-8")
    assert "## Summary" in text
    assert "gateway queueing" in text
    assert "static-peak (reference)" in text
    assert "reactive-ideal (reference)" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seeds", "one,two"], "--seeds must be"),
        (["--gpus", "Z80"], "unknown GPU profile"),
        (["--max-replicas", "0"], "at least 1"),
        (["--workloads", "chat,nope"], "unknown workload"),
        (["--standby-utilization", "1.5"], "between 0 and 1"),
    ],
)
def test_cli__bad_arguments__status_1_with_reason(
    tmp_path: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([*args, "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_read_csv__iso_datetimes_with_offsets__one_timeline(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16T18:00:00Z,10,5\n"
        "2023-11-16T19:00:30+01:00,10,5\n"  # 18:00:30 UTC
        "2023-11-16 18:01:00,10,5\n",  # naive: read as UTC
    )
    read = traces.read_csv(path)
    assert read.unit == "datetime"
    assert [r.arrival_s for r in read.requests] == [0.0, 30.0, 60.0]
