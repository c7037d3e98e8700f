"""The load test's connections go through the same address check as every URL the server
calls (:mod:`apps.core.netguard`).

The deployment's endpoint is checked when a run is queued, but the engine opens its own
connections later, possibly many minutes later: a name that resolved to a public address
then may resolve to an internal one now (DNS rebinding). So the engine's aiohttp session
resolves names through :class:`CheckedResolver`, which refuses the connection when any
address is refused, with ``OUTBOUND_ALLOWED_NETWORKS`` applied as everywhere else. An IP
literal never reaches a resolver: it is checked when the run starts (:func:`endpoint_recheck`).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from apps.core.netguard import DestinationRefused, destination_check, resolve_checked


class CheckedResolver(AbstractResolver):
    """aiohttp's resolver interface over :func:`resolve_checked` (run in a thread, as
    ``getaddrinfo`` blocks)."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        loop = asyncio.get_running_loop()
        try:
            addresses = await loop.run_in_executor(None, lambda: resolve_checked(host, port))
        except DestinationRefused as exc:
            # As an OSError, aiohttp reports it as a connection error of that request.
            raise OSError(str(exc)) from exc
        wanted = {socket.AF_INET: 4, socket.AF_INET6: 6}.get(family)
        return [
            ResolveResult(
                hostname=host,
                host=str(ip),
                port=port,
                family=socket.AF_INET if ip.version == 4 else socket.AF_INET6,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for ip in addresses
            if wanted is None or ip.version == wanted
        ]

    async def close(self) -> None:
        return None


def checked_session_factory(max_concurrency: int) -> Callable[[], Any]:
    """The engine's ``session_factory``: an aiohttp session resolving through
    :class:`CheckedResolver` (called inside the engine's event loop)."""

    def make() -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=max_concurrency + 8, limit_per_host=0, resolver=CheckedResolver()
        )
        return aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None), trust_env=False
        )

    return make


def endpoint_recheck(base_url: str) -> None:
    """Check the endpoint again when the run starts (the settings or the name's addresses
    may have changed since it was queued); raises DestinationRefused."""
    destination_check(base_url, field="endpoint_url")
