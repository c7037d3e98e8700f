"""A thin wrapper around prometheus-api-client with explicit timeouts and one error type.

Every failure — connection refused, timeout, HTTP error, a body that is not the Prometheus
JSON envelope — surfaces as :class:`PrometheusError`, whose ``retryable`` says whether trying
again later can help (a 4xx for a bad query cannot).

A cluster's ``prometheus_url`` is given by a team, so the client connects to it only through
:mod:`apps.core.netguard` (no loopback, link-local, private… addresses unless
``OUTBOUND_ALLOWED_NETWORKS`` allows them; every redirect hop checked again). The
operator's own ``PROMETHEUS_URL`` is trusted as configured.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import requests
from django.conf import settings
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from apps.core.netguard import (
    DestinationRefused,
    GuardedAdapter,
    guard_session,
    parse_destination,
    refusal_in,
)

from .types import InstantSample, RangeSeries


class PrometheusError(Exception):
    def __init__(self, message: str, *, retryable: bool, unreachable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        # True when nothing answered at all: later queries to it in the same cycle would
        # fail the same way and can be skipped.
        self.unreachable = unreachable


def _instant(result: Any) -> list[InstantSample]:
    if not isinstance(result, list):
        raise PrometheusError("Prometheus answered an unexpected result type", retryable=True)
    samples = []
    for item in result:
        try:
            labels = {str(k): str(v) for k, v in item["metric"].items()}
            ts, raw = item["value"]
            samples.append(InstantSample(labels, float(raw), float(ts)))
        except (KeyError, TypeError, ValueError) as exc:
            raise PrometheusError(
                f"malformed sample in Prometheus answer: {exc}", retryable=True
            ) from None
    return samples


def _operator_url(url: str) -> bool:
    configured = getattr(settings, "PROMETHEUS_URL", None) or ""
    return bool(configured) and configured.rstrip("/") == url


class PrometheusClient:
    """``trusted``: the URL comes from the operator, not a team, and is called as is. By
    default only a URL equal to the ``PROMETHEUS_URL`` setting is trusted."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        session: requests.Session | None = None,
        trusted: bool | None = None,
    ):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.trusted = _operator_url(self.url) if trusted is None else trusted
        # Why every call fails at once: a team's URL the guard refuses by its form alone.
        self._refused: str | None = None
        if not self.trusted:
            try:
                parse_destination(self.url, field="prometheus_url")
            except DestinationRefused as exc:
                self._refused = str(exc)
            session = guard_session(session or requests.Session())
        self._session = session
        # No retries inside a call: the library's default (3 with backoff, also on refused
        # connections) made one query against a down Prometheus take ~6 s and a collection
        # cycle overrun its interval. Callers retry at their own level (the next cycle).
        self._conn = PrometheusConnect(
            url=self.url,
            disable_ssl=False,
            session=session,
            timeout=timeout_s,
            method="POST",
            retry=Retry(total=0, connect=0, read=0, status=0, redirect=0, raise_on_status=False),
        )
        if session is not None and not self.trusted:
            # PrometheusConnect mounts its own adapter for the URL's prefix; put the guard
            # back in its place, with the same no-retry policy.
            session.mount(
                self._conn.url,
                GuardedAdapter(
                    max_retries=Retry(
                        total=0, connect=0, read=0, status=0, redirect=0, raise_on_status=False
                    )
                ),
            )

    def _refusal(self, reason: str) -> PrometheusError:
        return PrometheusError(
            f"Prometheus at {self.url} is not an allowed destination: {reason}",
            retryable=True,
            unreachable=True,
        )

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if self._refused is not None:
            raise self._refusal(self._refused)
        try:
            return fn(*args, **kwargs)
        except PrometheusApiClientException as exc:
            text = str(exc)
            # 400 and 422 mean the query itself is wrong; 5xx and 503 can pass.
            permanent = "HTTP Status Code 400" in text or "HTTP Status Code 422" in text
            raise PrometheusError(
                f"Prometheus error: {text[:300]}", retryable=not permanent
            ) from None
        except requests.exceptions.JSONDecodeError as exc:
            raise PrometheusError(
                f"Prometheus at {self.url} answered something that is not its API: {exc}",
                retryable=True,
            ) from None
        except requests.Timeout:
            raise PrometheusError(
                f"Prometheus at {self.url} did not answer within {self.timeout_s:g}s",
                retryable=True,
            ) from None
        except requests.RequestException as exc:
            refused = refusal_in(exc)
            if refused is not None:
                raise self._refusal(refused) from None
            raise PrometheusError(
                f"cannot reach Prometheus at {self.url}: {type(exc).__name__}",
                retryable=True,
                unreachable=True,
            ) from None
        except (ValueError, KeyError, TypeError) as exc:
            # ValueError covers a JSON decode failure on a garbage body.
            raise PrometheusError(
                f"Prometheus at {self.url} answered something that is not its API: {exc}",
                retryable=True,
            ) from None

    def query(self, promql: str, *, at: float | None = None) -> list[InstantSample]:
        params = {"time": f"{at:.3f}"} if at is not None else None
        return _instant(self._call(self._conn.custom_query, promql, params=params))

    def query_range(
        self, promql: str, *, start: datetime, end: datetime, step_s: float
    ) -> list[RangeSeries]:
        result = self._call(
            self._conn.custom_query_range,
            promql,
            start_time=start,
            end_time=end,
            step=f"{step_s:g}s",
        )
        series = []
        for item in result or []:
            try:
                points = [(float(t), float(v)) for t, v in item["values"]]
                points = [(t, v) for t, v in points if not math.isnan(v)]
                series.append(
                    RangeSeries({str(k): str(v) for k, v in item["metric"].items()}, points)
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise PrometheusError(f"malformed range series: {exc}", retryable=True) from None
        return series

    def ready(self) -> bool:
        if self._refused is not None:
            return False
        get = self._session.get if self._session is not None else requests.get
        try:
            response = get(f"{self.url}/-/ready", timeout=self.timeout_s)
        except requests.RequestException:
            return False
        return response.status_code == 200
