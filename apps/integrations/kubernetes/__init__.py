from .client import (
    EndpointInfo,
    EndpointPortInfo,
    EndpointSliceInfo,
    HorizontalPodAutoscalerInfo,
    KubernetesClient,
    PodInfo,
    WorkloadInfo,
    WorkloadKind,
    WorkloadScale,
    build_api_client,
    kubernetes_error_from_api_exception,
    label_selector_string,
)
from .errors import KubernetesError
from .kubeconfig import (
    KUBECONFIG_MAX_BYTES,
    kubeconfig_check,
    kubeconfig_load,
    kubeconfig_server_check,
)

__all__ = [
    "KUBECONFIG_MAX_BYTES",
    "EndpointInfo",
    "EndpointPortInfo",
    "EndpointSliceInfo",
    "HorizontalPodAutoscalerInfo",
    "KubernetesClient",
    "KubernetesError",
    "PodInfo",
    "WorkloadInfo",
    "WorkloadKind",
    "WorkloadScale",
    "build_api_client",
    "kubeconfig_check",
    "kubeconfig_load",
    "kubeconfig_server_check",
    "kubernetes_error_from_api_exception",
    "label_selector_string",
]
