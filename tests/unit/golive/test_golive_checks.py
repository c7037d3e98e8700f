"""The go-live checks' pure evaluation: what passes, fails and is unknown."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.golive import checks
from apps.golive.checks import CHECKS, DecisionSeen, GatewaySeen, LoadTestSeen, SignalSeen

MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def test_served_version__name_served__pass_and_version_not_exposed_said():
    out = checks.served_version(
        [{"id": MODEL, "object": "model"}], expected_name=MODEL, expected_version="v1"
    )
    assert out.status == "pass"
    assert "exposes no version" in out.message
    assert out.observed["served"] == [MODEL]


def test_served_version__other_name__fail_naming_both():
    out = checks.served_version([{"id": "llama"}], expected_name=MODEL, expected_version="v1")
    assert out.status == "fail"
    assert "llama" in out.message
    assert MODEL in out.message


@pytest.mark.parametrize(
    ("entry", "status"),
    [
        ({"id": MODEL, "version": "v2"}, "fail"),
        ({"id": MODEL, "version": "v1"}, "pass"),
        ({"id": f"{MODEL}:v1"}, "pass"),
        ({"id": f"{MODEL}@v2"}, "fail"),
    ],
)
def test_served_version__version_exposed__compared(entry, status):
    assert (
        checks.served_version([entry], expected_name=MODEL, expected_version="v1").status == status
    )


def test_served_version__unreachable__unknown_with_reason():
    out = checks.served_version(
        None, expected_name=MODEL, expected_version="v1", error="ConnectionError"
    )
    assert out.status == "unknown"
    assert "ConnectionError" in out.message


def test_artifacts__file_list_digest__matches_sha256sum_listing():
    files = [{"path": "b.safetensors", "sha256": "b" * 64}, {"path": "a.json", "sha256": "a" * 64}]
    listing = f"{'a' * 64}  a.json\n{'b' * 64}  b.safetensors\n"
    checksum = "sha256:" + hashlib.sha256(listing.encode()).hexdigest()
    assert checks.manifest_digest(files) == checksum
    assert checks.artifacts({"files": files, "digest": ""}, checksum=checksum).status == "pass"
    other = [{"path": "a.json", "sha256": "c" * 64}, files[0]]
    assert checks.artifacts({"files": other, "digest": ""}, checksum=checksum).status == "fail"


def test_artifacts__no_report_or_no_checksum__fail():
    assert checks.artifacts(None, checksum="sha256:" + "0" * 64).status == "fail"
    report = {"files": [], "digest": "sha256:" + "0" * 64}
    assert checks.artifacts(report, checksum="").status == "fail"
    assert checks.artifacts(report, checksum="sha256:" + "0" * 64).status == "pass"


@pytest.mark.parametrize(
    ("gpu_type", "product", "matches"),
    [
        ("a100-80gb", "NVIDIA A100-SXM4-80GB", True),
        ("a100-40gb", "NVIDIA A100-SXM4-80GB", False),
        ("h100-80gb", "NVIDIA H100 80GB HBM3", True),
        ("l4", "NVIDIA L4", True),
        ("l4", "NVIDIA L40S", False),
        ("l40s", "NVIDIA L40S", True),
        ("a10g", "NVIDIA A10G", True),
        ("other", "NVIDIA A10G", None),
    ],
)
def test_gpu_matches__dcgm_model_names(gpu_type, product, matches):
    assert checks.gpu_matches(gpu_type, product) == matches


def test_gpu_environment__type_count_replicas():
    two = {"p0": ["NVIDIA A100-SXM4-80GB"], "p1": ["NVIDIA A100-SXM4-80GB"]}
    kwargs = {"gpu_type": "a100-80gb", "gpus_per_replica": 1}
    assert checks.gpu_environment(two, replicas=2, **kwargs).status == "pass"
    assert checks.gpu_environment(two, replicas=3, **kwargs).status == "fail"
    wrong = checks.gpu_environment(two, replicas=2, gpu_type="h100-80gb", gpus_per_replica=1)
    assert wrong.status == "fail"
    assert "A100" in wrong.message
    short = checks.gpu_environment(two, replicas=2, gpu_type="a100-80gb", gpus_per_replica=2)
    assert short.status == "fail"
    assert "2 GPU" in short.message
    assert checks.gpu_environment({}, replicas=None, **kwargs).status == "fail"
    assert checks.gpu_environment(None, replicas=None, error="down", **kwargs).status == "unknown"


def test_scaling_policy__decision_at_max_without_load__fail():
    sane = [DecisionSeen(1, 8, 0.0), DecisionSeen(8, 8, 40.0), DecisionSeen(8, 8, None)]
    assert checks.scaling_policy(
        exists=True, mode="dry-run", invalid="", decisions=sane
    ).status == ("pass")
    bad = [*sane, DecisionSeen(8, 8, 0.0)]
    out = checks.scaling_policy(exists=True, mode="dry-run", invalid="", decisions=bad)
    assert out.status == "fail"
    assert out.observed["at_max_without_load"] == 1
    assert checks.scaling_policy(exists=False, mode="", invalid="", decisions=[]).status == "fail"
    assert checks.scaling_policy(exists=True, mode="x", invalid="no", decisions=sane).status == (
        "fail"
    )
    assert checks.scaling_policy(exists=True, mode="x", invalid="", decisions=[]).status == (
        "unknown"
    )


def test_balancing__gateways_current_or_not():
    assert checks.balancing(policy_exists=False, gateways=[]).status == "fail"
    assert checks.balancing(policy_exists=True, gateways=[]).status == "pass"
    good = [GatewaySeen("edge", True)]
    assert checks.balancing(policy_exists=True, gateways=good).status == "pass"
    stale = [*good, GatewaySeen("edge2", False)]
    assert checks.balancing(policy_exists=True, gateways=stale).status == "fail"
    unsure = [GatewaySeen("edge", None, "members: down")]
    assert checks.balancing(policy_exists=True, gateways=unsure).status == "unknown"


def test_credentials_and_tls():
    assert checks.credentials(cluster=None, stored_secrets=[], reference="").status == "pass"
    inline = checks.credentials(cluster="c", stored_secrets=["kubeconfig"], reference="x")
    assert inline.status == "fail"
    assert "kubeconfig" in inline.message
    assert checks.credentials(cluster="c", stored_secrets=[], reference="path").status == "pass"
    assert checks.tls(endpoint_url="http://x", require_tls=False).status == "pass"
    assert checks.tls(endpoint_url="http://x", require_tls=True).status == "fail"
    assert checks.tls(endpoint_url="", require_tls=True).status == "fail"
    assert checks.tls(endpoint_url="HTTPS://x", require_tls=True).status == "pass"


def test_load_test__latest_passed_and_recent():
    day = 86400.0
    assert checks.load_test("stress", None, max_age_s=day).status == "fail"
    ok = LoadTestSeen(1, "done", True, 60.0, capacity=3.5)
    out = checks.load_test("stress", ok, max_age_s=day)
    assert out.status == "pass"
    assert "3.50" in out.message
    old = LoadTestSeen(1, "done", True, 2 * day)
    assert checks.load_test("functional", old, max_age_s=day).status == "fail"
    failed = LoadTestSeen(1, "failed", False, 1.0, error="PlanInvalid: rate")
    assert "PlanInvalid" in checks.load_test("performance", failed, max_age_s=day).message


def test_signals__missing_or_stale__fail_listing_them():
    fresh = SignalSeen("ok", 5.0)
    seen = {"queue_length": fresh, "ttft_p95": SignalSeen("ok", 500.0)}
    out = checks.signals(
        seen, expected=["queue_length", "ttft_p95", "kv_cache_usage"], max_age_s=60
    )
    assert out.status == "fail"
    assert out.observed["missing"] == ["ttft_p95", "kv_cache_usage"]
    assert checks.signals({"a": fresh}, expected=["a"], max_age_s=60).status == "pass"
    assert checks.signals(None, expected=["a"], max_age_s=60).status == "fail"
    down = checks.signals(None, expected=["a"], max_age_s=60, collection_error="refused")
    assert down.status == "unknown"


def test_alert_routing__needs_rule_route_and_tested_channel():
    tested = checks.ChannelSeen("ops", routed=True, test_delivered=True)
    untested = checks.ChannelSeen("ops", routed=True, test_delivered=False)
    unrouted = checks.ChannelSeen("ops", routed=False, test_delivered=True)
    assert checks.alert_routing(rules=1, slos=0, channels=[tested]).status == "pass"
    assert checks.alert_routing(rules=0, slos=0, channels=[tested]).status == "fail"
    assert checks.alert_routing(rules=0, slos=1, channels=[untested]).status == "fail"
    assert checks.alert_routing(rules=1, slos=1, channels=[unrouted]).status == "fail"


def test_logs__recent_line_passes():
    assert checks.logs(last_line_age_s=3.0, max_age_s=60).status == "pass"
    assert checks.logs(last_line_age_s=300.0, max_age_s=60).status == "fail"
    assert checks.logs(last_line_age_s=None, max_age_s=60).status == "fail"
    assert checks.logs(last_line_age_s=None, max_age_s=60, error="down").status == "unknown"


statuses = st.sampled_from(["pass", "fail", "unknown"])
keys = st.sampled_from([c.key for c in CHECKS])
status_maps = st.dictionaries(keys, statuses)


@given(status_maps)
def test_gate_failures__open_iff_every_required_check_passes(latest):
    failures = checks.gate_failures(latest)
    required = [c.key for c in CHECKS if c.required]
    assert (not failures) == all(latest.get(k) == "pass" for k in required)
    assert all(f["status"] != "pass" for f in failures)


@given(status_maps, status_maps)
def test_regressions_and_recoveries__disjoint_and_directional(before, after):
    down = checks.regressions(before, after)
    up = checks.recoveries(before, after)
    assert not set(down) & set(up)
    assert all(before.get(k) == "pass" and after.get(k) == "fail" for k in down)
    assert all(after.get(k) == "pass" and before.get(k) != "pass" for k in up)
