"""Storm handling: the platforms' send limits, a sliding-window limiter and a summariser.

Everything here is a pure function of its arguments (no clock, no I/O): the alerts app keeps
each channel's recent send timestamps wherever it likes (Redis, the database) and asks

1. :func:`send_budget` — how many messages may go out right now (0: wait
   :func:`wait_before_next_send` seconds and ask again), then
2. :func:`pack` — the pending notifications packed into at most that many messages, in
   which every alert is still represented: listed individually up to a per-message cap, the
   rest counted per alert name and status with their fingerprints.

Windows are half-open: a send at ``t`` occupies every window ``(now - seconds, now]`` with
``now`` in ``[t, t + seconds)``.

Platform limits (per webhook / bot):

* Slack incoming webhooks: 1 message per second, short bursts tolerated —
  https://api.slack.com/apis/rate-limits (section "Incoming webhooks" / posting messages).
* Feishu/Lark custom bot: 100 per minute and 5 per second —
  https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot (使用限制 / limits).
* DingTalk custom robot: 20 per minute; past that the robot is throttled for 10 minutes —
  https://open.dingtalk.com/document/robots/custom-robot-access (消息发送频率限制).
* WeCom group robot: 20 per minute —
  https://developer.work.weixin.qq.com/document/path/91770 (消息发送频率限制).
* Microsoft Teams: the connector/incoming-webhook throttling table (4 per second, 60 per 30 s,
  100 per hour, 150 per 2 hours, 1800 per day), which we assume for Workflows webhooks too —
  https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using#rate-limiting-for-connectors
* Generic webhook: 60 per minute unless the channel configures ``max_per_minute``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .messages import Notification, merge_omitted, severity_rank

__all__ = [
    "DEFAULT_PER_MESSAGE_CAP",
    "RATE_LIMITS",
    "RateWindow",
    "pack",
    "prune",
    "send_budget",
    "wait_before_next_send",
]


@dataclass(frozen=True)
class RateWindow:
    """At most ``max_messages`` sends in any ``seconds``-long sliding window."""

    seconds: float
    max_messages: int

    def __post_init__(self) -> None:
        if self.seconds <= 0 or self.max_messages < 1:
            raise ValueError("a rate window needs seconds > 0 and max_messages >= 1")


RATE_LIMITS: dict[str, tuple[RateWindow, ...]] = {
    "slack": (RateWindow(1, 1),),
    "feishu": (RateWindow(1, 5), RateWindow(60, 100)),
    "dingtalk": (RateWindow(60, 20),),
    "wecom": (RateWindow(60, 20),),
    "teams": (
        RateWindow(1, 4),
        RateWindow(30, 60),
        RateWindow(3600, 100),
        RateWindow(7200, 150),
        RateWindow(86400, 1800),
    ),
    "webhook": (RateWindow(60, 60),),
}

# A wait is rounded up by this much so that, when the caller comes back after exactly the
# returned wait, the send that blocked it is clearly outside the window despite float
# rounding (Unix timestamps near 1.7e9 carry about 0.2 µs of error).
_WAIT_PAD_S = 0.001


def _in_window(sent_at: Sequence[float], window: RateWindow, now: float) -> list[float]:
    start = now - window.seconds
    return sorted(t for t in sent_at if t > start)


def wait_before_next_send(
    sent_at: Iterable[float], limits: Sequence[RateWindow], now: float
) -> float:
    """Seconds to wait before one more send keeps every window within its limit; 0.0 if a
    send is allowed now. Timestamps in the future (clock skew) count as sends."""
    sent = list(sent_at)
    wait = 0.0
    for window in limits:
        recent = _in_window(sent, window, now)
        excess = len(recent) - window.max_messages
        if excess >= 0:
            # The window frees up when the oldest of the last max_messages sends leaves it.
            oldest_blocking = recent[excess]
            wait = max(wait, oldest_blocking + window.seconds - now + _WAIT_PAD_S)
    return wait


def send_budget(sent_at: Iterable[float], limits: Sequence[RateWindow], now: float) -> int:
    """How many messages may be sent right now, back to back, without breaking any window
    (now or later: a send only ever leaves windows as time passes)."""
    sent = list(sent_at)
    budget: int | None = None
    for window in limits:
        left = max(0, window.max_messages - len(_in_window(sent, window, now)))
        budget = left if budget is None else min(budget, left)
    return 0 if budget is None else budget


def prune(sent_at: Iterable[float], limits: Sequence[RateWindow], now: float) -> list[float]:
    """The timestamps that can still matter (inside the longest window), oldest first."""
    if not limits:
        return []
    horizon = now - max(w.seconds for w in limits)
    return sorted(t for t in sent_at if t > horizon)


# ---------------------------------------------------------------------------------------
# The summariser

DEFAULT_PER_MESSAGE_CAP = 20

_DIGEST_TITLE = {
    "en": "{title} (+{more} more alert groups)",
    "zh": "{title}（另有 {more} 个告警组）",  # noqa: RUF001
}


def _merge(chunk: Sequence[Notification]) -> Notification:
    if len(chunk) == 1:
        return chunk[0]
    first = chunk[0]
    common = {
        k: v
        for k, v in first.group_labels.items()
        if all(n.group_labels.get(k) == v for n in chunk[1:])
    }
    severities = [n.severity for n in chunk if n.severity]
    return Notification(
        title=_DIGEST_TITLE[first.language].format(title=first.title, more=len(chunk) - 1),
        status="firing" if any(n.status == "firing" for n in chunk) else "resolved",
        severity=min(severities, key=severity_rank) if severities else "",
        group_labels=common,
        alerts=tuple(a for n in chunk for a in n.alerts),
        firing_count=sum(n.firing_count for n in chunk),
        resolved_count=sum(n.resolved_count for n in chunk),
        console_url=next((n.console_url for n in chunk if n.console_url), ""),
        language=first.language,
        omitted=sum(n.omitted for n in chunk),
        omitted_groups=merge_omitted(*(n.omitted_groups for n in chunk)),
    )


def _largest_fitting(n: Notification, fits: Callable[[Notification], bool]) -> Notification:
    """``n`` with as many of its listed alerts kept as still fit (binary search)."""
    if fits(n):
        return n
    lo, hi = 0, len(n.alerts) - 1
    best = n.listing(0)
    while lo <= hi:
        mid = (lo + hi) // 2
        candidate = n.listing(mid)
        if fits(candidate):
            best, lo = candidate, mid + 1
        else:
            hi = mid - 1
    return best


def pack(
    pending: Sequence[Notification],
    max_messages: int,
    *,
    per_message_cap: int = DEFAULT_PER_MESSAGE_CAP,
    fits: Callable[[Notification], bool] | None = None,
) -> list[Notification]:
    """``pending`` notifications for one channel packed into at most ``max_messages``.

    Nothing is dropped: each result lists at most ``per_message_cap`` alerts individually
    (fewer if ``fits`` — typically :meth:`Transport.fits` — says the message would exceed
    the platform's size limits) and folds the others into per-name/status groups that keep
    every fingerprint. When there are more notifications than messages, they are ordered
    most urgent first (firing before resolved, then by severity) and merged in contiguous,
    near-equal runs into digests titled after their first member.

    A message that does not fit even with no alert listed is returned as such: the
    transport's renderer shortens the summary lines and, at worst, the text to fit.
    """
    if not pending:
        return []
    if max_messages < 1:
        raise ValueError("max_messages must be at least 1: wait until the limiter allows a send")
    if per_message_cap < 0:
        raise ValueError("per_message_cap cannot be negative")
    if len(pending) <= max_messages:
        chunks: list[list[Notification]] = [[n] for n in pending]
    else:
        ordered = sorted(
            enumerate(pending),
            key=lambda item: (item[1].status != "firing", severity_rank(item[1].severity), item[0]),
        )
        size, extra = divmod(len(ordered), max_messages)
        chunks, start = [], 0
        for i in range(max_messages):
            end = start + size + (1 if i < extra else 0)
            chunks.append([n for _, n in ordered[start:end]])
            start = end
    messages = []
    for chunk in chunks:
        message = _merge(chunk).listing(per_message_cap)
        if fits is not None:
            message = _largest_fitting(message, fits)
        messages.append(message)
    return messages
