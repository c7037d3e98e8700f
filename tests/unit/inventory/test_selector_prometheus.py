"""Deployment selectors agree with Prometheus itself (promtool, the Debian 'prometheus'
package): what we accept it accepts, what we refuse it refuses, and a value reads the same.

The whole file is skipped where promtool is not installed."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from apps.inventory.label_matchers import (
    MatcherError,
    parse_matchers,
    render_selector,
    validate_selector,
)
from apps.metrics.collection import Target, plan_queries

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package 'prometheus')"
)

ACCEPTED = [
    '{deployment="chat"}',
    r'{deployment="caf\u00e9"}',
    r'{deployment="\x41\102C", namespace!="x"}',
    r"{deployment='it\'s'}",
    r'{deployment="say \"hi\"", tab="a\tb"}',
    '{deployment=`raw \\d+ "quoted"`}',
    r'{deployment=~"chat-\\d+"}',
    r"{deployment=~`chat-\d+|embed`}",
    r'{deployment=~"(?i)CHAT.*", pod!~"\\pL{2,5}-x"}',
    r'{deployment=~"\\Q.*\\E"}',
    r'{deployment=~"[[:alpha:]]+(?:-[0-9]{1,3})?"}',
    r'{deployment=~"a\\z|b\\Ac"}',
]

REFUSED = [
    r'{deployment=~"(?<=x)y"}',  # lookbehind
    r'{deployment=~"(?<!x)y"}',
    r'{deployment=~"x(?=y)"}',  # lookahead
    r'{deployment=~"x(?!y)"}',
    r'{deployment=~"(x)\\1"}',  # backreference
    r"{deployment=~`(x)\1`}",
    r'{deployment=~"chat-x*+"}',  # possessive quantifiers
    r'{deployment=~"x++"}',
    r'{deployment=~"(?>x)"}',  # atomic group
    r'{deployment=~"x\\Z"}',
    r'{deployment=~"\\C"}',  # one byte: C++ RE2 has it, Go does not
    r'{deployment="\d"}',  # unknown string escapes
    r'{deployment="it\'s"}',
    r"{deployment='say \"'}",
    r'{deployment="\400"}',
    r'{deployment="\ud800"}',
    '{deployment="two\nlines"}',
]


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60)


def _rules_file(path: Path, selectors: list[str], *, wrap: bool = True) -> Path:
    exprs = [f"up{s}" if wrap else s for s in selectors]
    rules = [{"record": f"sel:{i}", "expr": e} for i, e in enumerate(exprs)]
    # Not ASCII-escaped: Go's YAML refuses the surrogate pairs json would write for emoji.
    doc = {"groups": [{"name": "selectors", "rules": rules}]}
    path.write_text(json.dumps(doc, ensure_ascii=False))
    return path


def test_selector__accepted_here__accepted_by_prometheus_as_typed_and_as_stored(tmp_path):
    stored = [render_selector(validate_selector(s)) for s in ACCEPTED]
    result = _promtool("check", "rules", str(_rules_file(tmp_path / "r.yml", ACCEPTED + stored)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {2 * len(ACCEPTED)} rules found" in result.stdout


@pytest.mark.parametrize("selector", REFUSED)
def test_selector__refused_here__refused_by_prometheus(selector, tmp_path):
    with pytest.raises(MatcherError):
        validate_selector(selector)
    result = _promtool("check", "rules", str(_rules_file(tmp_path / "r.yml", [selector])))
    assert result.returncode != 0
    assert "parse error" in result.stdout + result.stderr


def _every_char_escaped(value: str) -> str:
    """A spelling of ``value`` that owes nothing to our own quoting: one \\U per character."""
    return '"' + "".join(f"\\U{ord(ch):08x}" for ch in value) + '"'


def test_selector__escaped_values__prometheus_reads_the_values_we_store(tmp_path):
    """Prometheus holds series whose label value is what we decoded; the selector as the user
    typed it and as we store it must each select exactly that series."""
    typed = [
        r'{a="caf\u00e9"}',
        r'{a="\x41\102\u0043\U0001F600"}',
        r'{a="\xc3\xa9t\xc3\xa9"}',
        r'{a="line\nbreak\ttab \"q\" back\\slash"}',
        r"{a='single \' and \"'}".replace('\\"', '"'),
        "{a=`raw \\n \\u00e9`}",
        '{a="bell\\a del\\x7f nbsp\\u00a0 c1\\u0085"}',
    ]
    values = [parse_matchers(t)[0].value for t in typed]
    assert values[0] == "café"  # not "caf\\u00e9"
    series = [{"series": f"up{{a={_every_char_escaped(v)}}}", "values": "1"} for v in values]
    checks = []
    for text in typed:
        stored = render_selector(validate_selector(text))
        for selector in (text, stored):
            checks.append(
                {
                    "expr": f"count(up{selector})",
                    "eval_time": "0m",
                    "exp_samples": [{"labels": "{}", "value": 1}],
                }
            )
    spec = {
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": checks}],
    }
    path = tmp_path / "t.yml"
    path.write_text(json.dumps(spec, ensure_ascii=False))
    result = _promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def _stored(value: str) -> str:
    return render_selector(validate_selector(f"{{deployment={_every_char_escaped(value)}}}"))


def test_planned_queries__values_with_newline_quote_and_backslash__parsed_by_prometheus(tmp_path):
    """The metric queries built from stored selectors quote values as selectors do: one
    deployment gives an equality matcher, several an alternation of escaped values."""
    values = ["line\nbreak", 'say "hi"', "back\\slash", "tab\there", "café"]
    targets = [Target(1, "vllm", _stored(values[0]), "http://127.0.0.1:9")]
    targets += [
        Target(i, "sglang", _stored(value), "http://127.0.0.1:9")
        for i, value in enumerate(values, start=2)
    ]
    promql = [q.promql for q in plan_queries(targets, ["request_rate"], window="1m")]
    assert len(promql) >= 2
    result = _promtool("check", "rules", str(_rules_file(tmp_path / "r.yml", promql, wrap=False)))
    assert result.returncode == 0, result.stdout + result.stderr
