"""A thin typed wrapper around the official ``kubernetes`` client, for scaling workloads.

It covers what the autoscaler needs: the ``scale`` subresource of Deployments and
StatefulSets, the workloads' ready counts and selectors, HorizontalPodAutoscalers (to spot
a second autoscaler on the same object), and pods with their annotations; and what load
balancing needs: a Service's EndpointSlices (``discovery.k8s.io/v1``), i.e. which pods
back it, where they listen and whether they are ready, serving or terminating.

Every call carries ``_request_timeout``. Every failure surfaces as
:class:`KubernetesError`, whose ``retryable`` says whether the same call can succeed later
and ``conflict`` whether the object changed under us (409: re-read, then write again).

The :class:`ApiClient` is built by :func:`build_api_client` from a kubeconfig document
(checked by :mod:`.kubeconfig`), a kubeconfig path or the pod's in-cluster service account,
with urllib3's own retries turned off: the client would otherwise silently repeat a
timed-out GET three more times, so one "10 s" read could take 40 s, and the caller's retry
policy would not be the only one.

A client built from a team's kubeconfig document calls a URL the team chose, so it goes
through the outbound policy of :mod:`apps.core.netguard`: the server URL is checked before
the client is built, and the client's connection pools are netguard's guarded ones, which
resolve the host, check every address and connect only to a checked one at each new
connection (a DNS answer that changes after the check is checked again). Proxies are off
for such clients (a proxy would resolve the name itself). Clients built from the control
plane's own identity (in-cluster service account, a host kubeconfig a superuser chose) are
the operator's and are not guarded: their server is the one the operator configured.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import urllib3
from kubernetes import config as kube_config
from kubernetes.client import (
    ApiClient,
    AppsV1Api,
    AutoscalingV2Api,
    Configuration,
    CoreV1Api,
    DiscoveryV1Api,
    V1Deployment,
    V1LabelSelector,
    V1StatefulSet,
)
from kubernetes.client.exceptions import ApiException

from apps.core.netguard import (  # the guarded pools are netguard's, shared on purpose
    GuardedHTTPConnectionPool,
    GuardedHTTPSConnectionPool,
    refusal_in,
)

from .errors import KubernetesError

__all__ = [
    "STANDBY_ASLEEP",
    "STANDBY_POD_LABEL",
    "EndpointInfo",
    "EndpointPortInfo",
    "EndpointSliceInfo",
    "HorizontalPodAutoscalerInfo",
    "KubernetesClient",
    "PodInfo",
    "WorkloadInfo",
    "WorkloadKind",
    "WorkloadScale",
    "build_api_client",
    "kubernetes_error_from_api_exception",
    "label_selector_string",
]

WorkloadKind = Literal["deployment", "statefulset"]

_KIND_NAMES: dict[WorkloadKind, str] = {"deployment": "Deployment", "statefulset": "StatefulSet"}
MERGE_PATCH = "application/merge-patch+json"

# The pod label the autoscaler's standby replicas carry while their model server sleeps
# (apps/autoscaling/actuators/standby.py); balancing membership never lists such a pod.
STANDBY_POD_LABEL = "autoscaling.llm-controlplane/standby"
STANDBY_ASLEEP = "asleep"  # its value

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class WorkloadScale:
    """The ``scale`` subresource: desired count, current pod count and pod selector."""

    resource_version: str
    spec_replicas: int
    status_replicas: int
    selector: str


@dataclass(frozen=True, slots=True)
class WorkloadInfo:
    """What the actuator needs from a Deployment or StatefulSet object itself."""

    resource_version: str
    spec_replicas: int
    ready_replicas: int
    selector: str  # label-selector syntax, built from spec.selector
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HorizontalPodAutoscalerInfo:
    namespace: str
    name: str
    target_api_version: str
    target_kind: str
    target_name: str
    min_replicas: int | None
    max_replicas: int


@dataclass(frozen=True, slots=True)
class PodInfo:
    """A pod: ``ip`` is ``status.podIP`` (empty until scheduled), ``ports`` its containers'
    named ports (``name`` → ``containerPort``; unnamed ports under ``""``)."""

    name: str
    ready: bool
    terminating: bool
    annotations: Mapping[str, str]
    labels: Mapping[str, str] = field(default_factory=dict)
    ip: str = ""
    ports: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EndpointInfo:
    """One endpoint of an EndpointSlice, its conditions as the API sends them: ``None``
    where the field is absent (the API says to read a missing ``ready`` or ``serving`` as
    true and a missing ``terminating`` as false)."""

    addresses: tuple[str, ...]
    ready: bool | None
    serving: bool | None
    terminating: bool | None
    target_kind: str
    target_name: str
    hostname: str
    node_name: str
    zone: str


@dataclass(frozen=True, slots=True)
class EndpointPortInfo:
    name: str
    port: int | None
    protocol: str


@dataclass(frozen=True, slots=True)
class EndpointSliceInfo:
    """One EndpointSlice: ``address_type`` is ``IPv4``, ``IPv6`` or ``FQDN``."""

    name: str
    address_type: str
    ports: tuple[EndpointPortInfo, ...]
    endpoints: tuple[EndpointInfo, ...]


def build_api_client(
    *,
    kubeconfig: str = "",
    kubeconfig_path: str = "",
    kube_context: str = "",
    in_cluster: bool = False,
) -> ApiClient:
    """An ApiClient for one cluster, from exactly one source of credentials.

    ``kubeconfig`` is a kubeconfig document (a team's): it is parsed and checked by
    :func:`~apps.integrations.kubernetes.kubeconfig.kubeconfig_check` (inline data only,
    no plugins, a server URL the outbound policy allows) before anything is loaded from it,
    and the client connects only to checked addresses (see the module docstring).
    ``kubeconfig_path`` loads a file as it is (exec plugins and file references included)
    and ``in_cluster`` uses the service account mounted into the pod: both act as the
    control plane itself, so callers offer them only where a superuser chose them, and
    neither is guarded. ``kube_context`` selects the context (the document's
    current context when empty). The kubeconfig is never written back (token refreshes stay
    in memory).

    Every failure to build the client, whatever the loader raised, is a non-retryable
    :class:`KubernetesError` with reason ``misconfigured``.
    """
    from .kubeconfig import kubeconfig_check, kubeconfig_load

    sources = [
        name
        for name, given in (
            ("kubeconfig", bool(kubeconfig)),
            ("kubeconfig_path", bool(kubeconfig_path)),
            ("in_cluster", in_cluster),
        )
        if given
    ]
    if len(sources) != 1:
        raise KubernetesError(
            "give exactly one of kubeconfig, kubeconfig_path and in_cluster"
            + (f" (got {', '.join(sources)})" if sources else ""),
            retryable=False,
            reason="misconfigured",
        )
    if in_cluster and kube_context:
        raise KubernetesError(
            "in_cluster excludes kube_context", retryable=False, reason="misconfigured"
        )
    configuration = Configuration()
    # Retrying is the caller's job (see the module docstring).
    configuration.retries = 0
    if kubeconfig:
        config = kubeconfig_load(kubeconfig)
        context = kubeconfig_check(config, context=kube_context)
        where = "the cluster's kubeconfig"
    else:
        where = "in-cluster service account" if in_cluster else f"kubeconfig {kubeconfig_path}"
    try:
        if in_cluster:
            kube_config.load_incluster_config(client_configuration=configuration)
            return ApiClient(configuration=configuration)
        if kubeconfig:
            kube_config.load_kube_config_from_dict(
                config_dict=config,
                context=context,
                persist_config=False,
                client_configuration=configuration,
            )
            return _guarded_api_client(configuration)
        return kube_config.new_client_from_config(
            config_file=kubeconfig_path,
            context=kube_context or None,
            persist_config=False,
            client_configuration=configuration,
        )
    except KubernetesError:
        raise
    except Exception as exc:  # noqa: BLE001
        # The loader raises whatever the document provokes (ConfigException, KeyError,
        # TypeError on a list where a mapping belongs, yaml errors, OSError): all of it is
        # configuration that retrying cannot fix, and none of it may escape unwrapped.
        context_note = f" (context {kube_context!r})" if kube_context else ""
        raise KubernetesError(
            f"cannot load Kubernetes credentials from {where}{context_note}: "
            f"{type(exc).__name__}: {str(exc)[:300]}",
            retryable=False,
            reason="misconfigured",
        ) from None


def _guarded_api_client(configuration: Configuration) -> ApiClient:
    """An ApiClient for a team's server whose connections go only to checked addresses."""
    # The kubernetes Configuration takes HTTP(S)_PROXY from the environment; a proxy would
    # resolve and reach the team's host itself. The setter also stops that lookup.
    configuration.proxy = None
    api_client = ApiClient(configuration=configuration)
    pool_manager = api_client.rest_client.pool_manager
    if type(pool_manager) is not urllib3.PoolManager:  # pragma: no cover - proxies are off
        raise KubernetesError(
            "the Kubernetes client would use a proxy", retryable=False, reason="misconfigured"
        )
    # The same pools requests uses through netguard.GuardedAdapter: each new connection
    # resolves the host, checks every address and connects only to those addresses.
    pool_manager.pool_classes_by_scheme = {
        "http": GuardedHTTPConnectionPool,
        "https": GuardedHTTPSConnectionPool,
    }
    return api_client


def label_selector_string(selector: V1LabelSelector | None) -> str:
    """``spec.selector`` in the string syntax ``labelSelector`` query parameters take."""
    if selector is None:
        return ""
    terms = [f"{k}={v}" for k, v in sorted((selector.match_labels or {}).items())]
    for expr in selector.match_expressions or []:
        values = ",".join(sorted(expr.values or []))
        match expr.operator:
            case "In":
                terms.append(f"{expr.key} in ({values})")
            case "NotIn":
                terms.append(f"{expr.key} notin ({values})")
            case "Exists":
                terms.append(expr.key)
            case "DoesNotExist":
                terms.append(f"!{expr.key}")
            case other:
                raise KubernetesError(
                    f"unknown label selector operator {other!r}",
                    retryable=False,
                    reason="unexpected-response",
                )
    return ",".join(terms)


def _api_message(exc: ApiException) -> str:
    """The ``message`` of the Status object the API server sends with an error.

    Any other answer is summarised by its size, never echoed: the server URL comes from a
    team's kubeconfig, and the error text ends up in decisions and alerts the team reads,
    so echoing would hand back what some other service behind that URL answered.
    """
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if body:
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            payload = None
        if isinstance(payload, dict) and payload.get("kind") == "Status":
            return str(payload.get("message") or exc.reason or "")[:500]
        return f"{exc.reason or 'error'} (an answer of {len(body)} characters that is not a Status)"
    return str(exc.reason or "")


# How an HTTP error status of the API server maps onto KubernetesError: what happened
# (before the server's own message), whether retrying can help, and the reason.
# 5xx, status 0 and any other status are handled in the function below.
_STATUS_ERRORS: dict[int, tuple[str, bool, str]] = {
    409: ("conflict (409), the object changed since it was read", True, "conflict"),
    429: ("throttled by the API server (429), retry later", True, "throttled"),
    401: (
        "credentials rejected (401 Unauthorized); check the kubeconfig user "
        "or the service-account token",
        False,
        "unauthorized",
    ),
    403: (
        "forbidden (403); the control plane's identity lacks an RBAC permission",
        False,
        "forbidden",
    ),
    404: ("not found (404)", False, "not-found"),
    400: ("rejected as invalid (400)", False, "invalid"),
    422: ("rejected as invalid (422)", False, "invalid"),
}


def kubernetes_error_from_api_exception(exc: ApiException, action: str) -> KubernetesError:
    """Map an HTTP error answer of the API server to :class:`KubernetesError`."""
    status = int(exc.status or 0)
    if status == 0:
        # The client raises status-0 ApiExceptions for TLS failures: a wrong CA or
        # server name, which retrying does not fix.
        return KubernetesError(
            f"{action}: TLS failure talking to the API server: {exc.reason}",
            retryable=False,
            reason="misconfigured",
        )
    if status >= 500:
        what, retryable, reason = f"API server error ({status}), retry later", True, "server-error"
    else:
        what, retryable, reason = _STATUS_ERRORS.get(
            status, (f"refused ({status})", False, "failed")
        )
    return KubernetesError(
        f"{action}: {what}: {_api_message(exc)}",
        retryable=retryable,
        conflict=status == 409,
        status=status,
        reason=reason,
    )


class KubernetesClient:
    """Typed calls against one cluster; ``timeout_s`` bounds every request."""

    def __init__(self, api_client: ApiClient, *, timeout_s: float = 10.0) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.api_client = api_client
        self.timeout_s = timeout_s
        self._apps = AppsV1Api(api_client)
        self._core = CoreV1Api(api_client)
        self._autoscaling = AutoscalingV2Api(api_client)
        self._discovery = DiscoveryV1Api(api_client)

    # ---------------------------------------------------------------- plumbing

    def _call(self, action: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, _request_timeout=self.timeout_s, **kwargs)
        except ApiException as exc:
            raise kubernetes_error_from_api_exception(exc, action) from None
        except urllib3.exceptions.HTTPError as exc:
            refused = refusal_in(exc)
            if refused is not None:
                # The server's host now resolves to an address the outbound policy refuses.
                raise KubernetesError(
                    f"{action}: the API server's address is refused: {refused}",
                    retryable=False,
                    reason="misconfigured",
                ) from None
            cause = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) else exc
            if isinstance(cause, urllib3.exceptions.SSLError):
                # With urllib3's retries off, TLS failures arrive here wrapped rather than
                # as the client's status-0 ApiException: the same misconfiguration.
                raise KubernetesError(
                    f"{action}: TLS failure talking to the API server: {cause}",
                    retryable=False,
                    reason="misconfigured",
                ) from None
            # NewConnectionError (refused, no route) subclasses ConnectTimeoutError in
            # urllib3 for historical reasons, so it must be told apart first.
            timed_out = not isinstance(cause, urllib3.exceptions.NewConnectionError) and isinstance(
                cause, urllib3.exceptions.TimeoutError | TimeoutError
            )
            if timed_out:
                raise KubernetesError(
                    f"{action}: the API server did not answer within {self.timeout_s:g}s",
                    retryable=True,
                    reason="timeout",
                ) from None
            raise KubernetesError(
                f"{action}: API server unreachable: {cause}",
                retryable=True,
                reason="unreachable",
            ) from None
        except ValueError as exc:
            # pydantic's ValidationError: the answer did not deserialize into the model.
            raise KubernetesError(
                f"{action}: unexpected answer from the API server: {exc}",
                retryable=True,
                reason="unexpected-response",
            ) from None

    @staticmethod
    def _describe(kind: WorkloadKind, namespace: str, name: str) -> str:
        return f"{_KIND_NAMES[kind]} {namespace}/{name}"

    # ------------------------------------------------------------------- scale

    def read_scale(self, kind: WorkloadKind, namespace: str, name: str) -> WorkloadScale:
        action = f"read scale of {self._describe(kind, namespace, name)}"
        read = (
            self._apps.read_namespaced_deployment_scale
            if kind == "deployment"
            else self._apps.read_namespaced_stateful_set_scale
        )
        scale = self._call(action, read, name, namespace)
        return _workload_scale(scale)

    def patch_scale(
        self,
        kind: WorkloadKind,
        namespace: str,
        name: str,
        *,
        replicas: int,
        resource_version: str | None = None,
    ) -> WorkloadScale:
        """Set ``spec.replicas`` by JSON merge patch of the scale subresource.

        With ``resource_version`` the API server rejects the write with 409 when the object
        changed since that version was read (optimistic concurrency).
        """
        action = f"scale {self._describe(kind, namespace, name)} to {replicas}"
        body: dict[str, Any] = {"spec": {"replicas": replicas}}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        patch = (
            self._apps.patch_namespaced_deployment_scale
            if kind == "deployment"
            else self._apps.patch_namespaced_stateful_set_scale
        )
        # Without an explicit content type the client sends a dict as strategic merge
        # patch; a JSON merge patch means the same here on every API server.
        scale = self._call(action, patch, name, namespace, body, _content_type=MERGE_PATCH)
        return _workload_scale(scale)

    # --------------------------------------------------------------- workloads

    def read_workload(self, kind: WorkloadKind, namespace: str, name: str) -> WorkloadInfo:
        action = f"read {self._describe(kind, namespace, name)}"
        obj: V1Deployment | V1StatefulSet
        if kind == "deployment":
            obj = self._call(action, self._apps.read_namespaced_deployment, name, namespace)
        else:
            obj = self._call(action, self._apps.read_namespaced_stateful_set, name, namespace)
        spec, status, metadata = obj.spec, obj.status, obj.metadata
        if spec is None:
            raise KubernetesError(
                f"{action}: the object has no spec", retryable=True, reason="unexpected-response"
            )
        return WorkloadInfo(
            resource_version=(metadata.resource_version if metadata else None) or "",
            spec_replicas=spec.replicas if spec.replicas is not None else 1,
            # ready_replicas is omitted from the status while it is zero.
            ready_replicas=(status.ready_replicas or 0) if status else 0,
            selector=label_selector_string(spec.selector),
            annotations=dict((metadata.annotations if metadata else None) or {}),
        )

    def patch_workload(
        self,
        kind: WorkloadKind,
        namespace: str,
        name: str,
        *,
        replicas: int,
        annotations: Mapping[str, str | None],
        resource_version: str,
    ) -> WorkloadInfo:
        """Set ``spec.replicas`` and annotations of the workload object in one JSON merge
        patch, rejected with 409 when the object changed since ``resource_version``: the
        count and the annotation describing it never disagree."""
        action = f"scale {self._describe(kind, namespace, name)} to {replicas}"
        body: dict[str, Any] = {
            "metadata": {"resourceVersion": resource_version, "annotations": dict(annotations)},
            "spec": {"replicas": replicas},
        }
        patch = (
            self._apps.patch_namespaced_deployment
            if kind == "deployment"
            else self._apps.patch_namespaced_stateful_set
        )
        self._call(action, patch, name, namespace, body, _content_type=MERGE_PATCH)
        return self.read_workload(kind, namespace, name)

    def list_horizontal_pod_autoscalers(self, namespace: str) -> list[HorizontalPodAutoscalerInfo]:
        action = f"list HorizontalPodAutoscalers in {namespace}"
        answer = self._call(
            action, self._autoscaling.list_namespaced_horizontal_pod_autoscaler, namespace
        )
        hpas = []
        for item in answer.items:
            ref = item.spec.scale_target_ref if item.spec else None
            if ref is None or item.spec is None:
                continue
            hpas.append(
                HorizontalPodAutoscalerInfo(
                    namespace=namespace,
                    name=(item.metadata.name if item.metadata else None) or "",
                    target_api_version=ref.api_version or "",
                    target_kind=ref.kind,
                    target_name=ref.name,
                    min_replicas=item.spec.min_replicas,
                    max_replicas=item.spec.max_replicas,
                )
            )
        return hpas

    # -------------------------------------------------------------------- pods

    def list_pods(self, namespace: str, label_selector: str) -> list[PodInfo]:
        action = f"list pods in {namespace} matching {label_selector!r}"
        answer = self._call(
            action, self._core.list_namespaced_pod, namespace, label_selector=label_selector
        )
        pods = []
        for item in answer.items:
            metadata = item.metadata
            if metadata is None or not metadata.name:
                continue
            conditions = (item.status.conditions if item.status else None) or []
            ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
            containers = (item.spec.containers if item.spec else None) or []
            ports = {
                port.name or "": port.container_port
                for container in reversed(containers)
                for port in reversed(container.ports or [])
            }
            pods.append(
                PodInfo(
                    name=metadata.name,
                    ready=ready,
                    terminating=metadata.deletion_timestamp is not None,
                    annotations=dict(metadata.annotations or {}),
                    labels=dict(metadata.labels or {}),
                    ip=(item.status.pod_ip if item.status else None) or "",
                    ports=ports,
                )
            )
        return pods

    def patch_pod_annotations(
        self, namespace: str, name: str, annotations: Mapping[str, str | None]
    ) -> None:
        """Set (or, with ``None``, remove) annotations on a pod by JSON merge patch."""
        self._patch_pod_metadata(namespace, name, "annotations", annotations)

    def patch_pod_labels(self, namespace: str, name: str, labels: Mapping[str, str | None]) -> None:
        """Set (or, with ``None``, remove) labels on a pod by JSON merge patch."""
        self._patch_pod_metadata(namespace, name, "labels", labels)

    def _patch_pod_metadata(
        self, namespace: str, name: str, field_name: str, values: Mapping[str, str | None]
    ) -> None:
        action = f"set {field_name} of pod {namespace}/{name}"
        body = {"metadata": {field_name: dict(values)}}
        self._call(
            action,
            self._core.patch_namespaced_pod,
            name,
            namespace,
            body,
            _content_type=MERGE_PATCH,
        )

    # --------------------------------------------------------- endpoint slices

    def list_endpoint_slices(self, namespace: str, service: str) -> list[EndpointSliceInfo]:
        """The EndpointSlices of Service ``namespace/service`` (selected by the
        ``kubernetes.io/service-name`` label the EndpointSlice controller sets)."""
        action = f"list EndpointSlices of Service {namespace}/{service}"
        answer = self._call(
            action,
            self._discovery.list_namespaced_endpoint_slice,
            namespace,
            label_selector=f"kubernetes.io/service-name={service}",
        )
        return [_endpoint_slice(item) for item in answer.items]


def _endpoint_slice(item: Any) -> EndpointSliceInfo:
    ports = tuple(
        EndpointPortInfo(name=p.name or "", port=p.port, protocol=p.protocol or "TCP")
        for p in item.ports or []
    )
    endpoints = []
    for endpoint in item.endpoints or []:
        conditions, ref = endpoint.conditions, endpoint.target_ref
        endpoints.append(
            EndpointInfo(
                addresses=tuple(endpoint.addresses or ()),
                ready=conditions.ready if conditions else None,
                serving=conditions.serving if conditions else None,
                terminating=conditions.terminating if conditions else None,
                target_kind=(ref.kind if ref else None) or "",
                target_name=(ref.name if ref else None) or "",
                hostname=endpoint.hostname or "",
                node_name=endpoint.node_name or "",
                zone=endpoint.zone or "",
            )
        )
    return EndpointSliceInfo(
        name=(item.metadata.name if item.metadata else None) or "",
        address_type=item.address_type or "",
        ports=ports,
        endpoints=tuple(endpoints),
    )


def _workload_scale(scale: Any) -> WorkloadScale:
    spec, status, metadata = scale.spec, scale.status, scale.metadata
    return WorkloadScale(
        resource_version=(metadata.resource_version if metadata else None) or "",
        spec_replicas=(spec.replicas if spec else None) or 0,
        status_replicas=(status.replicas if status else None) or 0,
        selector=(status.selector if status else None) or "",
    )
