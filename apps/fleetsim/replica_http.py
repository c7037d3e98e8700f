"""Real HTTP per simulated replica: an OpenAI-compatible, vLLM-like server on its own port.

Every replica of every deployment of a :class:`~apps.fleetsim.fleet.Fleet` listens on its
own loopback port, so a real gateway (nginx) can balance real traffic across them:

``POST /v1/completions``, ``POST /v1/chat/completions``
    OpenAI shapes (see :mod:`apps.fleetsim.openai_api`, which also documents how prompt
    tokens are estimated and how long replies are). With ``"stream": true`` tokens are
    sent as server-sent events at the pace the replica model produces them.
``GET /v1/models``
    The one model the replica serves.
``GET /health``
    200 once the replica is ready; 503 while it loads (cold start), wakes, sleeps or
    drains.
``POST /sleep``, ``POST /wake_up``, ``GET /is_sleeping``
    vLLM's sleep mode endpoints (served by vLLM with ``--enable-sleep-mode`` in its
    development mode). ``/sleep`` takes a ready replica out of the spec into standby
    (what it holds is re-queued, see :meth:`SimulatedDeployment.sleep`); ``/wake_up``
    brings a standby back, ready ``wake_s`` later; both answer 200 with
    ``{"pod", "is_sleeping", "state"}`` and are no-ops when already done, 409 for a
    replica in any other state (starting, draining). ``/is_sleeping`` answers
    ``{"is_sleeping": bool}``. A sleeping replica answers 503 to inference and
    ``/health`` and is left out of :meth:`ReplicaHTTPServer.endpoints` (it is no
    member; :meth:`ReplicaHTTPServer.standby_endpoints` lists it).
``GET /metrics``
    This replica's ``vllm:`` series (the names :mod:`apps.fleetsim.exposition` uses).

Every response carries ``X-Replica: <pod>``. A model other than the served one gets
OpenAI's 404 error JSON, a malformed body 400, a prompt longer than the model's context
400 (as vLLM answers), an injected failure (``inject_error_ratio``) 500, and a request
reaching a replica that is not ready 503.

HTTP requests are requests of the model
---------------------------------------
A request becomes a *pinned* job of the replica it reached
(:meth:`SimulatedDeployment.submit_pinned`): it takes a batch slot and KV cache like the
synthetic workload does, so a busy replica answers later and streams slower, and
least-connections balancing meets a real difference. Its reply streams as the model
generates it (:meth:`Replica.tokens_generated`).

Time: one clock, the fleet's
----------------------------
The model keeps advancing in simulated time exactly as before: the fleet's real-time
driver (:meth:`Fleet.run_realtime`, ``speed`` simulated seconds per wall second) steps it
under ``fleet.lock``. This server adds no second driver. It runs one asyncio event loop in
a thread (aiohttp, one ``AppRunner`` and listening socket per replica) and one *ticker*
coroutine that every ``tick_s`` wall seconds takes the lock, brings the fleet to the
real-time target (:meth:`Fleet.sync`), reads the progress of every request in flight and
wakes the handlers whose request moved. Handlers submit with the fleet synced too, so a
request arrives at the current simulated time. Fast mode is simply ``speed`` > 1: a
simulated second lasts ``1/speed`` wall seconds, tokens included. The alternatives were
worse: driving the model from the event loop would give the fleet two clocks to keep
consistent, and a poll per stream would contend for the lock once hundreds stream. The
cost is granularity: tokens are sent in bursts of whatever the model produced during a
tick (about ``tick_s * speed`` simulated seconds).

Membership follows the fleet
----------------------------
On every tick the server compares the fleet's replicas with its listeners. A new replica
(scale-up) gets a port at once and answers 503 on ``/health`` until its cold start ends.
A replica that leaves (scale-down) stops listening at once, so new connections are
refused, while the requests it is serving carry on: with ``drain_s`` on the scale call the
model finishes them (a drain), without it they fail as ``aborted`` (the pod is gone), which
ends their streams with an error event. Listeners are listed by :meth:`endpoints`, in the
simulator API's ``GET /endpoints`` and, when ``endpoints_file`` is set, in a JSON file
rewritten atomically on every change, for rendering a gateway configuration.
:meth:`ReplicaHTTPServer.kill` crashes one replica's server instead (port refused,
connections cut) while the fleet still counts it as ready, for failover tests.

A client that disconnects aborts its request, as in vLLM: the handler is cancelled and the
request leaves the replica's batch (:meth:`Replica.abort`), counted as ``aborted``.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from apps.fleetsim import openai_api as oai
from apps.fleetsim.exposition import fleet_metric_families
from apps.fleetsim.fleet import Fleet, FleetSnapshot, SimulatedDeployment
from apps.fleetsim.replica import RequestRecord

__all__ = ["ReplicaEndpoint", "ReplicaHTTPServer"]

logger = structlog.get_logger("controlplane.fleetsim")

REPLICA_HEADER = "X-Replica"
_STARTUP_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class ReplicaEndpoint:
    """Where one replica listens, and its state (``starting``, ``ready``, ``draining``)."""

    namespace: str
    deployment: str
    pod: str
    model: str
    host: str
    port: int
    state: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "deployment": self.deployment,
            "pod": self.pod,
            "model": self.model,
            "host": self.host,
            "port": self.port,
            "state": self.state,
        }


@dataclass(eq=False)
class _Stream:
    """One HTTP request in the model; the ticker updates it and sets ``moved``."""

    deployment: SimulatedDeployment
    pod: str
    request_id: int
    tokens: int = 0
    record: RequestRecord | None = None
    moved: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(eq=False)
class _Site:
    """The listener of one replica."""

    namespace: str
    deployment: str
    pod: str
    model: str
    runner: web.AppRunner
    port: int
    state: str
    created: int
    listener: web.SockSite | None = None
    closing: asyncio.Task[None] | None = None

    def endpoint(self, host: str) -> ReplicaEndpoint:
        return ReplicaEndpoint(
            self.namespace, self.deployment, self.pod, self.model, host, self.port, self.state
        )


_SITE = web.AppKey("site", _Site)


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


def _json_error(
    status: int, message: str, *, error_type: str, code: str | None = None, param: str | None = None
) -> web.Response:
    body = oai.error_body(message, error_type=error_type, code=code, param=param)
    return web.json_response(body, status=status)


class ReplicaHTTPServer:
    """OpenAI-compatible HTTP endpoints for every replica of ``fleet`` (see module doc).

    Simulated time, and with it every reply, moves only while the fleet runs in real
    time (:meth:`Fleet.run_realtime`) or is stepped (:meth:`Fleet.step_to`).

    ``port_base`` gives replicas consecutive ports from that number (skipping busy ones);
    by default each gets a free ephemeral port. ``drain_timeout_s`` bounds, in wall
    seconds, how long a removed replica's listener waits for its requests in flight.
    """

    def __init__(
        self,
        fleet: Fleet,
        *,
        host: str = "127.0.0.1",
        port_base: int | None = None,
        tick_s: float = 0.01,
        drain_timeout_s: float = 600.0,
        endpoints_file: Path | None = None,
    ) -> None:
        if tick_s <= 0 or drain_timeout_s <= 0:
            raise ValueError("tick_s and drain_timeout_s must be positive")
        if port_base is not None and not 1 <= port_base <= 65535:
            raise ValueError("port_base must be a TCP port number")
        self.fleet = fleet
        self.host = host
        self.tick_s = tick_s
        self.drain_timeout_s = drain_timeout_s
        self.endpoints_file = endpoints_file
        self._next_port = port_base
        self._sites: dict[tuple[str, str, str], _Site] = {}
        self._streams: set[_Stream] = set()
        self._listed: list[dict[str, Any]] = []
        self._listed_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._stopping = False
        # Replicas whose server was killed: never listened for again.
        self._killed: set[tuple[str, str, str]] = set()
        # Ticks may overlap (refresh() from another thread): binding must not run twice.
        self._reconciling = asyncio.Lock()

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start the event loop thread; returns once every current replica listens."""
        if self._thread is not None:
            raise RuntimeError("server already started")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=loop.run_forever, name="fleetsim-replica-http", daemon=True
        )
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), loop).result(_STARTUP_TIMEOUT_S)

    def stop(self) -> None:
        """Close every listener, end the streams in flight and stop the loop thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._stop(), loop).result(_STARTUP_TIMEOUT_S)
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
        self._loop = self._thread = None

    def refresh(self) -> None:
        """Run one tick now from another thread (binds new replicas before returning)."""
        if self._loop is None:
            raise RuntimeError("server not started")
        asyncio.run_coroutine_threadsafe(self._tick(), self._loop).result(_STARTUP_TIMEOUT_S)

    def kill(self, namespace: str, deployment: str, pod: str) -> None:
        """Crash one replica's server, as a killed vLLM process: its port refuses new
        connections at once, open connections are cut (streams end mid-way; their
        requests are aborted in the model) and it never listens again. The fleet still
        counts the replica as ready, as Kubernetes does until its probes fail."""
        if self._loop is None:
            raise RuntimeError("server not started")
        coroutine = self._kill((namespace, deployment, pod))
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(_STARTUP_TIMEOUT_S)

    def endpoints(self) -> list[dict[str, Any]]:
        """Every listening replica but the sleeping standbys (thread-safe), sorted by
        namespace, deployment, pod."""
        with self._listed_lock:
            return [dict(e) for e in self._listed if e["state"] != "asleep"]

    def standby_endpoints(self) -> list[dict[str, Any]]:
        """The listening sleeping standbys (their ``POST /wake_up``), like :meth:`endpoints`."""
        with self._listed_lock:
            return [dict(e) for e in self._listed if e["state"] == "asleep"]

    # ---------------------------------------------------------------- the ticker

    async def _start(self) -> None:
        await self._tick()
        self._ticker = asyncio.get_running_loop().create_task(self._tick_forever())

    async def _stop(self) -> None:
        self._stopping = True
        if self._ticker is not None:
            self._ticker.cancel()
        for stream in self._streams:
            stream.moved.set()
        closing = [self._close(site) for site in self._sites.values() if site.closing is None]
        await asyncio.gather(*closing, *(s.closing for s in self._sites.values() if s.closing))
        self._sites.clear()
        self._publish()

    async def _tick_forever(self) -> None:
        while True:
            try:
                await self._tick()
            except Exception:  # a simulator bug must not stop every replica's clock
                logger.exception("fleetsim-replica-tick-failed")
            await asyncio.sleep(self.tick_s)

    async def _tick(self) -> None:
        states: dict[tuple[str, str, str], tuple[str, str]] = {}
        with self.fleet.lock:
            self.fleet.sync()
            for deployment in self.fleet.deployments:
                for pod, state in deployment.replica_states().items():
                    key = (deployment.namespace, deployment.name, pod)
                    states[key] = (state, deployment.model_name)
            for stream in self._streams:
                tokens, record = stream.deployment.pinned_progress(stream.pod, stream.request_id)
                if record is not None or tokens > stream.tokens:
                    stream.tokens = max(tokens, stream.tokens)
                    stream.record = record
                    stream.moved.set()
        await self._reconcile(states)

    async def _reconcile(self, states: dict[tuple[str, str, str], tuple[str, str]]) -> None:
        async with self._reconciling:
            changed = False
            for key, (state, model) in states.items():
                if key not in self._sites and state != "draining" and key not in self._killed:
                    self._sites[key] = await self._bind(key, model, state)
                    changed = True
            if self._follow(states) or changed:
                self._publish()

    def _follow(self, states: dict[tuple[str, str, str], tuple[str, str]]) -> bool:
        """Bring listeners in line with their replicas' states; True if any changed."""
        changed = False
        for key, (state, _) in states.items():
            site = self._sites.get(key)
            if site is None:
                continue
            if site.closing is None and state == "draining":
                self._begin_close(site)
                changed = True
            elif site.closing is None and site.state != state:
                site.state = state
                changed = True
        for key, site in self._sites.items():
            if key not in states and site.closing is None:
                self._begin_close(site)
                changed = True
        return changed

    # -------------------------------------------------------------- listeners

    async def _bind(self, key: tuple[str, str, str], model: str, state: str) -> _Site:
        namespace, deployment, pod = key
        app = web.Application(middlewares=[_errors_as_json])
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_post("/sleep", self._sleep)
        app.router.add_post("/wake_up", self._wake_up)
        app.router.add_get("/is_sleeping", self._is_sleeping)
        app.on_response_prepare.append(_name_replica)
        # handler_cancellation: a handler whose client disconnects is cancelled, and its
        # request is aborted in the model.
        runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            shutdown_timeout=self.drain_timeout_s,
            handler_cancellation=True,
        )
        sock = self._bind_socket()
        port = int(sock.getsockname()[1])
        site = _Site(namespace, deployment, pod, model, runner, port, state, int(time.time()))
        app[_SITE] = site
        await runner.setup()
        site.listener = web.SockSite(runner, sock)
        await site.listener.start()
        logger.info(
            "fleetsim-replica-listening", namespace=namespace, pod=pod, host=self.host, port=port
        )
        return site

    def _bind_socket(self) -> socket.socket:
        """A socket bound to the next port from ``port_base`` that is free, else any."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        while True:
            port = self._next_port or 0
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.host, port))
            except OSError:
                sock.close()
                if not port or port >= 65535:
                    raise
                self._next_port = port + 1
                continue
            if self._next_port is not None:
                self._next_port = port + 1
            return sock

    async def _kill(self, key: tuple[str, str, str]) -> None:
        async with self._reconciling:
            site = self._sites.get(key)
            if site is None or key in self._killed:
                raise KeyError(f"no replica {'/'.join(key)} is listening")
            self._killed.add(key)
            if site.closing is None and site.listener is not None:
                await site.listener.stop()  # a closing one's runner stops it itself
            server = site.runner.server
            for connection in list(server.connections if server is not None else ()):
                connection.force_close()
            if site.closing is None:
                self._begin_close(site)
                self._publish()
        assert site.closing is not None
        await site.closing
        logger.info("fleetsim-replica-killed", namespace=key[0], pod=key[2])

    def _begin_close(self, site: _Site) -> None:
        site.state = "draining"
        site.closing = asyncio.get_running_loop().create_task(self._close(site))

    async def _close(self, site: _Site) -> None:
        """Stop accepting connections, let the requests in flight finish, then forget."""
        site.state = "draining"
        await site.runner.cleanup()
        key = (site.namespace, site.deployment, site.pod)
        if self._sites.get(key) is site:
            del self._sites[key]
            self._publish()
        logger.info("fleetsim-replica-closed", namespace=site.namespace, pod=site.pod)

    def _publish(self) -> None:
        listed = [
            site.endpoint(self.host).as_dict()
            for _, site in sorted(self._sites.items(), key=lambda item: item[0])
        ]
        with self._listed_lock:
            self._listed = listed
        if self.endpoints_file is not None:
            members = [e for e in listed if e["state"] != "asleep"]
            _write_atomically(self.endpoints_file, {"endpoints": members})

    # ------------------------------------------------------------- endpoints

    async def _health(self, request: web.Request) -> web.Response:
        site = request.app[_SITE]
        if site.state == "ready":
            return web.Response(status=200)
        return web.Response(status=503, text=site.state)

    async def _sleep(self, request: web.Request) -> web.Response:
        return await self._sleep_or_wake(request, sleep=True)

    async def _wake_up(self, request: web.Request) -> web.Response:
        return await self._sleep_or_wake(request, sleep=False)

    async def _sleep_or_wake(self, request: web.Request, *, sleep: bool) -> web.Response:
        site = request.app[_SITE]
        with self.fleet.lock:
            self.fleet.sync()
            deployment = self.fleet.find(site.namespace, site.deployment)
            replica = None if deployment is None else deployment.find_replica(site.pod)
            state = "gone"
            if deployment is not None and replica is not None:
                state = deployment.replica_states().get(site.pod, "gone")
                if state == "starting" and replica.is_waking(deployment.now):
                    state = "waking"
            if sleep and state in ("ready", "asleep"):
                if state == "ready":
                    deployment.sleep(site.pod)  # type: ignore[union-attr]
            elif not sleep and state in ("asleep", "waking", "ready"):
                if state == "asleep":
                    deployment.wake(site.pod)  # type: ignore[union-attr]
            else:
                return _json_error(
                    409,
                    f"replica {site.pod} is {state}; "
                    + ("only a ready replica can sleep" if sleep else "only a standby can wake"),
                    error_type="conflict",
                )
        await self._tick()
        return web.json_response(
            {"pod": site.pod, "is_sleeping": site.state == "asleep", "state": site.state}
        )

    async def _is_sleeping(self, request: web.Request) -> web.Response:
        site = request.app[_SITE]
        return web.json_response({"is_sleeping": site.state == "asleep"})

    async def _models(self, request: web.Request) -> web.Response:
        site = request.app[_SITE]
        return web.json_response(oai.models_body(site.model, site.created))

    async def _metrics(self, request: web.Request) -> web.Response:
        site = request.app[_SITE]
        with self.fleet.lock:
            now = self.fleet.sync()
            deployment = self.fleet.find(site.namespace, site.deployment)
            snapshot = deployment.snapshot() if deployment is not None else None
        mine = () if snapshot is None else tuple(r for r in snapshot.replicas if r.pod == site.pod)
        deployments = () if snapshot is None else (replace(snapshot, replicas=mine),)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(
            _Families(fleet_metric_families(FleetSnapshot(now, deployments), engine_only=True))
        )
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4}
        )

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, oai.parse_completion)

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, oai.parse_chat_completion)

    async def _generate(
        self, request: web.Request, parse: Callable[[bytes], oai.GenerationRequest]
    ) -> web.StreamResponse:
        site = request.app[_SITE]
        try:
            wanted = parse(await request.read())
        except oai.InvalidRequest as exc:
            return _json_error(
                400, exc.message, error_type="invalid_request_error", param=exc.param
            )
        if wanted.model != site.model:
            return _json_error(
                404,
                f"The model `{wanted.model}` does not exist.",
                error_type="invalid_request_error",
                code="model_not_found",
                param="model",
            )
        stream = self._submit(site, wanted)
        if stream is None:
            return _json_error(
                503, f"replica {site.pod} is {site.state}", error_type="service_unavailable"
            )
        self._streams.add(stream)
        try:
            if stream.record is not None and not stream.record.completed:
                return self._failure(stream)
            if wanted.stream:
                return await self._respond_streaming(request, site, wanted, stream)
            return await self._respond_whole(site, wanted, stream)
        finally:
            self._streams.discard(stream)
            if stream.record is None:  # the client went away, or the server stops
                with self.fleet.lock:
                    stream.deployment.abort_pinned(stream.pod, stream.request_id)

    def _submit(self, site: _Site, wanted: oai.GenerationRequest) -> _Stream | None:
        """The request handed to the replica model, or None when the replica cannot take it."""
        if self._stopping:
            return None
        output_tokens, finish_reason = wanted.output_tokens()
        with self.fleet.lock:
            self.fleet.sync()
            deployment = self.fleet.find(site.namespace, site.deployment)
            if deployment is None:
                return None
            try:
                request_id = deployment.submit_pinned(
                    site.pod,
                    prompt_tokens=wanted.prompt_tokens,
                    output_tokens=output_tokens,
                    truncated=finish_reason == "length",
                )
            except KeyError:
                return None
            stream = _Stream(deployment, site.pod, request_id)
            # Rejections and injected failures are decided on submission.
            stream.tokens, stream.record = deployment.pinned_progress(site.pod, request_id)
        return stream

    def _failure(self, stream: _Stream) -> web.Response:
        record = stream.record
        assert record is not None
        if record.failure_reason == "rejected":
            limit = stream.deployment.profile.max_request_tokens
            return _json_error(
                400,
                f"This model's maximum context length is {limit} tokens. However, you "
                f"requested {record.prompt_tokens + record.output_tokens} tokens "
                f"({record.prompt_tokens} in the messages, {record.output_tokens} in the "
                "completion). Please reduce the length of the messages or completion.",
                error_type="invalid_request_error",
                param="max_tokens",
            )
        if record.failure_reason == "aborted":
            return _json_error(
                503, "the replica went away while serving the request", error_type="aborted"
            )
        return _json_error(500, "simulated server error (injected)", error_type="server_error")

    async def _wait(self, stream: _Stream) -> None:
        await stream.moved.wait()
        stream.moved.clear()

    async def _respond_whole(
        self, site: _Site, wanted: oai.GenerationRequest, stream: _Stream
    ) -> web.Response:
        while stream.record is None and not self._stopping:
            await self._wait(stream)
        record = stream.record
        if record is None or not record.completed:
            if record is None:
                return _json_error(503, "the replica is shutting down", error_type="aborted")
            return self._failure(stream)
        _, finish_reason = wanted.output_tokens()
        text = "".join(oai.token_text(i) for i in range(record.output_tokens))
        body = oai.response_body(
            wanted.kind,
            response_id=_response_id(wanted.kind),
            created=int(time.time()),
            model=site.model,
            text=text,
            finish_reason=finish_reason,
            prompt_tokens=record.prompt_tokens,
            completion_tokens=record.output_tokens,
        )
        return web.json_response(body)

    async def _respond_streaming(
        self,
        request: web.Request,
        site: _Site,
        wanted: oai.GenerationRequest,
        stream: _Stream,
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        events = _ChunkWriter(wanted, site.model)
        total, _ = wanted.output_tokens()
        try:
            while True:
                record = stream.record
                if record is not None and not record.completed:
                    await response.write(events.error(record.failure_reason or "failed"))
                    return response
                if record is None and self._stopping:
                    await response.write(events.error("shutdown"))
                    return response
                upto = record.output_tokens if record is not None else stream.tokens
                if upto > events.sent:
                    await response.write(events.tokens(upto, total))
                if record is not None:
                    await response.write(events.end(record))
                    await response.write_eof()
                    return response
                await self._wait(stream)
        except ConnectionError:  # the client went away; the request is aborted
            return response


class _ChunkWriter:
    """Server-sent events of one streamed reply, in OpenAI's chunk shapes."""

    def __init__(self, wanted: oai.GenerationRequest, model: str) -> None:
        self.wanted = wanted
        self.model = model
        self.response_id = _response_id(wanted.kind)
        self.created = int(time.time())
        self.sent = 0

    def _chunk(
        self,
        text: str | None,
        *,
        first: bool = False,
        finish_reason: str | None = None,
        usage: dict[str, int] | None = None,
    ) -> bytes:
        return oai.sse(
            oai.stream_chunk(
                self.wanted.kind,
                response_id=self.response_id,
                created=self.created,
                model=self.model,
                text=text,
                first=first,
                finish_reason=finish_reason,
                usage=usage,
                include_usage=self.wanted.include_usage,
            )
        )

    def tokens(self, upto: int, total: int) -> bytes:
        """Chunks for the tokens generated since the last call; the reply's last token
        carries its ``finish_reason``."""
        _, finish_reason = self.wanted.output_tokens()
        out = []
        for i in range(self.sent, upto):
            last = i == total - 1
            out.append(
                self._chunk(
                    oai.token_text(i), first=i == 0, finish_reason=finish_reason if last else None
                )
            )
        self.sent = upto
        return b"".join(out)

    def end(self, record: RequestRecord) -> bytes:
        tail = b""
        if self.wanted.include_usage:
            usage = oai.usage_body(record.prompt_tokens, record.output_tokens)
            tail = self._chunk(None, usage=usage)
        return tail + oai.sse("[DONE]")

    def error(self, reason: str) -> bytes:
        return oai.sse(
            oai.error_body(
                f"the request ended without a reply ({reason})", error_type="server_error"
            )
        )


@web.middleware
async def _errors_as_json(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """aiohttp's own errors (unknown path, wrong method, body too large) in OpenAI's shape."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _json_error(exc.status, exc.reason, error_type="invalid_request_error")


async def _name_replica(request: web.Request, response: web.StreamResponse) -> None:
    response.headers[REPLICA_HEADER] = request.app[_SITE].pod


def _response_id(kind: str) -> str:
    prefix = "cmpl" if kind == "completion" else "chatcmpl"
    return f"{prefix}-{uuid.uuid4().hex}"


def _write_atomically(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
