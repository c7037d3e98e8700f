"""The :class:`Transport` base: render within the platform's limits, sign, post, map errors.

A concrete transport (one module per channel kind) supplies only what differs per platform:
the payload built from the rendered title and body (:meth:`Transport.build`), its size check
(:meth:`Transport.within_limits`), its signature if any (:meth:`Transport.prepare`) and how
it reports errors in a response (:meth:`Transport.classify`). Posting, timing, timeouts,
``Retry-After`` and the mapping of HTTP statuses live here once.

Every send returns a :class:`DeliveryResult` or raises :class:`TransportError`; both carry
the status code, the latency and a short summary of the platform's answer (the HTTP status
and the platform's error code, never the body: whatever answers is not trusted to say
something fit to show a whole team) so that the caller can record every delivery
(:meth:`Transport.deliver` does that conversion). ``permanent`` on the
error says that retrying the same message to the same channel cannot help (deleted hook,
bad token, signature mismatch, rejected content); everything else is retryable, with
``retry_after_s`` set when the platform asked for a pause or throttled us.

The webhook URL of every kind is a credential (Slack, WeCom, DingTalk and Teams embed their
token in it), so messages and logs name only the scheme and host.

Destinations: a kind with a fixed platform host (:attr:`Transport.platform_hosts`) accepts
only that host, plus what the operator adds in ``CHAT_<KIND>_HOSTS``; the generic webhook
accepts any host. Every post goes through :mod:`apps.core.netguard`: the connection is made
only to addresses checked against internal ranges (unless ``OUTBOUND_ALLOWED_NETWORKS``
allows them), so a URL saved before the rule, or a DNS answer that changed since, cannot
reach an internal service. Redirects are never followed.
"""

from __future__ import annotations

import email.utils
import http
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qs, quote, urlsplit

import requests
import urllib3
from django.conf import settings

from apps.core.netguard import (
    DestinationRefused,
    guard_session,
    guarded_session,
    host_matches,
    parse_destination,
    refusal_in,
)

from .messages import Language, Notification, sample_notification
from .ratelimit import RATE_LIMITS, RateWindow
from .rendering import (
    Rendered,
    Template,
    View,
    compile_template,
    render_text,
    truncate_utf8,
    utf8_len,
)

__all__ = [
    "DeliveryRecord",
    "DeliveryResult",
    "MarkdownRobotTransport",
    "PreparedRequest",
    "RenderedMessage",
    "Rule",
    "Signing",
    "Transport",
    "TransportError",
    "fit_text",
    "http_status_rule",
    "json_bytes",
    "json_code_rule",
    "parse_retry_after",
    "response_summary",
]

Signing = Literal["unsigned", "optional", "required"]

_USER_AGENT = "llm-controlplane-notifier/1"
_ANSWER_READ_BYTES = 64 * 1024


class TransportError(Exception):
    """A delivery that did not succeed.

    ``permanent`` — retrying cannot help until the channel's configuration changes or the
    message does; ``retry_after_s`` — when retrying, wait at least this long (rate limits,
    ``Retry-After``); ``status_code``/``latency_s`` are None when no HTTP answer came.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        kind: str = "",
        status_code: int | None = None,
        latency_s: float | None = None,
        retry_after_s: float | None = None,
        response_summary: str = "",
        platform_code: int | str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.kind = kind
        self.status_code = status_code
        self.latency_s = latency_s
        self.retry_after_s = retry_after_s
        self.response_summary = response_summary
        self.platform_code = platform_code

    @property
    def retryable(self) -> bool:
        return not self.permanent


@dataclass(frozen=True)
class DeliveryResult:
    """A successful send."""

    kind: str
    status_code: int
    latency_s: float
    response_summary: str


@dataclass(frozen=True)
class DeliveryRecord:
    """One delivery attempt, success or failure, in the shape the caller stores."""

    kind: str
    ok: bool
    status_code: int | None
    latency_s: float | None
    response_summary: str = ""
    error: str = ""
    permanent: bool = False
    retry_after_s: float | None = None

    @classmethod
    def from_result(cls, result: DeliveryResult) -> DeliveryRecord:
        return cls(
            kind=result.kind,
            ok=True,
            status_code=result.status_code,
            latency_s=result.latency_s,
            response_summary=result.response_summary,
        )

    @classmethod
    def from_error(cls, error: TransportError) -> DeliveryRecord:
        return cls(
            kind=error.kind,
            ok=False,
            status_code=error.status_code,
            latency_s=error.latency_s,
            response_summary=error.response_summary,
            error=error.message,
            permanent=error.permanent,
            retry_after_s=error.retry_after_s,
        )


@dataclass(frozen=True)
class Rule:
    """How one kind of failed answer maps onto :class:`TransportError`."""

    reason: str
    permanent: bool
    rate_limited: bool = False
    retry_after_s: float | None = None  # when rate-limited and no Retry-After was sent
    code: int | str | None = None


@dataclass(frozen=True)
class PreparedRequest:
    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RenderedMessage:
    """A platform payload ready to sign and post, and how it represents the alerts."""

    payload: dict[str, Any]
    title: str
    text: str
    listed: int  # alerts shown individually
    summarised: int  # alerts only counted in summary lines
    truncated: bool = False  # the last-resort cut of the text was needed


def parse_retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP-date (RFC 9110
    section 10.2.3, https://www.rfc-editor.org/rfc/rfc9110#field.retry-after)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def http_status_rule(status: int) -> Rule | None:
    """The generic reading of an HTTP status; None for success (2xx)."""
    if 200 <= status < 300:
        return None
    if status == 429:
        return Rule("rate limited (HTTP 429)", permanent=False, rate_limited=True)
    if status in (408, 425) or status >= 500:
        return Rule(f"the platform failed or is unavailable (HTTP {status})", permanent=False)
    if 300 <= status < 400:
        return Rule(
            f"the webhook URL redirects (HTTP {status}); configure the final URL instead",
            permanent=True,
        )
    if status in (401, 403):
        return Rule(
            f"the platform rejected the webhook's credentials (HTTP {status})", permanent=True
        )
    if status in (404, 410):
        return Rule(
            f"the webhook does not exist any more (HTTP {status}): it was deleted or disabled",
            permanent=True,
        )
    if status == 413:
        return Rule("the platform refused the message as too large (HTTP 413)", permanent=True)
    if 400 <= status < 500:
        return Rule(f"the platform rejected the request (HTTP {status})", permanent=True)
    return Rule(f"unexpected HTTP status {status}", permanent=False)


def json_code_rule(
    data: Any,
    *,
    platform: str,
    code_keys: tuple[str, ...],
    message_keys: tuple[str, ...],
    rules: Mapping[int, Rule],
) -> Rule | None:
    """For platforms that answer HTTP 200 with ``{"<code>": non-zero, "<msg>": ...}`` on
    errors (Feishu, DingTalk, WeCom): the matching rule, or None when the code says success
    or there is no code. Unknown codes are retryable: a retry costs little, while wrongly
    calling a transient failure permanent would lose the notification."""
    if not isinstance(data, dict):
        return None
    code = next((data[k] for k in code_keys if k in data), None)
    if code is None or str(code) == "0":
        return None
    message = next((str(data[k]) for k in message_keys if data.get(k)), "") or "no message"
    try:
        known = rules.get(int(code))
    except (TypeError, ValueError):
        known = None
    if known is None:
        return Rule(
            f"{platform} answered code {code} ({message}); not a known permanent error",
            permanent=False,
            code=code,
        )
    return Rule(
        f"{known.reason} ({platform} code {code}: {message})",
        permanent=known.permanent,
        rate_limited=known.rate_limited,
        retry_after_s=known.retry_after_s,
        code=code,
    )


def response_summary(status: int, *, platform: str = "", code: int | str | None = None) -> str:
    """What is stored and shown of an answer: the status with its standard phrase (not the
    server's own reason text) and the platform's error code when it sent one."""
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    summary = f"HTTP {status} {phrase}".rstrip()
    if code is not None:
        shown = "".join(ch for ch in str(code) if ch.isalnum() or ch in "_-.")[:64]
        summary += f"; {platform} code {shown}".replace("  ", " ")
    return summary


def json_bytes(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def fit_text(
    make: Callable[[str], dict[str, Any]],
    text: str,
    *,
    max_bytes: int,
    language: Language,
    within: Callable[[dict[str, Any]], bool],
) -> dict[str, Any]:
    """The payload ``make(text)`` with ``text`` cut (whole lines first, with a note) until
    ``within`` accepts it — for limits on a whole payload rather than on one field."""
    budget = max_bytes
    while True:
        payload = make(truncate_utf8(text, budget, language=language))
        if within(payload) or budget == 0:
            return payload
        budget = budget * 3 // 4 if budget > 64 else 0


def _markdown_url(url: str) -> str:
    """A URL safe inside ``[text](url)``, or "" if it is not http(s)."""
    if not url.startswith(("http://", "https://")):
        return ""
    return quote(url, safe=":/?#[]@!$&'*+,;=%~")


def _endpoint(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")


# Progressively more compact renderings of the summary lines, tried in order.
_LADDER = (View(5, 20), View(2, 10), View(0, 5), View(0, 0))


class Transport(ABC):
    """One notification channel: a webhook of one kind with its configuration."""

    kind: ClassVar[str]
    display_name: ClassVar[str]
    template_name: ClassVar[str]  # the default body template, per language
    signing: ClassVar[Signing] = "unsigned"
    signing_prefix: ClassVar[str] = ""  # documented prefix of the platform's secrets
    url_query_param: ClassVar[str] = ""  # query parameter the platform's webhook URLs carry
    extra_config: ClassVar[tuple[str, ...]] = ()
    default_retry_after_s: ClassVar[float] = 30.0
    # The platform's own webhook hosts ("*.example.com": any name below example.com); None
    # for kinds that may post anywhere public (the generic webhook).
    platform_hosts: ClassVar[tuple[str, ...] | None] = None

    def __init__(
        self,
        config: Mapping[str, Any],
        *,
        session: requests.Session | None = None,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 5.0,
        body_template: str | None = None,
        title_template: str | None = None,
        max_listed: int = 20,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = self.validate_config(config)
        self.webhook_url: str = self.config["webhook_url"]
        self.secret: str = self.config.get("secret", "")
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.max_listed = max_listed
        self.clock = clock
        self._session = guard_session(session) if session is not None else None
        self._body_template: Template | None = (
            compile_template(body_template) if body_template else None
        )
        self._title_template: Template | None = (
            compile_template(title_template) if title_template else None
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {_endpoint(self.webhook_url)}>"

    # -- configuration ------------------------------------------------------------------

    @classmethod
    def allowed_hosts(cls) -> tuple[str, ...] | None:
        """The hosts this kind may post to (None: any public host): the platform's own and
        the operator's additions in ``CHAT_<KIND>_HOSTS``."""
        if cls.platform_hosts is None:
            return None
        extra = getattr(settings, f"CHAT_{cls.kind.upper()}_HOSTS", None) or ()
        return (*cls.platform_hosts, *extra)

    @classmethod
    def validate_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """The channel configuration checked and normalised; ValueError saying what is wrong.

        Keys: ``webhook_url`` (required, http or https), ``secret`` (per kind: not
        accepted, optional or required) and the kind's :attr:`extra_config`.
        """
        name = cls.display_name
        if not isinstance(config, Mapping):
            raise ValueError(f"{name} channel configuration must be an object")
        allowed = {"webhook_url", "secret", *cls.extra_config}
        unknown = sorted(set(config) - allowed)
        if unknown:
            raise ValueError(
                f"unknown {name} configuration key(s): {', '.join(unknown)} "
                f"(allowed: {', '.join(sorted(allowed))})"
            )
        url = config.get("webhook_url")
        if not isinstance(url, str) or not url.strip():
            raise ValueError(f"{name}: webhook_url is required")
        url = url.strip()
        try:
            destination = parse_destination(url, field="webhook_url")
        except DestinationRefused as exc:
            raise ValueError(f"{name}: {exc}") from None
        hosts = cls.allowed_hosts()
        if hosts is not None and not host_matches(destination.host, hosts):
            raise ValueError(
                f"{name}: webhook_url must point at {' or '.join(hosts)}, not "
                f"{destination.host} (an operator can add hosts with CHAT_{cls.kind.upper()}_HOSTS)"
            )
        parts = urlsplit(url)
        if cls.url_query_param and not parse_qs(parts.query).get(cls.url_query_param):
            raise ValueError(
                f"{name}: webhook_url must carry the {cls.url_query_param}=… query parameter "
                f"that {name} shows when the robot is added"
            )
        cleaned: dict[str, Any] = {"webhook_url": url}
        secret = config.get("secret") or ""
        if not isinstance(secret, str):
            raise ValueError(f"{name}: secret must be a string")
        secret = secret.strip()
        if secret and cls.signing == "unsigned":
            raise ValueError(
                f"{name} webhooks are not signed (the URL itself is the credential): "
                "remove the secret"
            )
        if not secret and cls.signing == "required":
            raise ValueError(f"{name}: secret is required (it signs every request)")
        if secret and cls.signing_prefix and not secret.startswith(cls.signing_prefix):
            raise ValueError(
                f"{name}: the signing secret starts with {cls.signing_prefix!r}; "
                "copy it from the robot's security settings"
            )
        if secret:
            cleaned["secret"] = secret
        cleaned.update(cls._validate_extra(config))
        return cleaned

    @classmethod
    def _validate_extra(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        return {}

    def rate_limits(self) -> tuple[RateWindow, ...]:
        """This channel's send limits, for the limiter in :mod:`.ratelimit`."""
        return RATE_LIMITS[self.kind]

    # -- rendering ----------------------------------------------------------------------

    def escape_text(self, text: str) -> str:
        return text

    def escape_url(self, url: str) -> str:
        return _markdown_url(url)

    def _render_text(self, shown: Notification, view: View) -> Rendered:
        return render_text(
            shown,
            template_name=self.template_name,
            view=view,
            escape=self.escape_text,
            escape_url=self.escape_url,
            body_template=self._body_template,
            title_template=self._title_template,
        )

    @abstractmethod
    def build(
        self, notification: Notification, rendered: Rendered, *, hard: bool
    ) -> dict[str, Any]:
        """The platform payload for the rendered title and body. ``notification`` is the
        original (for counts, labels and links), ``rendered.shown`` what the text lists.
        With ``hard`` the payload must respect the platform's limits whatever the text is
        (cut it); without, :meth:`within_limits` decides."""

    @abstractmethod
    def within_limits(self, payload: Mapping[str, Any]) -> bool:
        """Whether ``payload`` respects the platform's documented message limits."""

    def _attempt(
        self, notification: Notification, shown: Notification, view: View
    ) -> RenderedMessage | None:
        rendered = self._render_text(shown, view)
        payload = self.build(notification, rendered, hard=False)
        if not self.within_limits(payload):
            return None
        return RenderedMessage(
            payload=payload,
            title=rendered.title,
            text=rendered.body,
            listed=len(shown.alerts),
            summarised=shown.omitted,
        )

    def fits(self, notification: Notification) -> bool:
        """Whether ``notification`` fits one message with all its listed alerts shown (the
        ``fits`` argument of :func:`.ratelimit.pack`)."""
        return self._attempt(notification, notification, _LADDER[0]) is not None

    def render(self, notification: Notification) -> RenderedMessage:
        """The payload for ``notification``, always within the platform's limits.

        At most ``max_listed`` alerts are listed; if the message is still too large, fewer
        (the rest become summary lines), then shorter summary lines, and as a last resort
        the text is cut with a note. Every alert stays counted.
        """
        capped = notification.listing(self.max_listed)
        found = self._attempt(notification, capped, _LADDER[0])
        if found is not None:
            return found
        lo, hi = 0, len(capped.alerts) - 1
        while lo <= hi:
            mid = (lo + hi) // 2
            attempt = self._attempt(notification, capped.listing(mid), _LADDER[0])
            if attempt is not None:
                found, lo = attempt, mid + 1
            else:
                hi = mid - 1
        if found is not None:
            return found
        bare = capped.listing(0)
        for view in _LADDER[1:]:
            found = self._attempt(notification, bare, view)
            if found is not None:
                return found
        rendered = self._render_text(bare, _LADDER[-1])
        return RenderedMessage(
            payload=self.build(notification, rendered, hard=True),
            title=rendered.title,
            text=rendered.body,
            listed=0,
            summarised=bare.omitted,
            truncated=True,
        )

    # -- sending ------------------------------------------------------------------------

    def prepare(self, payload: Mapping[str, Any]) -> PreparedRequest:
        """The HTTP request for ``payload``; signed kinds add their signature here."""
        return PreparedRequest(url=self.webhook_url, body=json_bytes(payload))

    def classify(self, status: int, text: str, data: Any) -> Rule | None:
        """A platform-specific verdict on a response (``data``: the parsed JSON body or
        None), or None to fall back on the HTTP status alone."""
        return None

    def _error(self, reason: str, *, permanent: bool, **details: Any) -> TransportError:
        return TransportError(
            f"{self.display_name} at {_endpoint(self.webhook_url)}: {reason}",
            permanent=permanent,
            kind=self.kind,
            **details,
        )

    def post(self, payload: Mapping[str, Any]) -> DeliveryResult:
        """Sign and send one payload; :class:`TransportError` unless the platform took it."""
        request = self.prepare(payload)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": _USER_AGENT,
            **request.headers,
        }
        session = self._session if self._session is not None else guarded_session()
        started = time.monotonic()
        try:
            response = session.post(
                request.url,
                data=request.body,
                headers=headers,
                timeout=(self.connect_timeout_s, self.timeout_s),
                allow_redirects=False,
                stream=True,
            )
            try:
                # Enough for any platform's error answer; a huge body is not read.
                raw = response.raw.read(_ANSWER_READ_BYTES, decode_content=True) or b""
            finally:
                response.close()
        except requests.Timeout:
            raise self._error(
                f"no answer within {self.timeout_s:g}s",
                permanent=False,
                latency_s=time.monotonic() - started,
            ) from None
        except (
            requests.exceptions.InvalidURL,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
        ):
            raise self._error(
                "the webhook URL is not usable", permanent=True, latency_s=0.0
            ) from None
        except requests.ConnectionError as exc:
            refused = refusal_in(exc)
            if refused is not None:
                raise self._error(
                    f"destination refused: {refused}",
                    permanent=True,
                    latency_s=time.monotonic() - started,
                ) from None
            raise self._error(
                f"cannot reach the webhook ({type(exc).__name__})",
                permanent=False,
                latency_s=time.monotonic() - started,
            ) from None
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            timed_out = isinstance(exc, urllib3.exceptions.ReadTimeoutError)
            raise self._error(
                f"no answer within {self.timeout_s:g}s"
                if timed_out
                else f"cannot reach the webhook ({type(exc).__name__})",
                permanent=False,
                latency_s=time.monotonic() - started,
            ) from None
        finally:
            if self._session is None:
                session.close()
        latency = time.monotonic() - started
        text = raw.decode("utf-8", errors="replace")
        try:
            data = json.loads(text) if text.lstrip().startswith(("{", "[")) else None
        except ValueError:
            data = None
        rule = self.classify(response.status_code, text, data) or http_status_rule(
            response.status_code
        )
        if rule is not None:
            header = parse_retry_after(response.headers.get("Retry-After"), self.clock())
            retry_after = None
            if rule.rate_limited:
                retry_after = next(
                    v
                    for v in (header, rule.retry_after_s, self.default_retry_after_s)
                    if v is not None
                )
            elif not rule.permanent:
                retry_after = header
            raise self._error(
                rule.reason,
                permanent=rule.permanent,
                status_code=response.status_code,
                latency_s=latency,
                retry_after_s=retry_after,
                response_summary=response_summary(
                    response.status_code, platform=self.display_name, code=rule.code
                ),
                platform_code=rule.code,
            )
        return DeliveryResult(
            kind=self.kind,
            status_code=response.status_code,
            latency_s=latency,
            response_summary=response_summary(response.status_code),
        )

    def notify(self, notification: Notification) -> DeliveryResult:
        """Render ``notification`` within the platform's limits and send it."""
        return self.post(self.render(notification).payload)

    def deliver(self, notification: Notification) -> DeliveryRecord:
        """:meth:`notify` with the outcome as a record, never raising TransportError."""
        try:
            return DeliveryRecord.from_result(self.notify(notification))
        except TransportError as exc:
            return DeliveryRecord.from_error(exc)

    def send_test(self, language: Language = "en", *, console_url: str = "") -> DeliveryResult:
        """Send :func:`.messages.sample_notification` (the "send test message" button)."""
        return self.notify(sample_notification(language, console_url=console_url))


class MarkdownRobotTransport(Transport):
    """A group robot that takes ``{"msgtype": "markdown", "markdown": {...}}`` with its text
    limited in UTF-8 bytes, and answers errors as ``{"errcode": ..., "errmsg": ...}``
    (WeCom, DingTalk). A subclass says where the text goes, how long it may be, how the
    title leads it, and what the platform's error codes mean."""

    text_key: ClassVar[str]  # the text's key in the "markdown" object
    max_text_bytes: ClassVar[int]
    error_codes: ClassVar[Mapping[int, Rule]]

    def markdown_text(self, rendered: Rendered) -> str:
        """The title and body as one markdown text."""
        raise NotImplementedError

    def markdown(self, rendered: Rendered, text: str) -> dict[str, Any]:
        """The "markdown" object around the (possibly cut) text."""
        return {self.text_key: text}

    def build(
        self, notification: Notification, rendered: Rendered, *, hard: bool
    ) -> dict[str, Any]:
        text = self.markdown_text(rendered)
        if hard:
            text = truncate_utf8(text, self.max_text_bytes, language=notification.language)
        return {"msgtype": "markdown", "markdown": self.markdown(rendered, text)}

    def within_limits(self, payload: Mapping[str, Any]) -> bool:
        return utf8_len(payload["markdown"][self.text_key]) <= self.max_text_bytes

    def classify(self, status: int, text: str, data: Any) -> Rule | None:
        return json_code_rule(
            data,
            platform=self.display_name,
            code_keys=("errcode",),
            message_keys=("errmsg",),
            rules=self.error_codes,
        )
