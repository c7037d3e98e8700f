"""Who is acting, from where, under which request id: read by audit and by structured logs."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    source_ip: str | None = None
    source: str = "system"  # api, admin, console, system, worker


_current: contextvars.ContextVar[RequestContext] = contextvars.ContextVar(
    "controlplane_request_context",
    default=RequestContext(),  # noqa: B039 - frozen
)


def current() -> RequestContext:
    return _current.get()


def set_current(ctx: RequestContext) -> contextvars.Token[RequestContext]:
    return _current.set(ctx)


def reset(token: contextvars.Token[RequestContext]) -> None:
    _current.reset(token)
