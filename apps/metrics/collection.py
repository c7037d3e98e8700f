"""Batched collection, as pure functions: plan the queries, map the answers.

A deployment is identified in Prometheus by the *equality* matchers of its selector
(``{namespace="llm", deployment="chat"}`` → labels ``namespace, deployment``). Deployments
that share a Prometheus, a framework and the same identity label names form one group, and
each group costs one query per signal whatever its size: the query aggregates ``by`` the
identity labels and each answer series is mapped back to its deployment by those labels'
values. Deployments whose selector has no equality matcher cannot be told apart in a
grouped answer; they get a query of their own (rare, and reported in the plan).

Freshness: an instant query stamps every answer with the evaluation time, not with the time
of the samples behind it, so a group also asks for ``max by (...) (timestamp(<metric>))`` of
one always-present gauge: the time of each deployment's last scrape. Data older than the
staleness limit is "missing", never a number.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import structlog

from apps.integrations.prometheus.types import InstantSample
from apps.inventory.label_matchers import Matcher, MatcherError, parse_matchers, quote_string

from .catalogue import FRESHNESS_METRIC, GPU_SIGNALS, render, template_for

logger = structlog.get_logger("controlplane.metrics")

# Above this many deployments in a group, the query selects the identity labels with
# `label!=""` instead of listing every value in a regex, to keep queries short.
MAX_REGEX_VALUES = 500


@dataclass(frozen=True)
class Target:
    """What the collector needs to know about one deployment."""

    deployment_id: int
    framework: str
    selector: str
    prometheus_url: str
    custom: dict[str, str] = field(default_factory=dict)  # signal -> own PromQL

    def matchers(self) -> list[Matcher]:
        return list(_parsed_selector(self.selector))


@lru_cache(maxsize=100_000)
def _parsed_selector(selector: str) -> tuple[Matcher, ...]:
    # Every cycle plans the same selectors again; parsing them dominated planning at 10k
    # deployments. Matchers are immutable, so the parsed form can be shared.
    # Prometheus checks the regexes of the queries built from it; a stored selector it
    # refuses fails its own queries, not the planning of every deployment's.
    return tuple(parse_matchers(selector, check_regex=False))


@dataclass(frozen=True)
class Query:
    promql: str
    signal: str  # a catalogue signal, or "__freshness__"
    prometheus_url: str
    identity: tuple[str, ...]  # labels the answer is grouped by ("" = single deployment)
    members: dict[tuple[str, ...], int]  # identity values -> deployment id


@dataclass(frozen=True)
class Observation:
    """One signal of one deployment as collected, and as stored (``as_dict``/``from_dict``)."""

    value: float | None
    timestamp: float | None  # when the data behind it was scraped (unix seconds)
    status: str  # ok | missing | stale | unsupported | unavailable
    reason: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "value": self.value,
            "ts": self.timestamp,
            "status": self.status,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, item: Mapping[str, Any]) -> Observation:
        """The stored form back; a key left out reads as unknown (no value, no time,
        status "missing")."""
        value, ts = item.get("value"), item.get("ts")
        return cls(
            value=None if value is None else float(value),
            timestamp=None if ts is None else float(ts),
            status=str(item.get("status", "missing")),
            reason=str(item.get("reason", "")),
        )

    @property
    def ok_value(self) -> float | None:
        """The value when it can be used (status ok), else None."""
        return self.value if self.status == "ok" else None

    def age_s(self, now: float) -> float | None:
        """Seconds since the data behind it was scraped (never negative); None if unknown."""
        return None if self.timestamp is None else max(0.0, now - self.timestamp)


FRESHNESS = "__freshness__"


def _escape(value: str) -> str:
    # The same escapes as a rendered selector: a newline in a value must become \n.
    return quote_string(value)[1:-1]


def _regex_quote(value: str) -> str:
    specials = set(".^$*+?{}[]\\|()")
    return "".join("\\" + ch if ch in specials else ch for ch in value)


@dataclass(frozen=True)
class Group:
    """Deployments that one query can serve: same Prometheus, framework and identity labels."""

    prometheus_url: str
    framework: str
    identity: tuple[str, ...]  # labels to aggregate by ("" for a single deployment)
    sel: str  # comma-terminated matchers selecting all members
    members: dict[tuple[str, ...], int]  # identity values -> deployment id
    targets: tuple[Target, ...]

    @property
    def by(self) -> str:
        return ", ".join(self.identity)


def group_targets(targets: Sequence[Target]) -> list[Group]:
    buckets: dict[tuple[str, str, tuple[str, ...], str], list[tuple[Target, tuple[str, ...]]]]
    buckets = defaultdict(list)
    singles: list[Target] = []
    for target in targets:
        try:
            matchers = target.matchers()
        except MatcherError as exc:
            # A selector stored before the parser became strict (or typed past validation)
            # costs only its own deployment's data: it reads as missing, which holds its
            # scaling, instead of stopping the planning of every deployment's queries.
            logger.warning(
                "metrics-selector-unreadable", deployment_id=target.deployment_id, error=str(exc)
            )
            continue
        equal = sorted((m.name, m.value) for m in matchers if m.op == "=")
        if not equal:
            singles.append(target)
            continue
        names = tuple(n for n, _ in equal)
        values = tuple(v for _, v in equal)
        # Other (non-identity) matchers must be the same across a group to share a query.
        extra = ",".join(m.render() for m in matchers if m.op != "=")
        buckets[(target.prometheus_url, target.framework, names, extra)].append((target, values))

    groups: list[Group] = []
    for (url, framework, names, extra), members in buckets.items():
        parts: list[str] = []
        for i, name in enumerate(names):
            vals = sorted({values[i] for _, values in members})
            if len(vals) == 1:
                parts.append(f'{name}="{_escape(vals[0])}"')
            elif len(members) <= MAX_REGEX_VALUES:
                alternatives = "|".join(_regex_quote(v) for v in vals)
                parts.append(f'{name}=~"{_escape(alternatives)}"')
            else:
                parts.append(f'{name}!=""')
        sel = ",".join(parts + ([extra] if extra else [])) + ","
        member_map = {values: target.deployment_id for target, values in members}
        groups.append(Group(url, framework, names, sel, member_map, tuple(t for t, _ in members)))
    for target in singles:
        sel = ",".join(m.render() for m in target.matchers()) + ","
        groups.append(
            Group(
                target.prometheus_url,
                target.framework,
                (),
                sel,
                {(): target.deployment_id},
                (target,),
            )
        )
    return groups


def plan_queries(
    targets: Sequence[Target], signals: Iterable[str], *, window: str = "1m"
) -> list[Query]:
    signals = list(signals)
    queries: list[Query] = []
    for group in group_targets(targets):
        queries.extend(
            _queries_for(
                group.framework,
                signals,
                group.sel,
                group.by,
                window,
                group.prometheus_url,
                group.identity,
                group.members,
                list(group.targets),
            )
        )
    return queries


def _queries_for(
    framework: str,
    signals: list[str],
    sel: str,
    by: str,
    window: str,
    url: str,
    identity: tuple[str, ...],
    members: dict[tuple[str, ...], int],
    targets: list[Target],
) -> list[Query]:
    out = []
    fresh_metric = FRESHNESS_METRIC.get(framework)
    if fresh_metric:
        out.append(
            Query(
                f"max by ({by}) (timestamp({fresh_metric}{{{sel}}}))",
                FRESHNESS,
                url,
                identity,
                members,
            )
        )
    for signal in signals:
        # A deployment with its own PromQL for this signal is queried on its own.
        # (One set per signal: a scan of all targets per member is quadratic in the group.)
        own = {t.deployment_id for t in targets if signal in t.custom}
        batched = {k: v for k, v in members.items() if v not in own}
        template = template_for(framework, signal)
        if template is not None and batched:
            out.append(
                Query(
                    render(template, sel=sel, by=by, window=window), signal, url, identity, batched
                )
            )
    for target in targets:
        for signal, promql in target.custom.items():
            if signal in signals:
                out.append(Query(promql, signal, url, (), {(): target.deployment_id}))
    return out


def unsupported_signals(framework: str, signals: Iterable[str]) -> list[str]:
    return [s for s in signals if template_for(framework, s) is None and s not in GPU_SIGNALS]


def map_results(
    query: Query,
    samples: Sequence[InstantSample],
) -> dict[int, tuple[float, float]]:
    """deployment id -> (value, evaluation timestamp) for the series of one answer."""
    out: dict[int, tuple[float, float]] = {}
    members = query.members
    identity = query.identity
    if not identity:
        deployment_id = members.get(())
        if deployment_id is not None:
            for sample in samples:
                out[deployment_id] = (sample.value, sample.timestamp)
        return out
    blanks = ("",) * len(identity)  # an absent label reads as ""
    for sample in samples:
        deployment_id = members.get(tuple(map(sample.labels.get, identity, blanks)))
        if deployment_id is not None:
            out[deployment_id] = (sample.value, sample.timestamp)
    return out


def build_observations(
    *,
    deployment_ids: Iterable[int],
    signals: Sequence[str],
    frameworks: dict[int, str],
    custom: dict[int, set[str]],
    values: dict[str, dict[int, tuple[float, float]]],
    freshness: dict[int, float],
    failures: dict[str, dict[int, str]],
    now: float,
    staleness_s: float,
) -> dict[int, dict[str, Observation]]:
    """Turn the mapped answers into one observation per deployment and signal.

    ``failures[signal][deployment]`` holds the reason when that query failed outright.
    A deployment whose last scrape is older than ``staleness_s`` gets "stale" for every
    signal, even where Prometheus still returned a value (for up to its 5-minute lookback).
    """
    # Everything that does not depend on the deployment is looked up once per signal: this
    # loop runs deployments x signals times per cycle (140,000 at 10,000 deployments).
    no_failures: dict[int, str] = {}
    no_values: dict[int, tuple[float, float]] = {}
    no_custom: set[str] = set()
    fresh_failures = failures.get(FRESHNESS, no_failures)
    per_signal = [
        (
            signal,
            failures.get(signal, no_failures),
            values.get(signal, no_values),
            signal in GPU_SIGNALS,
        )
        for signal in signals
    ]
    has_template: dict[tuple[str, str], bool] = {}
    result: dict[int, dict[str, Observation]] = {}
    for dep in deployment_ids:
        obs: dict[str, Observation] = {}
        scraped = freshness.get(dep)
        fresh_failure = fresh_failures.get(dep)
        own = custom.get(dep, no_custom)
        is_stale = scraped is not None and now - scraped > staleness_s
        stale_reason = ""
        for signal, signal_failures, signal_values, gpu in per_signal:
            failure = signal_failures.get(dep) or fresh_failure
            framework = frameworks[dep]
            if failure:
                obs[signal] = Observation(None, None, "unavailable", failure)
                continue
            key = (framework, signal)
            supported = has_template.get(key)
            if supported is None:
                supported = has_template[key] = template_for(framework, signal) is not None
            if not supported and signal not in own:
                obs[signal] = Observation(
                    None, None, "unsupported", f"{framework} exports no metric for {signal}"
                )
                continue
            hit = signal_values.get(dep)
            # DCGM and custom series have their own scrape times; use the answer's.
            own_clock = gpu or signal in own
            ts = (hit[1] if hit else None) if own_clock else scraped
            if is_stale and not gpu:
                if not stale_reason:
                    assert scraped is not None
                    stale_reason = (
                        f"last scrape {now - scraped:.0f}s ago (limit {staleness_s:.0f}s)"
                    )
                obs[signal] = Observation(None, scraped, "stale", stale_reason)
                continue
            if scraped is None and not own_clock:
                # No current scrape: a rate() or quantile over the window can still answer
                # from samples taken before the target went away. That is old data.
                obs[signal] = Observation(
                    None,
                    None,
                    "missing",
                    "no current series match the selector (target down or not scraped)",
                )
                continue
            if hit is None:
                obs[signal] = Observation(
                    None,
                    ts,
                    "missing",
                    "no value (no traffic in the window, or the series is absent)",
                )
                continue
            value = hit[0]
            if math.isnan(value) or math.isinf(value):
                obs[signal] = Observation(
                    None, ts, "missing", "not a number (no traffic in the window)"
                )
                continue
            obs[signal] = Observation(value, ts, "ok")
        result[dep] = obs
    return result
