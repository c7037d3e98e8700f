from .client import (
    HorizontalPodAutoscalerInfo,
    KubernetesClient,
    KubernetesError,
    PodInfo,
    WorkloadInfo,
    WorkloadKind,
    WorkloadScale,
    build_api_client,
    kubernetes_error_from_api_exception,
    label_selector_string,
)

__all__ = [
    "HorizontalPodAutoscalerInfo",
    "KubernetesClient",
    "KubernetesError",
    "PodInfo",
    "WorkloadInfo",
    "WorkloadKind",
    "WorkloadScale",
    "build_api_client",
    "kubernetes_error_from_api_exception",
    "label_selector_string",
]
