"""The toggle evaluator: reasons, conditions, splits, and its invariants (hypothesis)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.toggles.evaluation import (
    BUCKETS,
    Condition,
    DefinitionError,
    ErrorCode,
    FlagDefinition,
    Op,
    Override,
    Reason,
    Rule,
    SplitArm,
    ValueType,
    bucket_of,
    condition_holds,
    evaluate,
    rules_parse,
    split_pick,
)


def flag(**kwargs: Any) -> FlagDefinition:
    fields: dict[str, Any] = {
        "key": "max_output_tokens",
        "value_type": ValueType.NUMBER,
        "enabled": True,
        "value": 512,
        "off_value": 0,
    }
    fields.update(kwargs)
    return FlagDefinition(**fields)


def test_evaluate__no_rules__static_value():
    result = evaluate(flag(), {})
    assert (result.value, result.variant, result.reason) == (512, "default", Reason.STATIC)


def test_evaluate__disabled__off_value_disabled():
    result = evaluate(flag(enabled=False), {"tier": "free"})
    assert (result.value, result.variant, result.reason) == (0, "off", Reason.DISABLED)


def test_evaluate__override__wins_over_disabled_and_rules():
    rule = Rule(conditions=(Condition("tier", Op.EQ, "free"),), value=128)
    override = Override(value=256, level=2, source="policy:chat-degrade")
    result = evaluate(flag(enabled=False, rules=(rule,), override=override), {"tier": "free"})
    assert (result.value, result.variant, result.reason) == (256, "level-2", Reason.STATIC)
    assert result.metadata["degradationLevel"] == 2
    assert result.metadata["source"] == "policy:chat-degrade"


def test_evaluate__first_matching_rule__targeting_match():
    rules = (
        Rule(conditions=(Condition("tier", Op.EQ, "free"),), value=128, variant="free-cap"),
        Rule(conditions=(Condition("tier", Op.IN, ["free", "pro"]),), value=1024),
    )
    free = evaluate(flag(rules=rules), {"tier": "free"})
    pro = evaluate(flag(rules=rules), {"tier": "pro"})
    other = evaluate(flag(rules=rules), {"tier": "enterprise"})
    assert (free.value, free.variant, free.reason) == (128, "free-cap", Reason.TARGETING_MATCH)
    assert (pro.value, pro.variant, pro.reason) == (1024, "rule-2", Reason.TARGETING_MATCH)
    assert (other.value, other.reason) == (512, Reason.DEFAULT)


def test_evaluate__split_without_targeting_key__error():
    rule = Rule(split=(SplitArm("a", 1, 50), SplitArm("b", 2, 50)))
    result = evaluate(flag(rules=(rule,)), {"tier": "free"})
    assert result.reason == Reason.ERROR
    assert result.error_code == ErrorCode.TARGETING_KEY_MISSING


def test_evaluate__stored_value_of_wrong_type__type_mismatch():
    result = evaluate(flag(value="lots"), {})
    assert (result.reason, result.error_code) == (Reason.ERROR, ErrorCode.TYPE_MISMATCH)


@pytest.mark.parametrize(
    ("op", "expected", "actual", "holds"),
    [
        (Op.EQ, "eu", "eu", True),
        (Op.EQ, "eu", "us", False),
        (Op.NE, "eu", "us", True),
        (Op.EQ, 3, "3", True),  # numbers and their text compare equal
        (Op.EQ, True, "true", True),
        (Op.IN, ["a", "b"], "b", True),
        (Op.NOT_IN, ["a", "b"], "b", False),
        (Op.MATCHES, "eu-.*", "eu-west-1", True),
        (Op.MATCHES, "eu-.*", "us-eu-1", False),  # the whole value must match
        (Op.GT, 10, 11, True),
        (Op.GT, 10, "11.5", True),
        (Op.GE, 10, 10, True),
        (Op.LT, 10, 10, False),
        (Op.LE, 10, "ten", False),  # not a number: does not hold
        (Op.GT, 10, True, False),  # a boolean is not a number
        (Op.EQ, "x", {"nested": 1}, False),
    ],
)
def test_condition_holds__operators(op: Op, expected: Any, actual: Any, holds: bool):
    assert condition_holds(Condition("attr", op, expected), {"attr": actual}) is holds


def test_condition_holds__missing_attribute__false_even_for_negations():
    assert condition_holds(Condition("region", Op.NE, "eu"), {}) is False
    assert condition_holds(Condition("region", Op.NOT_IN, ["eu"]), {}) is False


def test_bucket_of__stable_and_salted():
    assert bucket_of(salt="k#0", targeting_key="user-1") == bucket_of(
        salt="k#0", targeting_key="user-1"
    )
    buckets = {bucket_of(salt=f"k#{i}", targeting_key="user-1") for i in range(20)}
    assert len(buckets) > 1


def test_split__ten_thousand_keys__within_two_percent_of_weights():
    rule = Rule(split=(SplitArm("a", 1, 20), SplitArm("b", 2, 30), SplitArm("c", 3, 50)))
    counts = {"a": 0, "b": 0, "c": 0}
    for i in range(10_000):
        counts[evaluate(flag(rules=(rule,)), {"targetingKey": f"user-{i}"}).variant] += 1
    assert abs(counts["a"] - 2_000) <= 200
    assert abs(counts["b"] - 3_000) <= 200
    assert abs(counts["c"] - 5_000) <= 200


def test_rules_parse__valid__round_trip():
    rules = rules_parse(
        [
            {"conditions": [{"attribute": "tier", "op": "eq", "value": "free"}], "value": 64},
            {"split": [{"variant": "x", "value": 1, "weight": 1}], "salt": "s"},
        ],
        value_type=ValueType.NUMBER,
    )
    assert rules[0].conditions == (Condition("tier", Op.EQ, "free"),)
    assert rules[1].split == (SplitArm("x", 1, 1.0),)
    assert rules[1].salt == "s"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"value": 1}, "expected a list"),
        ([{"value": 1, "split": []}], "exactly one of"),
        ([{"value": "x"}], "rules[0].value: expected a number"),
        ([{"conditions": [{"attribute": "a", "op": "like", "value": "x"}], "value": 1}], "like"),
        (
            [{"conditions": [{"attribute": "a", "op": "matches", "value": "(a"}], "value": 1}],
            "invalid regular expression",
        ),
        (
            [{"conditions": [{"attribute": "a", "op": "matches", "value": "(?<=a)b"}], "value": 1}],
            "invalid regular expression",
        ),
        ([{"conditions": [{"attribute": "a", "op": "gt", "value": "x"}], "value": 1}], "number"),
        ([{"conditions": [{"attribute": "a", "op": "in", "value": "x"}], "value": 1}], "list"),
        ([{"split": [{"value": 1, "weight": 0}]}], "add up to 0"),
        ([{"split": [{"value": 1, "weight": -1}]}], ">= 0"),
        ([{"split": [{"value": True, "weight": 1}]}], "expected a number"),
        ([{"value": 1, "extra": 2}], "unknown field"),
    ],
)
def test_rules_parse__invalid__names_the_problem(raw: Any, message: str):
    with pytest.raises(DefinitionError, match=message.replace("[", r"\[").replace("]", r"\]")):
        rules_parse(raw, value_type=ValueType.NUMBER)


# --- invariants ---------------------------------------------------------------------------

attribute_values = st.one_of(
    st.text(max_size=8), st.integers(-100, 100), st.booleans(), st.floats(-1e3, 1e3)
)
contexts = st.dictionaries(
    st.sampled_from(["tier", "region", "priority", "targetingKey"]), attribute_values, max_size=4
)
conditions = st.builds(
    Condition,
    st.sampled_from(["tier", "region", "priority"]),
    st.sampled_from([Op.EQ, Op.NE, Op.GT, Op.LE]),
    st.one_of(st.text(max_size=4), st.integers(-10, 10)),
)
arms = st.lists(
    st.builds(SplitArm, st.text(min_size=1, max_size=4), st.integers(0, 99), st.integers(1, 9)),
    min_size=1,
    max_size=4,
)
rules = st.one_of(
    st.builds(Rule, st.tuples(conditions), st.integers(0, 99)),
    st.builds(lambda c, a: Rule(conditions=c, split=tuple(a)), st.tuples(conditions), arms),
)
flags = st.builds(
    flag,
    enabled=st.booleans(),
    value=st.integers(0, 99),
    rules=st.lists(rules, max_size=3).map(tuple),
    override=st.none() | st.builds(Override, st.integers(0, 99), st.integers(1, 5), st.just("p")),
)


@settings(max_examples=300, deadline=None)
@given(flags, contexts)
def test_evaluate__any_flag_and_context__well_formed_and_deterministic(f, ctx):
    first, second = evaluate(f, ctx), evaluate(f, dict(ctx))
    assert first == second
    if first.reason == Reason.ERROR:
        assert first.error_code is not None
        assert first.value is None
    else:
        assert first.error_code is None
        assert isinstance(first.value, int)
        assert first.variant
    if f.override is not None:
        assert (first.value, first.reason) == (f.override.value, Reason.STATIC)
    elif not f.enabled:
        assert (first.value, first.reason) == (f.off_value, Reason.DISABLED)
    elif not f.rules:
        assert (first.value, first.reason) == (f.value, Reason.STATIC)


@settings(max_examples=200, deadline=None)
@given(arms, st.integers(0, BUCKETS - 1))
def test_split_pick__any_bucket__an_arm_with_weight(a, bucket):
    assert split_pick(a, bucket).weight > 0


@settings(max_examples=100, deadline=None)
@given(arms)
def test_split_pick__buckets__shares_proportional_to_weights(a):
    total = sum(arm.weight for arm in a)
    counts: dict[int, int] = {}
    for bucket in range(BUCKETS):
        index = a.index(split_pick(a, bucket))
        counts[index] = counts.get(index, 0) + 1
    for index, arm in enumerate(a):
        if a.index(arm) != index:
            continue  # equal arms: counted under the first
        same = sum(x.weight for x in a if x == arm)
        assert abs(counts.get(index, 0) - BUCKETS * same / total) <= len(a)
