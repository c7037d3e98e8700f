"""A small stand-in for the Kubernetes API server, for the real ``kubernetes`` client.

It speaks just enough of apps/v1, core/v1, autoscaling/v2 and discovery.k8s.io/v1 for the
actuator and the balancing membership: the ``scale`` subresource of Deployments and
StatefulSets (GET and merge/strategic-merge PATCH, honouring ``metadata.resourceVersion``
in the patch body as the real server does), the workloads themselves, pods by label
selector (with their IPs and named container ports), pod label and annotation patches,
merge patches of a workload object's ``spec.replicas`` and annotations, HPAs, and
EndpointSlices listed by label selector (a Service's slices carry
``kubernetes.io/service-name``, as the EndpointSlice controller sets it).

Faults are injected per request: the next N matching requests answer a given status
(409, 500, 403, 404, ...) or hang past the client's timeout, and a concurrent writer can
change an object right before the next PATCH lands so that the stale resourceVersion in
that PATCH is rejected with 409. Every request is recorded, faulted ones included.

Requests must carry ``Authorization: Bearer <token>``; the token is the one written into
the kubeconfig by :meth:`FakeApiServer.write_kubeconfig`.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypedDict, Unpack
from urllib.parse import parse_qs, unquote, urlsplit

from tests.servers import QuietHandler

TOKEN = "fake-token-for-tests"
CREATED = "2026-01-01T00:00:00Z"


def _envelope(
    kind: str, api_version: str, namespace: str, name: str, **metadata: Any
) -> dict[str, Any]:
    """What every object starts with: its kind, API version and metadata."""
    return {
        "kind": kind,
        "apiVersion": api_version,
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": CREATED} | metadata,
    }


@dataclass
class Workload:
    kind: str  # "deployments" or "statefulsets"
    namespace: str
    name: str
    replicas: int
    ready_replicas: int
    match_labels: dict[str, str]
    resource_version: int = 1
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def singular(self) -> str:
        return "Deployment" if self.kind == "deployments" else "StatefulSet"

    def selector_string(self) -> str:
        return ",".join(f"{k}={v}" for k, v in sorted(self.match_labels.items()))

    def _versioned(self) -> dict[str, Any]:
        return {
            "uid": f"uid-{self.namespace}-{self.name}",
            "resourceVersion": str(self.resource_version),
        }

    def scale_json(self) -> dict[str, Any]:
        return {
            **_envelope("Scale", "autoscaling/v1", self.namespace, self.name, **self._versioned()),
            "spec": {"replicas": self.replicas},
            "status": {"replicas": self.replicas, "selector": self.selector_string()},
        }

    def object_json(self) -> dict[str, Any]:
        template = {
            "metadata": {"labels": dict(self.match_labels)},
            "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:latest"}]},
        }
        spec: dict[str, Any] = {
            "replicas": self.replicas,
            "selector": {"matchLabels": dict(self.match_labels)},
            "template": template,
        }
        if self.kind == "statefulsets":
            spec["serviceName"] = self.name
        metadata = self._versioned() | {"generation": self.resource_version}
        if self.annotations:
            metadata["annotations"] = dict(self.annotations)
        return {
            **_envelope(self.singular, "apps/v1", self.namespace, self.name, **metadata),
            "spec": spec,
            "status": {
                "replicas": self.replicas,
                "readyReplicas": self.ready_replicas,
                "availableReplicas": self.ready_replicas,
                "observedGeneration": self.resource_version,
            },
        }


@dataclass
class Pod:
    namespace: str
    name: str
    labels: dict[str, str]
    annotations: dict[str, str] = field(default_factory=dict)
    ready: bool = True
    ip: str = ""
    ports: list[tuple[str, int]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "uid": f"uid-{self.namespace}-{self.name}",
            "labels": dict(self.labels),
        }
        if self.annotations:
            metadata["annotations"] = dict(self.annotations)
        container: dict[str, Any] = {"name": "vllm", "image": "vllm/vllm-openai:latest"}
        if self.ports:
            container["ports"] = [
                {"name": name, "containerPort": port, "protocol": "TCP"}
                for name, port in self.ports
            ]
        status: dict[str, Any] = {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if self.ready else "False"}],
        }
        if self.ip:
            status["podIP"] = self.ip
        return {
            **_envelope("Pod", "v1", self.namespace, self.name, **metadata),
            "spec": {"containers": [container]},
            "status": status,
        }


@dataclass
class Hpa:
    namespace: str
    name: str
    target_kind: str
    target_name: str
    min_replicas: int
    max_replicas: int

    def as_json(self) -> dict[str, Any]:
        return {
            **_envelope("HorizontalPodAutoscaler", "autoscaling/v2", self.namespace, self.name),
            "spec": {
                "scaleTargetRef": {
                    "apiVersion": "apps/v1",
                    "kind": self.target_kind,
                    "name": self.target_name,
                },
                "minReplicas": self.min_replicas,
                "maxReplicas": self.max_replicas,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 80},
                        },
                    }
                ],
            },
            "status": {"currentReplicas": 1, "desiredReplicas": 1},
        }


@dataclass
class SliceEndpoint:
    """One endpoint of an EndpointSlice; a condition left ``None`` is omitted from the JSON
    (the API server omits unset conditions too)."""

    pod: str
    address: str
    ready: bool | None = True
    serving: bool | None = None
    terminating: bool | None = None
    zone: str = ""

    def as_json(self, namespace: str) -> dict[str, Any]:
        conditions = {
            key: value
            for key, value in (
                ("ready", self.ready),
                ("serving", self.serving),
                ("terminating", self.terminating),
            )
            if value is not None
        }
        endpoint: dict[str, Any] = {
            "addresses": [self.address],
            "conditions": conditions,
            "targetRef": {"kind": "Pod", "namespace": namespace, "name": self.pod},
            "nodeName": f"node-{self.pod}",
        }
        if self.zone:
            endpoint["zone"] = self.zone
        return endpoint


@dataclass
class EndpointSlice:
    namespace: str
    name: str
    service: str
    endpoints: list[SliceEndpoint]
    ports: list[tuple[str, int]]
    address_type: str = "IPv4"

    @property
    def labels(self) -> dict[str, str]:
        return {
            "kubernetes.io/service-name": self.service,
            "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
        }

    def as_json(self) -> dict[str, Any]:
        return {
            **_envelope(
                "EndpointSlice",
                "discovery.k8s.io/v1",
                self.namespace,
                self.name,
                labels=self.labels,
                uid=f"uid-{self.namespace}-{self.name}",
            ),
            "addressType": self.address_type,
            "endpoints": [e.as_json(self.namespace) for e in self.endpoints],
            "ports": [{"name": name, "port": port, "protocol": "TCP"} for name, port in self.ports],
        }


_PLURALS = {"deployment": "deployments", "statefulset": "statefulsets"}


class FaultMatch(TypedDict, total=False):
    """Which requests a fault applies to: every request when empty."""

    method: str
    path_contains: str


@dataclass
class Fault:
    remaining: int
    status: int = 0
    hang_s: float = 0.0
    method: str | None = None
    path_contains: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path_contains is None or self.path_contains in path
        )


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str
    body: Any
    status: int
    timeout: str | None


@dataclass
class _ConcurrentWrite:
    kind: str
    namespace: str
    name: str
    replicas: int


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


_FAULT_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
}


class _HttpError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _matches_selector(labels: dict[str, str], selector: str) -> bool:
    """Equality-based label selectors (``a=b``, ``a==b``, ``a!=b``, ``a``, ``!a``)."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _merge_into(target: dict[str, str], patch: dict[str, Any]) -> bool:
    """A JSON merge patch of a string map (``None`` removes a key); whether it changed."""
    before = dict(target)
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = str(value)
    return target != before


class _Handler(QuietHandler):
    server: _Server

    def _handle_command(self) -> None:
        self._handle(self.command)

    # Every verb goes through the same routing; the route decides what a verb may do.
    do_GET = do_PATCH = do_PUT = do_POST = do_DELETE = _handle_command

    def _handle(self, method: str) -> None:
        api = self.server.api
        split = urlsplit(self.path)
        path = split.path
        query = parse_qs(split.query)
        content_type = self.headers.get("Content-Type", "")
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = raw.decode("utf-8", "replace")

        fault = api._take_fault(method, path)
        status = HTTPStatus.OK
        payload: Any
        try:
            if fault is not None and fault.hang_s:
                with api._lock:
                    api.hanging += 1
                api._record(method, path, query, content_type, body, 0)
                # Answer nothing until the client has given up; the server closes the
                # connection afterwards. stop() cuts the wait short.
                try:
                    api._stopping.wait(fault.hang_s)
                finally:
                    with api._lock:
                        api.hanging -= 1
                self.close_connection = True
                return
            if fault is not None:
                raise _HttpError(fault.status, f"injected fault: {fault.status}")
            if self.headers.get("Authorization") != f"Bearer {api.token}":
                raise _HttpError(401, "Unauthorized")
            payload = api._route(method, path, query, content_type, body)
        except _HttpError as exc:
            status = HTTPStatus(exc.code)
            payload = _status(exc.code, _FAULT_REASONS.get(exc.code, status.phrase), exc.message)
        api._record(method, path, query, content_type, body, int(status))
        self.send_json(status, payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    api: FakeApiServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out closed its socket; writing to it is expected to fail.
        pass


class FakeApiServer:
    """The fake API server; :meth:`start` binds a free port on 127.0.0.1."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.workloads: dict[tuple[str, str, str], Workload] = {}
        self.pods: dict[tuple[str, str], Pod] = {}
        self.hpas: list[Hpa] = []
        self.endpoint_slices: dict[tuple[str, str], EndpointSlice] = {}
        self._faults: list[Fault] = []
        self._concurrent: list[_ConcurrentWrite] = []
        self._requests: list[RecordedRequest] = []
        # Requests held without an answer right now (hang_next): one still held after the
        # client returned shows the client gave up on its own timeout.
        self.hanging = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._scheme = "http"

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> FakeApiServer:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.api = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def serve_tls(self, cert_file: str, key_file: str) -> FakeApiServer:
        """Answer over TLS with this certificate from now on (:attr:`url` becomes https)."""
        import ssl

        assert self._server is not None, "server not started"
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._scheme = "https"
        return self

    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        return f"{self._scheme}://127.0.0.1:{self._server.server_address[1]}"

    def write_kubeconfig(self, path: Path, *, context: str = "fake") -> Path:
        """A kubeconfig with one context ``context`` pointing at this server."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake-cluster", "cluster": {"server": self.url}}],
            "users": [
                {"name": "fake-user", "user": {"token": self.token}},
                {"name": "bad-user", "user": {"token": "wrong"}},
            ],
            "contexts": [
                {"name": context, "context": {"cluster": "fake-cluster", "user": "fake-user"}},
                # A second context whose user has the wrong token, to show contexts matter.
                {"name": "other", "context": {"cluster": "fake-cluster", "user": "bad-user"}},
            ],
            "current-context": "other",
        }
        path.write_text(json.dumps(config))  # JSON is YAML
        return path

    # ----------------------------------------------------------------- fixtures

    def add_workload(
        self,
        kind: str,
        namespace: str,
        name: str,
        *,
        replicas: int,
        ready_replicas: int | None = None,
        labels: dict[str, str] | None = None,
    ) -> Workload:
        plural = _PLURALS[kind]
        workload = Workload(
            plural,
            namespace,
            name,
            replicas,
            replicas if ready_replicas is None else ready_replicas,
            labels or {"app.kubernetes.io/name": name},
        )
        with self._lock:
            self.workloads[(plural, namespace, name)] = workload
        return workload

    def add_pod(
        self,
        namespace: str,
        name: str,
        labels: dict[str, str],
        *,
        ready: bool = True,
        ip: str = "",
        ports: list[tuple[str, int]] | None = None,
    ) -> Pod:
        """A pod; ``ip`` and ``ports`` ((name, containerPort) pairs) say where it listens."""
        pod = Pod(namespace, name, dict(labels), ready=ready, ip=ip, ports=list(ports or []))
        with self._lock:
            self.pods[(namespace, name)] = pod
        return pod

    def add_hpa(
        self,
        namespace: str,
        name: str,
        *,
        target_kind: str,
        target_name: str,
        min_replicas: int = 1,
        max_replicas: int = 10,
    ) -> Hpa:
        hpa = Hpa(namespace, name, target_kind, target_name, min_replicas, max_replicas)
        with self._lock:
            self.hpas.append(hpa)
        return hpa

    def add_endpoint_slice(
        self,
        namespace: str,
        name: str,
        *,
        service: str,
        endpoints: list[SliceEndpoint],
        ports: list[tuple[str, int]] | None = None,
        address_type: str = "IPv4",
    ) -> EndpointSlice:
        """A slice of Service ``service`` (replaces one of the same name); ``ports`` are
        (name, port) pairs, one ``http`` port 8000 by default."""
        slice_ = EndpointSlice(
            namespace,
            name,
            service,
            list(endpoints),
            [("http", 8000)] if ports is None else list(ports),
            address_type,
        )
        with self._lock:
            self.endpoint_slices[(namespace, name)] = slice_
        return slice_

    def workload(self, kind: str, namespace: str, name: str) -> Workload:
        plural = _PLURALS[kind]
        with self._lock:
            return self.workloads[(plural, namespace, name)]

    # ------------------------------------------------------------------- faults

    def fail_next(self, status: int, count: int = 1, **where: Unpack[FaultMatch]) -> None:
        """The next ``count`` matching requests answer ``status`` with a Status body."""
        self._inject(Fault(count, status=status, **where))

    def hang_next(self, seconds: float, count: int = 1, **where: Unpack[FaultMatch]) -> None:
        """The next ``count`` matching requests get no answer for ``seconds``."""
        self._inject(Fault(count, hang_s=seconds, **where))

    def _inject(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def write_concurrently_before_next_patch(
        self, kind: str, namespace: str, name: str, *, replicas: int
    ) -> None:
        """Another writer sets ``replicas`` just before our next scale PATCH arrives."""
        plural = _PLURALS[kind]
        with self._lock:
            self._concurrent.append(_ConcurrentWrite(plural, namespace, name, replicas))

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and fault.matches(method, path):
                    fault.remaining -= 1
                    return fault
        return None

    # ------------------------------------------------------------------ records

    def _record(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        content_type: str,
        body: Any,
        status: int,
    ) -> None:
        timeout = query.get("timeoutSeconds", [None])[0]
        with self._lock:
            self._requests.append(
                RecordedRequest(method, path, query, content_type, body, status, timeout)
            )

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, method: str, path_contains: str = "") -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and path_contains in r.path]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    # ------------------------------------------------------------------ routing

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        content_type: str,
        body: Any,
    ) -> Any:
        parts = [unquote(p) for p in path.split("/") if p]
        # /apis/apps/v1/namespaces/{ns}/{deployments|statefulsets}/{name}[/scale]
        if (
            parts[:3] == ["apis", "apps", "v1"]
            and len(parts) in (7, 8)
            and parts[3] == "namespaces"
        ):
            _, _, _, _, namespace, plural, name, *rest = parts
            if plural not in ("deployments", "statefulsets") or rest not in ([], ["scale"]):
                raise _HttpError(404, f"the server could not find the requested resource ({path})")
            return self._workload(method, plural, namespace, name, bool(rest), content_type, body)
        # /api/v1/namespaces/{ns}/pods[/{name}]
        if parts[:3] == ["api", "v1", "namespaces"] and len(parts) in (5, 6) and parts[4] == "pods":
            namespace = parts[3]
            if len(parts) == 5:
                if method != "GET":
                    raise _HttpError(405, "method not allowed")
                selector = query.get("labelSelector", [""])[0]
                return self._pod_list(namespace, selector)
            return self._pod(method, namespace, parts[5], content_type, body)
        # /apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers
        if (
            parts[:3] == ["apis", "autoscaling", "v2"]
            and len(parts) == 6
            and parts[3] == "namespaces"
            and parts[5] == "horizontalpodautoscalers"
        ):
            if method != "GET":
                raise _HttpError(405, "method not allowed")
            with self._lock:
                items = [h.as_json() for h in self.hpas if h.namespace == parts[4]]
            return {
                "kind": "HorizontalPodAutoscalerList",
                "apiVersion": "autoscaling/v2",
                "metadata": {"resourceVersion": "1"},
                "items": items,
            }
        # /apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices
        if (
            parts[:3] == ["apis", "discovery.k8s.io", "v1"]
            and len(parts) == 6
            and parts[3] == "namespaces"
            and parts[5] == "endpointslices"
        ):
            if method != "GET":
                raise _HttpError(405, "method not allowed")
            selector = query.get("labelSelector", [""])[0]
            with self._lock:
                items = [
                    s.as_json()
                    for (ns, _), s in sorted(self.endpoint_slices.items())
                    if ns == parts[4] and _matches_selector(s.labels, selector)
                ]
            return {
                "kind": "EndpointSliceList",
                "apiVersion": "discovery.k8s.io/v1",
                "metadata": {"resourceVersion": "1"},
                "items": items,
            }
        raise _HttpError(404, f"the server could not find the requested resource ({path})")

    def _workload(
        self,
        method: str,
        plural: str,
        namespace: str,
        name: str,
        scale: bool,
        content_type: str,
        body: Any,
    ) -> Any:
        with self._lock:
            workload = self.workloads.get((plural, namespace, name))
            if workload is None:
                raise _HttpError(404, f'{plural}.apps "{name}" not found')
            if method == "GET":
                return workload.scale_json() if scale else workload.object_json()
            if method != "PATCH":
                raise _HttpError(405, "method not allowed")
            for write in list(self._concurrent):
                if (write.kind, write.namespace, write.name) == (plural, namespace, name):
                    self._concurrent.remove(write)
                    workload.replicas = write.replicas
                    workload.resource_version += 1
            if content_type not in (
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
            ) or not isinstance(body, dict):
                raise _HttpError(415, f"unsupported patch: {content_type}")
            wanted_rv = (body.get("metadata") or {}).get("resourceVersion")
            if wanted_rv is not None and str(wanted_rv) != str(workload.resource_version):
                raise _HttpError(
                    409,
                    f'Operation cannot be fulfilled on {plural}.apps "{name}": the object has '
                    "been modified; please apply your changes to the latest version and try again",
                )
            replicas = (body.get("spec") or {}).get("replicas")
            if replicas is not None:
                if not isinstance(replicas, int) or replicas < 0:
                    raise _HttpError(
                        422,
                        f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid value: '
                        f"{replicas}: must be greater than or equal to 0",
                    )
                if replicas != workload.replicas:
                    workload.replicas = replicas
                    workload.ready_replicas = min(workload.ready_replicas, replicas)
                    workload.resource_version += 1
            if scale:
                return workload.scale_json()
            annotations = (body.get("metadata") or {}).get("annotations") or {}
            if _merge_into(workload.annotations, annotations):
                workload.resource_version += 1
            return workload.object_json()

    def _pod_list(self, namespace: str, selector: str) -> Any:
        with self._lock:
            items = [
                pod.as_json()
                for (ns, _), pod in sorted(self.pods.items())
                if ns == namespace and _matches_selector(pod.labels, selector)
            ]
        return {
            "kind": "PodList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": "1"},
            "items": items,
        }

    def _pod(self, method: str, namespace: str, name: str, content_type: str, body: Any) -> Any:
        with self._lock:
            pod = self.pods.get((namespace, name))
            if pod is None:
                raise _HttpError(404, f'pods "{name}" not found')
            if method == "GET":
                return pod.as_json()
            if method != "PATCH":
                raise _HttpError(405, "method not allowed")
            if content_type not in (
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
            ) or not isinstance(body, dict):
                raise _HttpError(415, f"unsupported patch: {content_type}")
            metadata = body.get("metadata") or {}
            _merge_into(pod.annotations, metadata.get("annotations") or {})
            _merge_into(pod.labels, metadata.get("labels") or {})
            return pod.as_json()
