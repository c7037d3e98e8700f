"""Chat notification transports: Slack, Feishu/Lark, DingTalk, WeCom, Microsoft Teams and a
generic signed webhook, with editable templates and storm handling (:mod:`.ratelimit`)."""

from .base import (
    DeliveryRecord,
    DeliveryResult,
    RenderedMessage,
    Transport,
    TransportError,
)
from .messages import AlertItem, Notification, OmittedGroup, sample_notification
from .ratelimit import RATE_LIMITS, RateWindow, pack, prune, send_budget, wait_before_next_send
from .registry import TRANSPORTS, transport_class, transport_for, validate_config
from .rendering import validate_template

__all__ = [
    "RATE_LIMITS",
    "TRANSPORTS",
    "AlertItem",
    "DeliveryRecord",
    "DeliveryResult",
    "Notification",
    "OmittedGroup",
    "RateWindow",
    "RenderedMessage",
    "Transport",
    "TransportError",
    "pack",
    "prune",
    "sample_notification",
    "send_budget",
    "transport_class",
    "transport_for",
    "validate_config",
    "validate_template",
    "wait_before_next_send",
]
