"""A real Alertmanager on loopback, for the alert receiver's tests and benchmarks."""

from .embedded import EmbeddedAlertmanager, WebhookReceiver, find_binary

__all__ = ["EmbeddedAlertmanager", "WebhookReceiver", "find_binary"]
