"""The channel kinds and their transports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Transport
from .dingtalk import DingTalkTransport
from .feishu import FeishuTransport
from .slack import SlackTransport
from .teams import TeamsTransport
from .webhook import WebhookTransport
from .wecom import WeComTransport

__all__ = ["TRANSPORTS", "transport_class", "transport_for", "validate_config"]

TRANSPORTS: dict[str, type[Transport]] = {
    cls.kind: cls
    for cls in (
        SlackTransport,
        FeishuTransport,
        DingTalkTransport,
        WeComTransport,
        TeamsTransport,
        WebhookTransport,
    )
}


def transport_class(kind: str) -> type[Transport]:
    try:
        return TRANSPORTS[kind]
    except KeyError:
        raise ValueError(
            f"unknown notification channel kind {kind!r}; "
            f"known kinds: {', '.join(sorted(TRANSPORTS))}"
        ) from None


def transport_for(kind: str, config: Mapping[str, Any], **options: Any) -> Transport:
    """The transport of ``kind`` for one channel's ``config``. ``options`` are passed to
    :class:`Transport` (``session``, ``timeout_s``, ``connect_timeout_s``, ``body_template``,
    ``title_template``, ``max_listed``, ``clock``). ValueError for an unknown kind or an
    invalid config."""
    return transport_class(kind)(config, **options)


def validate_config(kind: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` checked for ``kind`` and normalised (for the channel API's validation)."""
    return transport_class(kind).validate_config(config)
