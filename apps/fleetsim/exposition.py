"""HTTP face of a simulated fleet: Prometheus metrics plus scale and injection endpoints.

Endpoints (JSON unless noted; errors are ``{"error": "..."}`` with status 400, 404,
405 or 413):

``GET /metrics``
    Prometheus text format (0.0.4) for the whole fleet, one series per pod.
``GET /deployments``
    Every deployment with its replica counts, queue lengths and injections.
``GET /scale/<namespace>/<deployment>``
    ``{"spec_replicas": n, "ready_replicas": n, "starting_replicas": n}``.
``PUT /scale/<namespace>/<deployment>`` with ``{"replicas": N}``
    Sets the desired replica count (0..1000); answers with the new counts. This is
    what the control plane's simulated actuator calls. An optional ``"drain_s"``
    (simulated seconds, default 0) lets removed replicas finish what they hold first,
    and an optional ``"remove": ["<pod>", ...]`` names the replicas a scale-down removes
    (those a gateway already drained; see
    :meth:`apps.fleetsim.fleet.SimulatedDeployment.scale`).
``GET /standby/<namespace>/<deployment>``, ``PUT`` with ``{"replicas": K}``
    The standby replicas kept asleep beside the spec (vLLM sleep mode, see
    :meth:`apps.fleetsim.fleet.SimulatedDeployment.set_standby`): ``{"standby_target": K,
    "standby_replicas": n, "asleep_replicas": n, "pods": [...]}`` (``asleep`` counts the
    loaded ones; the rest are still cold-starting). A scale-up wakes them first.
``PUT /slowdown/<namespace>/<deployment>/<pod>`` with ``{"factor": F}``
    Makes one replica's steps ``F`` times longer from now on (0 < F <= 1000; 1 restores
    it), a throttled GPU for balancing tests; answers ``{"pod": ..., "factor": F}``.
``GET /endpoints``
    When the replicas serve HTTP (:mod:`apps.fleetsim.replica_http`): every replica's
    loopback address and state, ``{"endpoints": [{"namespace", "deployment", "pod",
    "model", "host", "port", "state"}, ...]}``; 404 otherwise. Sleeping standby replicas
    are not listed: they are not members (see ``/standby``).
``POST /inject/<namespace>/<deployment>`` with any of ``rate_multiplier``,
``extra_latency_s``, ``error_ratio``
    Load and fault injection for tests and demos; all values are validated before
    any is applied.
``GET /healthz``
    ``{"status": "ok", "time_s": <simulation time>}``.

Metric names and labels
-----------------------
The engine series use vLLM's own names and types: ``vllm:num_requests_running``,
``vllm:num_requests_waiting``, ``vllm:kv_cache_usage_perc`` (0..1),
``vllm:request_success_total{finished_reason=...}``, ``vllm:prompt_tokens_total``,
``vllm:generation_tokens_total`` and the histograms
``vllm:time_to_first_token_seconds``, ``vllm:inter_token_latency_seconds`` and
``vllm:e2e_request_latency_seconds`` with vLLM's bucket boundaries. As in vLLM V1 they
carry ``model_name`` and ``engine``. GPU series use the NVIDIA DCGM exporter's names:
``DCGM_FI_DEV_GPU_UTIL`` (percent), ``DCGM_FI_DEV_FB_USED`` and ``DCGM_FI_DEV_FB_FREE``
(MiB), labelled ``gpu``, ``UUID``, ``device``, ``modelName``, ``Hostname`` and, as
dcgm-exporter does with its Kubernetes pod mapping, ``namespace``, ``pod`` and
``container``.

Every per-pod series additionally carries ``namespace``, ``pod`` and ``deployment``.
A real vLLM pod does not emit those itself: Prometheus attaches them when scraping,
through ``kubernetes_sd_configs`` relabelling of the pod's metadata (e.g. the
``app.kubernetes.io/name`` label mapped to ``deployment``). Because this one endpoint
stands in for many pods, it emits them directly, so the same PromQL
(``sum by (namespace, deployment) (...)``) works against the simulator and a cluster.

Pods that are still starting expose DCGM series (the GPU is allocated and loading
weights) but no ``vllm:`` series, because vLLM's HTTP server only comes up once the
model is loaded. Deployment-level series have no ``pod`` label:
``kube_deployment_spec_replicas``, ``kube_deployment_status_replicas_available`` and
``kube_deployment_status_replicas_unavailable`` (kube-state-metrics names), and the
simulator's own ``llmcp_sim_gateway_queue_requests`` (requests waiting for any ready
pod or held back by injected latency). ``llmcp_sim_request_failure_total{reason}`` is
the simulator's per-pod failure counter: vLLM has no such metric, real deployments
derive error ratios from gateway HTTP status codes.
``llmcp_sim_replica_state{state}`` is 1 for each pod's state (``starting``, ``waking``,
``ready`` or ``asleep``; a replica's own /metrics has it too) and
``llmcp_sim_standby_replicas`` counts a deployment's standby replicas.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable, Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from apps.fleetsim.fleet import DeploymentSnapshot, Fleet, FleetSnapshot
from apps.fleetsim.histograms import Histogram
from apps.fleetsim.replica import ReplicaSnapshot

__all__ = [
    "DCGM_LABELS",
    "MAX_REPLICAS",
    "VLLM_LABELS",
    "FleetCollector",
    "FleetHTTPServer",
    "metrics_text",
    "serve",
]

logger = logging.getLogger(__name__)

MAX_REPLICAS = 1000
MAX_BODY_BYTES = 64 * 1024
MAX_DRAIN_S = 86_400.0
MAX_SLOWDOWN = 1000.0

VLLM_LABELS = ("model_name", "engine", "namespace", "pod", "deployment")
DCGM_LABELS = (
    "gpu",
    "UUID",
    "device",
    "modelName",
    "Hostname",
    "container",
    "namespace",
    "pod",
    "deployment",
)
DEPLOYMENT_LABELS = ("namespace", "deployment")
# vLLM pre-creates its success counter for every finish reason. The simulated workload
# always finishes by stop condition; requests over a replica's HTTP endpoint finish by
# "length" when cut at max_tokens; "abort" stays at zero (aborted requests are counted in
# llmcp_sim_request_failure_total instead).
FINISH_REASONS = ("stop", "length", "abort")
FAILURE_REASONS = ("injected", "rejected", "aborted")
INJECTION_KEYS = ("rate_multiplier", "extra_latency_s", "error_ratio")


class FleetCollector(Collector):
    """prometheus_client collector rendering a fleet snapshot at scrape time."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def describe(self) -> list[Metric]:
        # Registering must not take a snapshot; the registry only needs names for
        # collision checks, which a dedicated registry does not need.
        return []

    def collect(self) -> Iterator[Metric]:
        yield from fleet_metric_families(self.fleet.snapshot())


def _buckets(histogram: Histogram) -> list[tuple[str, float]]:
    cumulative = histogram.cumulative()
    out = [
        (floatToGoString(b), float(c)) for b, c in zip(histogram.bounds, cumulative, strict=False)
    ]
    out.append(("+Inf", float(cumulative[-1])))
    return out


def fleet_metric_families(
    snapshot: FleetSnapshot, *, engine_only: bool = False
) -> Iterator[Metric]:
    """Metric families for a fleet snapshot (also usable without an HTTP server).

    ``engine_only`` keeps the families one vLLM server exposes itself (``vllm:`` and the
    simulator's failure counter), as a replica's own /metrics does.
    """
    running = GaugeMetricFamily(
        "vllm:num_requests_running",
        "Number of requests in model execution batches.",
        labels=VLLM_LABELS,
    )
    waiting = GaugeMetricFamily(
        "vllm:num_requests_waiting",
        "Number of requests waiting to be processed.",
        labels=VLLM_LABELS,
    )
    kv_usage = GaugeMetricFamily(
        "vllm:kv_cache_usage_perc",
        "KV-cache usage. 1 means 100 percent usage.",
        labels=VLLM_LABELS,
    )
    success = CounterMetricFamily(
        "vllm:request_success",
        "Count of successfully processed requests.",
        labels=(*VLLM_LABELS, "finished_reason"),
    )
    prompt_tokens = CounterMetricFamily(
        "vllm:prompt_tokens", "Number of prefill tokens processed.", labels=VLLM_LABELS
    )
    generation_tokens = CounterMetricFamily(
        "vllm:generation_tokens", "Number of generation tokens processed.", labels=VLLM_LABELS
    )
    ttft = HistogramMetricFamily(
        "vllm:time_to_first_token_seconds",
        "Histogram of time to first token in seconds.",
        labels=VLLM_LABELS,
    )
    itl = HistogramMetricFamily(
        "vllm:inter_token_latency_seconds",
        "Histogram of inter-token latency in seconds.",
        labels=VLLM_LABELS,
    )
    e2e = HistogramMetricFamily(
        "vllm:e2e_request_latency_seconds",
        "Histogram of e2e request latency in seconds.",
        labels=VLLM_LABELS,
    )
    failures = CounterMetricFamily(
        "llmcp_sim_request_failure",
        "Requests answered with an error by the simulated pod (simulator-specific; "
        "vLLM has no failure counter).",
        labels=(*VLLM_LABELS, "reason"),
    )
    gpu_util = GaugeMetricFamily(
        "DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", labels=DCGM_LABELS
    )
    fb_used = GaugeMetricFamily(
        "DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", labels=DCGM_LABELS
    )
    fb_free = GaugeMetricFamily(
        "DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).", labels=DCGM_LABELS
    )
    spec = GaugeMetricFamily(
        "kube_deployment_spec_replicas",
        "Number of desired pods for a deployment.",
        labels=DEPLOYMENT_LABELS,
    )
    available = GaugeMetricFamily(
        "kube_deployment_status_replicas_available",
        "The number of available replicas per deployment.",
        labels=DEPLOYMENT_LABELS,
    )
    unavailable = GaugeMetricFamily(
        "kube_deployment_status_replicas_unavailable",
        "The number of unavailable replicas per deployment.",
        labels=DEPLOYMENT_LABELS,
    )
    gateway = GaugeMetricFamily(
        "llmcp_sim_gateway_queue_requests",
        "Requests held in front of the pods: no ready pod yet, or injected latency "
        "(simulator-specific).",
        labels=("model_name", *DEPLOYMENT_LABELS),
    )

    replica_state = GaugeMetricFamily(
        "llmcp_sim_replica_state",
        "1 for the pod's state: starting, waking (from sleep), ready or asleep "
        "(simulator-specific).",
        labels=("model_name", "namespace", "pod", "deployment", "state"),
    )
    standby = GaugeMetricFamily(
        "llmcp_sim_standby_replicas",
        "Standby replicas kept asleep beside the spec, loaded or loading (simulator-specific).",
        labels=DEPLOYMENT_LABELS,
    )

    for dep in snapshot.deployments:
        deployment_labels = [dep.namespace, dep.name]
        standby.add_metric(deployment_labels, dep.standby_replicas)
        for rep in dep.replicas:
            replica_state.add_metric(
                [dep.model_name, dep.namespace, rep.pod, dep.name, rep.state], 1
            )
        spec.add_metric(deployment_labels, dep.spec_replicas)
        available.add_metric(deployment_labels, dep.ready_replicas)
        unavailable.add_metric(deployment_labels, dep.starting_replicas)
        gateway.add_metric([dep.model_name, *deployment_labels], dep.gateway_queue)
        for rep in dep.replicas:
            _add_dcgm(dep, rep, gpu_util, fb_used, fb_free)
            if not rep.ready:
                continue
            labels = [dep.model_name, "0", dep.namespace, rep.pod, dep.name]
            stats = rep.stats
            running.add_metric(labels, rep.num_running)
            waiting.add_metric(labels, rep.num_waiting)
            kv_usage.add_metric(labels, rep.kv_cache_usage)
            finished = {"stop": stats.success - stats.truncated, "length": stats.truncated}
            for reason in FINISH_REASONS:
                success.add_metric([*labels, reason], finished.get(reason, 0))
            prompt_tokens.add_metric(labels, stats.prompt_tokens)
            generation_tokens.add_metric(labels, stats.generation_tokens)
            ttft.add_metric(labels, _buckets(stats.ttft), stats.ttft.sum)
            itl.add_metric(labels, _buckets(stats.itl), stats.itl.sum)
            e2e.add_metric(labels, _buckets(stats.e2e), stats.e2e.sum)
            reasons = sorted(set(FAILURE_REASONS) | set(stats.failures))
            for reason in reasons:
                failures.add_metric([*labels, reason], stats.failures.get(reason, 0))

    yield from (
        running,
        waiting,
        kv_usage,
        success,
        prompt_tokens,
        generation_tokens,
        ttft,
        itl,
        e2e,
        failures,
        replica_state,
    )
    if engine_only:
        return
    yield from (
        gpu_util,
        fb_used,
        fb_free,
        spec,
        available,
        unavailable,
        gateway,
        standby,
    )


def _add_dcgm(
    dep: DeploymentSnapshot,
    rep: ReplicaSnapshot,
    gpu_util: GaugeMetricFamily,
    fb_used: GaugeMetricFamily,
    fb_free: GaugeMetricFamily,
) -> None:
    labels = [
        "0",
        rep.gpu_uuid,
        "nvidia0",
        rep.product_name,
        rep.hostname,
        "vllm",
        dep.namespace,
        rep.pod,
        dep.name,
    ]
    # DCGM reports whole percents.
    gpu_util.add_metric(labels, float(round(rep.gpu_utilization * 100.0)))
    fb_used.add_metric(labels, rep.fb_used_mib)
    fb_free.add_metric(labels, rep.fb_free_mib)


def metrics_text(fleet: Fleet) -> str:
    """The /metrics payload for ``fleet``, as served over HTTP."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(fleet))
    return generate_latest(registry).decode("utf-8")


class _BadRequest(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _number(payload: dict[str, Any], key: str) -> float:
    value = payload[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _BadRequest(HTTPStatus.BAD_REQUEST, f"{key!r} must be a finite number")
    return float(value)


class _Handler(BaseHTTPRequestHandler):
    server: FleetHTTPServer
    server_version = "llmcp-fleetsim/1"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)

    # -------------------------------------------------------------- verbs

    def do_GET(self) -> None:
        self._handle("GET")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    # -------------------------------------------------------------- routing

    def _handle(self, method: str) -> None:
        try:
            parts = [unquote(p) for p in urlsplit(self.path).path.split("/") if p]
            if parts == ["metrics"]:
                self._only(method, "GET")
                self._send_metrics()
            elif parts == ["deployments"]:
                self._only(method, "GET")
                self._send_json(HTTPStatus.OK, self._deployments())
            elif parts == ["endpoints"]:
                self._only(method, "GET")
                if self.server.endpoints is None:
                    raise _BadRequest(HTTPStatus.NOT_FOUND, "the replicas do not serve HTTP")
                self._send_json(HTTPStatus.OK, {"endpoints": self.server.endpoints()})
            elif parts == ["healthz"]:
                self._only(method, "GET")
                self._send_json(HTTPStatus.OK, {"status": "ok", "time_s": self.server.fleet.now})
            elif len(parts) == 3 and parts[0] == "scale":
                self._only(method, "GET", "PUT")
                self._scale(method, parts[1], parts[2])
            elif len(parts) == 3 and parts[0] == "standby":
                self._only(method, "GET", "PUT")
                self._standby(method, parts[1], parts[2])
            elif len(parts) == 4 and parts[0] == "slowdown":
                self._only(method, "PUT")
                self._slowdown(parts[1], parts[2], parts[3])
            elif len(parts) == 3 and parts[0] == "inject":
                self._only(method, "POST")
                self._inject(parts[1], parts[2])
            else:
                raise _BadRequest(HTTPStatus.NOT_FOUND, f"no such endpoint: {self.path}")
        except _BadRequest as exc:
            self._send_json(exc.status, {"error": exc.message})
        except Exception:  # a simulator bug must not kill the server thread silently
            logger.exception("fleetsim HTTP handler failed for %s %s", method, self.path)
            self._send_json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"})

    def _only(self, method: str, *allowed: str) -> None:
        if method not in allowed:
            raise _BadRequest(
                HTTPStatus.METHOD_NOT_ALLOWED,
                f"{method} not allowed here; use {', '.join(allowed)}",
            )

    # -------------------------------------------------------------- endpoints

    def _send_metrics(self) -> None:
        body = generate_latest(self.server.registry)
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", CONTENT_TYPE_PLAIN_0_0_4)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _deployments(self) -> dict[str, Any]:
        snapshot = self.server.fleet.snapshot()
        return {
            "time_s": snapshot.time_s,
            "deployments": [d.as_dict() for d in snapshot.deployments],
        }

    def _scale(self, method: str, namespace: str, name: str) -> None:
        fleet = self.server.fleet
        with fleet.lock:
            deployment = fleet.find(namespace, name)
            if deployment is None:
                raise _BadRequest(HTTPStatus.NOT_FOUND, f"unknown deployment {namespace}/{name}")
            if method == "GET":
                fleet.sync()
                self._send_json(HTTPStatus.OK, deployment.scale_status())
                return
        payload = self._read_json()
        if "replicas" not in payload or not set(payload) <= {"replicas", "drain_s", "remove"}:
            raise _BadRequest(
                HTTPStatus.BAD_REQUEST,
                'body must be {"replicas": <integer>} with an optional "drain_s": <seconds> '
                'and "remove": [<pod name>, ...]',
            )
        remove = payload.get("remove", [])
        if not isinstance(remove, list) or not all(isinstance(p, str) for p in remove):
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "'remove' must be a list of pod names")
        drain_s = _number(payload, "drain_s") if "drain_s" in payload else 0.0
        if not 0.0 <= drain_s <= MAX_DRAIN_S:
            raise _BadRequest(
                HTTPStatus.BAD_REQUEST, f"'drain_s' must be between 0 and {MAX_DRAIN_S:g}"
            )
        replicas = payload["replicas"]
        if isinstance(replicas, bool) or not isinstance(replicas, int):
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "'replicas' must be an integer")
        if not 0 <= replicas <= MAX_REPLICAS:
            raise _BadRequest(
                HTTPStatus.BAD_REQUEST, f"'replicas' must be between 0 and {MAX_REPLICAS}"
            )
        with fleet.lock:
            fleet.sync()
            try:
                status = deployment.scale(replicas, drain_s=drain_s, remove=remove)
            except ValueError as exc:  # remove names replicas it cannot remove
                raise _BadRequest(HTTPStatus.BAD_REQUEST, str(exc)) from None
        logger.info("scaled %s/%s to %d replicas", namespace, name, replicas)
        self._send_json(HTTPStatus.OK, status)

    def _standby(self, method: str, namespace: str, name: str) -> None:
        fleet = self.server.fleet
        deployment = fleet.find(namespace, name)
        if deployment is None:
            raise _BadRequest(HTTPStatus.NOT_FOUND, f"unknown deployment {namespace}/{name}")
        count = 0
        if method == "PUT":
            payload = self._read_json()
            count = payload.get("replicas")  # type: ignore[assignment]
            if (
                set(payload) != {"replicas"}
                or isinstance(count, bool)
                or not isinstance(count, int)
            ):
                raise _BadRequest(
                    HTTPStatus.BAD_REQUEST, 'body must be exactly {"replicas": <integer>}'
                )
            if not 0 <= count <= MAX_REPLICAS:
                raise _BadRequest(
                    HTTPStatus.BAD_REQUEST, f"'replicas' must be between 0 and {MAX_REPLICAS}"
                )
        with fleet.lock:
            now = fleet.sync()
            if method == "PUT":
                deployment.set_standby(count)
                logger.info("standby of %s/%s set to %d", namespace, name, count)
            pods = sorted(p for p, s in deployment.replica_states().items() if s == "asleep")
            loaded = [p for p in pods if deployment.find_replica(p).ready_at_s <= now]  # type: ignore[union-attr]
            body = {
                "standby_target": deployment.standby_target,
                "standby_replicas": len(pods),
                "asleep_replicas": len(loaded),
                "pods": pods,
            }
        self._send_json(HTTPStatus.OK, body)

    def _slowdown(self, namespace: str, name: str, pod: str) -> None:
        fleet = self.server.fleet
        deployment = fleet.find(namespace, name)
        if deployment is None:
            raise _BadRequest(HTTPStatus.NOT_FOUND, f"unknown deployment {namespace}/{name}")
        payload = self._read_json()
        if set(payload) != {"factor"}:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, 'body must be exactly {"factor": <number>}')
        factor = _number(payload, "factor")
        if not 0.0 < factor <= MAX_SLOWDOWN:
            raise _BadRequest(
                HTTPStatus.BAD_REQUEST, f"'factor' must be > 0 and at most {MAX_SLOWDOWN:g}"
            )
        with fleet.lock:
            fleet.sync()
            try:
                deployment.slow_down(pod, factor)
            except KeyError:
                raise _BadRequest(
                    HTTPStatus.NOT_FOUND, f"no replica {pod} in {namespace}/{name}"
                ) from None
        self._send_json(HTTPStatus.OK, {"pod": pod, "factor": factor})

    def _inject(self, namespace: str, name: str) -> None:
        fleet = self.server.fleet
        deployment = fleet.find(namespace, name)
        if deployment is None:
            raise _BadRequest(HTTPStatus.NOT_FOUND, f"unknown deployment {namespace}/{name}")
        payload = self._read_json()
        unknown = set(payload) - set(INJECTION_KEYS)
        if unknown or not payload:
            raise _BadRequest(
                HTTPStatus.BAD_REQUEST,
                f"body must set one or more of {', '.join(INJECTION_KEYS)}"
                + (f"; unknown: {', '.join(sorted(unknown))}" if unknown else ""),
            )
        values = {key: _number(payload, key) for key in payload}
        if values.get("rate_multiplier", 1.0) < 0:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "'rate_multiplier' must be >= 0")
        if values.get("extra_latency_s", 0.0) < 0:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "'extra_latency_s' must be >= 0")
        if not 0.0 <= values.get("error_ratio", 0.0) <= 1.0:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "'error_ratio' must be within [0, 1]")
        with fleet.lock:
            fleet.sync()
            if "rate_multiplier" in values:
                deployment.set_rate_multiplier(values["rate_multiplier"])
            if "extra_latency_s" in values:
                deployment.inject_latency(values["extra_latency_s"])
            if "error_ratio" in values:
                deployment.inject_error_ratio(values["error_ratio"])
            state = {
                "rate_multiplier": deployment.rate_multiplier,
                "extra_latency_s": deployment.extra_latency_s,
                "error_ratio": deployment.error_ratio,
            }
        self._send_json(HTTPStatus.OK, state)

    # -------------------------------------------------------------- helpers

    def _read_json(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "invalid Content-Length") from None
        if length > MAX_BODY_BYTES:
            raise _BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request body too large")
        raw = self.rfile.read(length) if length > 0 else b""
        try:
            payload = json.loads(raw or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "body is not valid JSON") from None
        if not isinstance(payload, dict):
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "body must be a JSON object")
        return payload

    def _send_json(self, status: HTTPStatus, payload: object) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class FleetHTTPServer(ThreadingHTTPServer):
    """Threading HTTP server bound to one fleet; :meth:`stop` shuts it down cleanly."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        fleet: Fleet,
        endpoints: Callable[[], list[dict[str, Any]]] | None = None,
    ) -> None:
        super().__init__(address, _Handler)
        self.fleet = fleet
        self.endpoints = endpoints
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(FleetCollector(fleet))
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("server already started")
        # A short poll interval keeps stop() (and test teardown) prompt.
        self._thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fleetsim-http-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, close the socket and wait for the serving thread."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()


def serve(
    fleet: Fleet,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    endpoints: Callable[[], list[dict[str, Any]]] | None = None,
) -> tuple[FleetHTTPServer, int]:
    """Serve ``fleet`` on ``host:port`` (0 picks a free port) in a background thread.

    ``endpoints`` lists the replicas' own HTTP endpoints for ``GET /endpoints``.
    Returns the server, whose :meth:`FleetHTTPServer.stop` shuts it down, and the port.
    """
    server = FleetHTTPServer((host, port), fleet, endpoints)
    server.start()
    return server, server.port
