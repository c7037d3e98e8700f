"""The one error type of the Kubernetes wrapper, shared by the client and the kubeconfig checks."""

from __future__ import annotations


class KubernetesError(Exception):
    """A failed Kubernetes call.

    ``reason`` is a short machine-readable kind: ``conflict``, ``throttled``,
    ``server-error``, ``timeout``, ``unreachable``, ``unauthorized``, ``forbidden``,
    ``not-found``, ``invalid``, ``misconfigured``, ``unexpected-response``, ``failed``.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        conflict: bool = False,
        status: int | None = None,
        reason: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable or conflict
        self.conflict = conflict
        self.status = status
        self.reason = reason
