"""Reading the replicas' own ``/metrics`` directly, every second or two, between scrapes.

The collector reads Prometheus, which scrapes every 15-30 s and then needs a rate window:
a burst shows up a scrape or two late. This reader asks each serving replica for its
metrics itself, as Knative's autoscaler scrapes pods, and returns the deployment's waiting
and running requests as they are now, ready for the engine as ``queue_length`` and
``running_requests``. A burst shows there first: what arrives beyond what the replicas
finish piles up in them. The finished-requests rate stays the collector's: counted over a
second or two it scatters far more than over a scrape interval (completions come in
clumps as batches finish), and sizing on its high readings bought replicas for noise.
It uses no Celery, no database and keeps nothing between reads: the caller makes a
:class:`FastReader` for the deployment's framework and calls :meth:`FastReader.read` with
the members that membership discovery (:func:`apps.balancing.membership.members_of`)
returned.

Addresses come from discovery, never from a user, and are still checked before any
connection (:func:`member_refusal`): only IP literals (no DNS, so nothing to rebind),
never link-local (the cloud metadata service), multicast, unspecified or reserved
addresses; private and shared ranges are what pod networks use and are allowed; loopback
only within ``OUTBOUND_ALLOWED_NETWORKS``. Requests go to ``http://<address>:<port>/metrics``
only, without proxies or redirects, with a short timeout and a size cap.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple, Protocol

import requests
from prometheus_client.parser import text_string_to_metric_families

from apps.core.netguard import allowed_networks

MAX_BYTES: Final = 4 * 1024 * 1024
TIMEOUT_S: Final = 1.0


class Member(Protocol):
    """What the fast path reads of a replica (structurally,
    :class:`apps.balancing.members.Member`): its name, state and where it listens."""

    @property
    def name(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def endpoint(self) -> str: ...


class FrameworkMetrics(NamedTuple):
    waiting: str
    running: str | None


# The same series the catalogue's PromQL reads (apps/metrics/catalogue.py), per replica.
FRAMEWORK_METRICS: Final[Mapping[str, FrameworkMetrics]] = {
    "vllm": FrameworkMetrics("vllm:num_requests_waiting", "vllm:num_requests_running"),
    "sglang": FrameworkMetrics("sglang:num_queue_reqs", "sglang:num_running_reqs"),
    "tgi": FrameworkMetrics("tgi_queue_size", "tgi_batch_current_size"),
    "tensorrt-llm": FrameworkMetrics("nv_inference_pending_request_count", None),
}


def member_refusal(address: str) -> str | None:
    """Why the reader will not connect to ``address`` (None: it may)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"{address!r} is not an IP address"
    if any(ip in net for net in allowed_networks() if ip.version == net.version):
        return None
    if ip.is_loopback:
        return f"{address} is a loopback address"
    if ip.is_link_local or ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return f"{address} is a link-local, multicast, unspecified or reserved address"
    return None


Fetch = Callable[[str], str]


def http_fetch(url: str) -> str:
    """GET ``url`` without proxies or redirects, at most ``MAX_BYTES``."""
    with requests.Session() as session:
        session.trust_env = False  # no environment proxies
        response = session.get(url, timeout=TIMEOUT_S, allow_redirects=False, stream=True)
        if response.status_code != 200:
            raise ValueError(f"the metrics page answered HTTP {response.status_code}")
        body = response.raw.read(MAX_BYTES + 1, decode_content=True)
    if len(body) > MAX_BYTES:
        raise ValueError(f"the metrics page is larger than {MAX_BYTES} bytes")
    return body.decode("utf-8", errors="replace")


def sums(text: str, names: Sequence[str]) -> dict[str, float]:
    """Each named metric summed over its series."""
    wanted = set(names)
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in wanted and math.isfinite(sample.value):
                out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


@dataclass(frozen=True)
class FastReading:
    """One read. ``values``: signal → deployment total (absent: unknown this time);
    ``read`` / ``failed``: members read and those that could not be, with why."""

    at: float
    values: dict[str, float]
    read: tuple[str, ...]
    failed: tuple[tuple[str, str], ...]


@dataclass
class FastReader:
    """Reads one deployment's serving members."""

    framework: str
    fetch: Fetch = http_fetch
    clock: Callable[[], float] = time.monotonic

    def read(self, members: Sequence[Member]) -> FastReading:
        metrics = FRAMEWORK_METRICS.get(self.framework)
        if metrics is None:
            raise ValueError(f"no per-replica metrics known for framework {self.framework!r}")
        names = [n for n in (metrics.waiting, metrics.running) if n]
        waiting = running = 0.0
        done: list[str] = []
        failed: list[tuple[str, str]] = []
        now = self.clock()
        for member in members:
            if member.state != "serving":
                continue
            refusal = member_refusal(member.address)
            if refusal is not None:
                failed.append((member.name, refusal))
                continue
            try:
                text = self.fetch(f"http://{member.endpoint}/metrics")
                values = sums(text, names)
            except (requests.RequestException, ValueError, OSError) as exc:
                failed.append((member.name, f"{type(exc).__name__}: {exc}"))
                continue
            if metrics.waiting not in values:
                failed.append((member.name, f"no {metrics.waiting} on its metrics page"))
                continue
            done.append(member.name)
            waiting += values[metrics.waiting]
            if metrics.running:
                running += values.get(metrics.running, 0.0)
        values_out: dict[str, float] = {}
        if done and not failed:
            values_out["queue_length"] = waiting
            if metrics.running:
                values_out["running_requests"] = running
        return FastReading(now, values_out, tuple(done), tuple(failed))
