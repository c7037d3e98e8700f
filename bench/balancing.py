"""Load balancing through a real nginx in front of simulated replicas: what nginx adds to
a request, what reloads and drains cost, and how consistent hashing moves keys.

Usage::

    .venv/bin/python -m bench.balancing [--json] [--quick] [--keys 10000]
        [--members 4,8] [--reloads 10] [--speed 50]

A child process runs a simulated fleet (:mod:`apps.fleetsim`, one deployment ``chat`` of
nine A100 replicas in fast mode, ``--speed`` simulated seconds per wall second), every
replica answering OpenAI-compatible HTTP on its own loopback port, with the simulator's
own HTTP API (``GET /endpoints``, ``PUT /scale`` with ``remove`` and ``drain_s``). In front
of it, nginx runs the fragment :func:`apps.balancing.render.render_and_validate` renders
(checked by ``nginx -t``) inside :func:`apps.balancing.render.main_config`, two workers,
under a temporary prefix; a configuration change is written atomically and applied with
``nginx -s reload``. This process measures, in one run:

1. **Latency nginx adds.** The same small requests straight to one replica and through
   nginx to that same replica: ``GET /v1/models`` (no model work), a non-streamed
   completion of one token, and the time to the first byte of a streamed completion.
   With ``wrk`` (rounds alternating direct and nginx, so that a change in the machine's
   load weighs on both alike) and with a Python client that sends each request as a
   pair, direct and through nginx in random order, on keep-alive connections.
2. **Reloads under load.** ``wrk`` drives non-streamed and streamed completions through
   nginx while the weights of four members flip ``--reloads`` times (one reload per
   second, each waited for until nginx's new workers run); four Python clients stream
   alongside and check that every stream ends with ``[DONE]``. Failed = non-2xx + socket
   errors (wrk) + broken streams. Once with keep-alive clients, once with clients sending
   ``Connection: close`` (an exiting nginx worker closes a client's connection after
   answering its request in flight, and a client reusing it reads the close).
3. **A drain under load.** Same load, both kinds of clients; one member is rendered
   ``draining`` (left out of the upstream) and nginx reloaded; once the old workers have
   exited and the member's own ``/metrics`` show nothing running or waiting, the replica
   is removed from the simulator (``PUT /scale`` naming it). For contrast, another
   replica is then removed while nginx still lists it (no drain).

Part 4 runs right after part 1: parts 2 and 3 remove replicas.
4. **Consistent-hash key movement.** ``--keys`` keys (header ``X-Session-Id``) over N
   members for each N of ``--members``; the replica each key reaches is read from the
   simulator's ``X-Replica`` response header, through nginx: with N members, with one
   member added, with one removed, and with one marked ``down``. The fraction of keys
   that moved is compared with the ideal 1/(N+1) (added) or 1/N (removed); "stray" are
   keys that moved although neither their old nor their new replica changed.

Needs nginx (Debian ``nginx-light``) and wrk (``wrk``); prints ``SKIP`` and exits 0
without nginx, and uses the Python client alone without wrk. Exits 1 when a key was
answered from two replicas under one configuration (a request failing in parts 1 or 4 is
an error too). A run takes about 2-3 minutes on
2 cores; ``--quick`` shortens every part (for a smoke test). The table is Markdown;
``--json`` prints the figures as one JSON document after it.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import multiprocessing
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from apps.balancing.members import Member  # noqa: E402
from apps.balancing.render import (  # noqa: E402
    Site,
    main_config,
    nginx_binary,
    render_and_validate,
)
from apps.balancing.spec import PolicySpec  # noqa: E402
from bench.api import Result, parse_wrk, percentile  # noqa: E402
from bench.toggles import lua_script  # noqa: E402

MODEL = "bench-llama-8b"
NAMESPACE = "bench"
DEPLOYMENT = "chat"
REPLICAS = 9
HASH_HEADER = "X-Session-Id"
REPLICA_HEADER = "X-Replica"
TIMEOUT_S = 30.0
NGINX_WORKERS = 2


# --------------------------------------------------------------------------- pure parts


def completion_body(max_tokens: int, *, stream: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"model": MODEL, "prompt": "Which replica?", "max_tokens": max_tokens}
    if stream:
        body["stream"] = True
    return body


@dataclass(frozen=True)
class Movement:
    """How keys moved between two placements (key -> replica)."""

    keys: int
    moved: int
    # Keys on the member added (after) or removed (before): the least that must move.
    on_changed: int
    # Moved although neither the old nor the new replica is the one added or removed.
    stray: int

    @property
    def fraction(self) -> float:
        return self.moved / self.keys if self.keys else 0.0

    @property
    def changed_fraction(self) -> float:
        return self.on_changed / self.keys if self.keys else 0.0


def key_movement(before: dict[str, str], after: dict[str, str], changed: str) -> Movement:
    """Keys present in both placements that moved; ``changed`` is the member added or
    removed (a key moving to or from it is expected, any other move is stray)."""
    common = before.keys() & after.keys()
    moved = [k for k in common if before[k] != after[k]]
    stray = [k for k in moved if changed not in (before[k], after[k])]
    on_changed = sum(1 for k in common if changed in (before[k], after[k]))
    return Movement(keys=len(common), moved=len(moved), on_changed=on_changed, stray=len(stray))


def prometheus_in_flight(text: str) -> int:
    """Requests running plus waiting in a replica's ``/metrics`` text."""
    total = 0.0
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in ("vllm:num_requests_running", "vllm:num_requests_waiting"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


@dataclass(frozen=True)
class Latency:
    """p50/p99 of one kind of request direct to a replica and through nginx (seconds)."""

    case: str
    client: str
    direct_p50: float
    direct_p99: float
    nginx_p50: float
    nginx_p99: float
    # Median of (through nginx - direct) over pairs; wrk has no pairs: p50 difference.
    added_p50: float
    samples: int

    @property
    def ratio_p50(self) -> float:
        return self.nginx_p50 / self.direct_p50 if self.direct_p50 else float("nan")

    @property
    def ratio_p99(self) -> float:
        return self.nginx_p99 / self.direct_p99 if self.direct_p99 else float("nan")


def paired_latency(case: str, pairs: Sequence[tuple[float, float]]) -> Latency:
    """``pairs`` of (direct, through nginx) seconds of the same request."""
    direct = [p[0] for p in pairs]
    proxied = [p[1] for p in pairs]
    return Latency(
        case=case,
        client="python",
        direct_p50=percentile(direct, 0.5),
        direct_p99=percentile(direct, 0.99),
        nginx_p50=percentile(proxied, 0.5),
        nginx_p99=percentile(proxied, 0.99),
        added_p50=percentile([b - a for a, b in pairs], 0.5),
        samples=len(pairs),
    )


def wrk_latency(case: str, direct: Sequence[Result], proxied: Sequence[Result]) -> Latency:
    """Rounds of wrk against each target: the mean of the rounds' percentiles."""

    def mean(values: list[float]) -> float:
        return sum(values) / len(values) if values else float("nan")

    d50, d99 = mean([r.p50_s for r in direct]), mean([r.p99_s for r in direct])
    n50, n99 = mean([r.p50_s for r in proxied]), mean([r.p99_s for r in proxied])
    return Latency(
        case=case,
        client="wrk",
        direct_p50=d50,
        direct_p99=d99,
        nginx_p50=n50,
        nginx_p99=n99,
        added_p50=n50 - d50,
        samples=sum(r.requests for r in [*direct, *proxied]),
    )


# --------------------------------------------------------------------------- simulator


def _simulate(replicas: int, speed: float, pipe: Connection) -> None:
    """The child process: the fleet, its replicas' HTTP endpoints and its API."""
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    # wrk ends its runs with requests in flight: the replicas' "cannot write to closing
    # transport" tracebacks would bury the figures.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    from apps.fleetsim.exposition import serve
    from apps.fleetsim.fleet import Fleet, SimulatedDeployment
    from apps.fleetsim.replica_http import ReplicaHTTPServer

    fleet = Fleet([SimulatedDeployment(DEPLOYMENT, MODEL, NAMESPACE, "A100-80GB", replicas, ())])
    # A short tick: a reply waits for the next tick, and that wait is noise here.
    replica_server = ReplicaHTTPServer(fleet, tick_s=0.002)
    replica_server.start()
    api, port = serve(fleet, endpoints=replica_server.endpoints)
    fleet.run_realtime(speed=speed, tick_s=0.005)
    pipe.send(port)
    pipe.recv()  # until told to stop
    fleet.stop()
    replica_server.stop()
    api.stop()


class Simulator:
    """The simulator child process, driven over its HTTP API."""

    def __init__(self, replicas: int, speed: float) -> None:
        self.replicas = replicas
        self._pipe, theirs = multiprocessing.Pipe()
        self._child = multiprocessing.get_context("spawn").Process(
            target=_simulate, args=(replicas, speed, theirs), daemon=True
        )
        self._child.start()
        if not self._pipe.poll(60):
            raise RuntimeError("the simulator did not start within 60 s")
        self.url = f"http://127.0.0.1:{self._pipe.recv()}"
        self._wait(lambda: len(self.endpoints()) == replicas, "replicas listening")

    def stop(self) -> None:
        self._pipe.send("stop")
        self._child.join(30)
        if self._child.is_alive():
            self._child.terminate()

    @staticmethod
    def _wait(predicate: Any, what: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.05)

    def endpoints(self) -> list[dict[str, Any]]:
        answer = requests.get(self.url + "/endpoints", timeout=TIMEOUT_S)
        answer.raise_for_status()
        return [e for e in answer.json()["endpoints"] if e["state"] == "ready"]

    def members(self, pods: Sequence[str]) -> list[Member]:
        """The listed pods as upstream members, in the order given."""
        by_pod = {e["pod"]: e for e in self.endpoints()}
        return [Member(name=p, address=by_pod[p]["host"], port=by_pod[p]["port"]) for p in pods]

    def port(self, pod: str) -> int:
        return next(int(e["port"]) for e in self.endpoints() if e["pod"] == pod)

    def in_flight(self, port: int) -> int:
        answer = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=TIMEOUT_S)
        answer.raise_for_status()
        return prometheus_in_flight(answer.text)

    def remove(self, pod: str, *, drain_s: float = 0.0) -> None:
        """Scale down by one, removing ``pod``."""
        self.replicas -= 1
        answer = requests.put(
            f"{self.url}/scale/{NAMESPACE}/{DEPLOYMENT}",
            json={"replicas": self.replicas, "remove": [pod], "drain_s": drain_s},
            timeout=TIMEOUT_S,
        )
        answer.raise_for_status()


# --------------------------------------------------------------------------- nginx


@dataclass
class Nginx:
    """nginx on a free loopback port under its own prefix, reloaded on every change."""

    binary: str
    prefix: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def conf(self) -> Path:
        return self.prefix / "nginx.conf"

    def _command(self, *extra: str) -> list[str]:
        log = self.prefix / "error.log"
        return [self.binary, "-p", str(self.prefix), "-c", str(self.conf), "-e", str(log), *extra]

    def _write(self, sites: Sequence[Site]) -> None:
        rendered = render_and_validate(
            listen=f"127.0.0.1:{self.port}", sites=sites, binary=self.binary
        )
        if not rendered.ok:
            raise RuntimeError(f"nginx -t refused the fragment: {rendered.errors}")
        fragment = self.prefix / "balancing.conf"
        tmp = fragment.with_suffix(".tmp")
        tmp.write_text(rendered.text)
        os.replace(tmp, fragment)

    def start(self, sites: Sequence[Site]) -> None:
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.prefix / kind).mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self._write(sites)
        include = self.prefix / "balancing.conf"
        self.conf.write_text(
            main_config(prefix=self.prefix, include=include, workers=NGINX_WORKERS)
        )
        self.proc = subprocess.Popen([*self._command(), "-g", "daemon off;"])
        deadline = time.monotonic() + 10
        while len(self.workers()) < NGINX_WORKERS or not _accepting(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not start: {self._log_tail()}")
            time.sleep(0.02)

    def _log_tail(self) -> str:
        log = self.prefix / "error.log"
        return log.read_text()[-2000:] if log.exists() else ""

    def workers(self) -> set[int]:
        """The pids of the master's children (its workers, old ones included)."""
        if self.proc is None:
            return set()
        master = self.proc.pid
        out = set()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            # The command may contain spaces and parentheses: fields follow the last ')'.
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == master and fields[0] != "Z":
                out.add(int(entry))
        return out

    def apply(self, sites: Sequence[Site]) -> set[int]:
        """Write the new fragment and reload; returns once a new worker runs. The result is
        the old workers, which finish their requests in flight and exit."""
        old = self.workers()
        self._write(sites)
        subprocess.run(self._command("-s", "reload"), check=True, capture_output=True)
        deadline = time.monotonic() + 10
        while not (self.workers() - old):
            if time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not reload: {self._log_tail()}")
            time.sleep(0.005)
        return old

    def wait_gone(self, pids: set[int], timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while pids & self.workers():
            if time.monotonic() > deadline:
                raise RuntimeError("old nginx workers did not exit")
            time.sleep(0.01)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepting(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


# --------------------------------------------------------------------------- load


def wrk_counts(output: str) -> dict[str, int]:
    """Requests, non-2xx answers and socket errors from the ``BENCH {...}`` line of
    :data:`bench.api.WRK_SCRIPT` (:func:`bench.api.parse_wrk` adds the two up)."""
    for line in output.splitlines():
        if line.startswith("BENCH "):
            data = json.loads(line[len("BENCH ") :])
            return {key: int(data[key]) for key in ("requests", "non_2xx", "socket_errors")}
    raise ValueError(f"no BENCH line in wrk's output: {output[-500:]!r}")


@dataclass
class Wrk:
    """One wrk run in the background against ``url`` with a POST ``body``; with
    ``keepalive`` False every request asks for its connection to be closed."""

    url: str
    body: dict[str, Any]
    seconds: float
    connections: int
    workdir: Path
    keepalive: bool = True
    proc: subprocess.Popen[str] | None = None

    def start(self) -> Wrk:
        script = Path(tempfile.mkstemp(suffix=".lua", dir=self.workdir)[1])
        headers = {} if self.keepalive else {"Connection": "close"}
        script.write_text(lua_script(method="POST", body=json.dumps(self.body), headers=headers))
        self.proc = subprocess.Popen(
            [
                "wrk",
                "-t1",
                f"-c{self.connections}",
                f"-d{max(1, round(self.seconds))}s",
                "--timeout",
                "30s",
                "-s",
                str(script),
                self.url,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        return self

    def counts(self) -> dict[str, int]:
        assert self.proc is not None
        output, _ = self.proc.communicate(timeout=self.seconds + 60)
        return wrk_counts(output)


def wrk_once(url: str, body: dict[str, Any] | None, seconds: float, workdir: Path) -> Result:
    """A short wrk run with 4 connections (GET when ``body`` is None)."""
    script = Path(tempfile.mkstemp(suffix=".lua", dir=workdir)[1])
    if body is None:
        script.write_text(lua_script())
    else:
        script.write_text(lua_script(method="POST", body=json.dumps(body)))
    command = ["wrk", "-t1", "-c4", f"-d{max(1, round(seconds))}s", "-s", str(script), url]
    completed = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=seconds + 60
    )
    return parse_wrk(url, completed.stdout)


@dataclass
class StreamChecker:
    """``streams`` clients streaming completions through nginx in threads until stopped;
    counts streams that ended with ``[DONE]`` and those that did not (an error event, a
    cut, a non-200 answer). Each stream has a connection of its own (``Connection:
    close``), so that what is counted is the stream, not a reused connection's fate."""

    url: str
    streams: int = 4
    max_tokens: int = 256
    ok: int = 0
    broken: int = 0
    problems: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> StreamChecker:
        for _ in range(self.streams):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _run(self) -> None:
        session = requests.Session()
        body = completion_body(self.max_tokens, stream=True)
        headers = {"Connection": "close"}
        while not self._stop.is_set():
            try:
                with session.post(
                    self.url, json=body, headers=headers, stream=True, timeout=TIMEOUT_S
                ) as answer:
                    lines = [line for line in answer.iter_lines() if line.startswith(b"data: ")]
                    good = answer.status_code == 200 and lines and lines[-1] == b"data: [DONE]"
                    good = good and not any(b'"error"' in line for line in lines)
                    problem = f"{answer.status_code} {lines[-1:]!r}"
            except requests.RequestException as exc:
                good, problem = False, repr(exc)
            if good:
                self.ok += 1
            else:
                self.broken += 1
                self.problems.append(problem)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(TIMEOUT_S + 5)


# --------------------------------------------------------------------------- part 1


def _timed_request(session: requests.Session, url: str, kind: str) -> float:
    start = time.perf_counter()
    if kind == "models":
        answer = session.get(url + "/v1/models", timeout=TIMEOUT_S)
        answer.content  # noqa: B018 - read the whole body
    elif kind == "completion":
        answer = session.post(url + "/v1/completions", json=completion_body(1), timeout=TIMEOUT_S)
        answer.content  # noqa: B018
    else:
        body = completion_body(4, stream=True)
        with session.post(
            url + "/v1/completions", json=body, stream=True, timeout=TIMEOUT_S
        ) as answer:
            chunks = answer.iter_content(chunk_size=None)
            next(chunks)
            elapsed = time.perf_counter() - start
            for _ in chunks:  # the rest, so that the connection is reused
                pass
        if answer.status_code != 200:
            raise RuntimeError(f"{url}: HTTP {answer.status_code}")
        return elapsed
    if answer.status_code != 200:
        raise RuntimeError(f"{url}: HTTP {answer.status_code} {answer.text[:200]}")
    return time.perf_counter() - start


CASES = (
    ("models", "GET /v1/models"),
    ("completion", "completion, 1 token"),
    ("first_byte", "stream, first byte"),
)


def part_latency(
    sim: Simulator, nginx: Nginx, *, pairs: int, wrk_seconds: float, rounds: int, workdir: Path
) -> list[Latency]:
    """Part 1: one replica, direct and through nginx."""
    (member,) = sim.members(["chat-0"])
    nginx.apply([Site(DEPLOYMENT, PolicySpec(), [member])])
    direct_url = f"http://127.0.0.1:{member.port}"
    out: list[Latency] = []
    if shutil.which("wrk"):
        plans: list[tuple[str, str, dict[str, Any] | None]] = [
            ("models", "/v1/models", None),
            ("completion", "/v1/completions", completion_body(1)),
        ]
        for case, path, body in plans:
            runs: dict[str, list[Result]] = {"direct": [], "nginx": []}
            wrk_once(nginx.url + path, body, 1, workdir)  # warm-up
            for round_no in range(rounds):
                order = ["direct", "nginx"] if round_no % 2 == 0 else ["nginx", "direct"]
                for target in order:
                    base = direct_url if target == "direct" else nginx.url
                    result = wrk_once(base + path, body, wrk_seconds, workdir)
                    if result.failures:
                        raise RuntimeError(f"{case} {target}: {result.failures} failed requests")
                    runs[target].append(result)
            out.append(wrk_latency(case, runs["direct"], runs["nginx"]))
            print(f"  wrk {case}: done", flush=True)
    sessions = {"direct": requests.Session(), "nginx": requests.Session()}
    rng = random.Random(7)
    for case, _ in CASES:
        for _ in range(20):  # warm-up, connections opened
            for target, base in (("direct", direct_url), ("nginx", nginx.url)):
                _timed_request(sessions[target], base, case)
        measured: list[tuple[float, float]] = []
        for _ in range(pairs):
            first_nginx = rng.random() < 0.5
            if first_nginx:
                via = _timed_request(sessions["nginx"], nginx.url, case)
                straight = _timed_request(sessions["direct"], direct_url, case)
            else:
                straight = _timed_request(sessions["direct"], direct_url, case)
                via = _timed_request(sessions["nginx"], nginx.url, case)
            measured.append((straight, via))
        out.append(paired_latency(case, measured))
        print(f"  python {case}: done", flush=True)
    return out


# --------------------------------------------------------------------------- parts 2, 3


@dataclass
class Disruption:
    """Failed requests during one disruption under load."""

    name: str
    keepalive: bool
    requests: int
    non_2xx: int
    socket_errors: int
    streams_ok: int
    streams_broken: int
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return self.non_2xx + self.socket_errors + self.streams_broken


@contextmanager
def under_load(
    nginx: Nginx, seconds: float, workdir: Path, *, keepalive: bool
) -> Iterator[dict[str, Any]]:
    """wrk (non-streamed and streamed completions, 8 connections each) and 4 streaming
    checkers through nginx for ``seconds``; the yielded dict gets the figures once the
    block and the load are done."""
    url = nginx.url + "/v1/completions"
    runs = []
    if shutil.which("wrk") is not None:
        runs = [
            Wrk(url, completion_body(4), seconds, 8, workdir, keepalive).start(),
            Wrk(url, completion_body(32, stream=True), seconds, 8, workdir, keepalive).start(),
        ]
    checker = StreamChecker(url).start()
    figures: dict[str, Any] = {}
    started = time.monotonic()
    try:
        yield figures
    finally:
        time.sleep(max(0.0, seconds - (time.monotonic() - started)))
        checker.stop()
        counts = [run.counts() for run in runs]
        figures["requests"] = sum(c["requests"] for c in counts) + checker.ok + checker.broken
        figures["non_2xx"] = sum(c["non_2xx"] for c in counts)
        figures["socket_errors"] = sum(c["socket_errors"] for c in counts)
        figures["streams_ok"] = checker.ok
        figures["streams_broken"] = checker.broken
        figures["problems"] = checker.problems[:5]


def _disruption(
    name: str, figures: dict[str, Any], details: dict[str, Any], *, keepalive: bool
) -> Disruption:
    if figures["problems"]:
        details["stream_problems"] = figures["problems"]
    return Disruption(
        name=name,
        keepalive=keepalive,
        requests=figures["requests"],
        non_2xx=figures["non_2xx"],
        socket_errors=figures["socket_errors"],
        streams_ok=figures["streams_ok"],
        streams_broken=figures["streams_broken"],
        details=details,
    )


def _clients(keepalive: bool) -> str:
    return "keep-alive clients" if keepalive else "clients with Connection: close"


def _four_members(sim: Simulator) -> list[Member]:
    pods = sorted((e["pod"] for e in sim.endpoints()), key=lambda p: int(p.rsplit("-", 1)[1]))
    return sim.members(pods[:4])


def part_reloads(
    sim: Simulator, nginx: Nginx, *, reloads: int, keepalive: bool, workdir: Path
) -> Disruption:
    """Part 2: the weights of four members flip ``reloads`` times under load."""
    members = _four_members(sim)

    def site(heavy: Member) -> Site:
        policy = PolicySpec(algorithm="weighted_round_robin", weights={heavy.name: 5})
        return Site(DEPLOYMENT, policy, members)

    nginx.apply([site(members[-1])])
    applied: list[float] = []
    most_workers = 0
    with under_load(nginx, reloads + 3.0, workdir, keepalive=keepalive) as figures:
        time.sleep(1.0)
        for n in range(reloads):
            start = time.monotonic()
            nginx.apply([site(members[n % len(members)])])
            applied.append(time.monotonic() - start)
            # Old workers live on until their last request in flight ends.
            most_workers = max(most_workers, len(nginx.workers()))
            time.sleep(max(0.0, 1.0 - (time.monotonic() - start)))
    details = {
        "reloads": len(applied),
        "slowest_reload_s": round(max(applied), 3),
        "most_workers": most_workers,
    }
    name = f"{reloads} reloads, weights flipped, {_clients(keepalive)}"
    return _disruption(name, figures, details, keepalive=keepalive)


def _serve_four(sim: Simulator, nginx: Nginx) -> list[Member]:
    """Four members round robin, applied and the previous workers gone."""
    members = _four_members(sim)
    nginx.wait_gone(nginx.apply([Site(DEPLOYMENT, PolicySpec(), members)]))
    return members


def _busiest(sim: Simulator, port: int) -> int:
    """The most requests seen in flight on a replica over about half a second."""
    most = 0
    for _ in range(25):
        most = max(most, sim.in_flight(port))
        time.sleep(0.02)
    return most


def part_drain(sim: Simulator, nginx: Nginx, *, keepalive: bool, workdir: Path) -> Disruption:
    """Part 3: a member drained (left out, reload, old workers gone, nothing in flight on
    it) before its replica leaves the simulator."""
    members = _serve_four(sim, nginx)
    drained = members[-1]
    with under_load(nginx, 8.0, workdir, keepalive=keepalive) as figures:
        time.sleep(1.5)
        at_start = _busiest(sim, drained.port)
        start = time.monotonic()
        leaving = [replace_state(m, "draining") if m is drained else m for m in members]
        old = nginx.apply([Site(DEPLOYMENT, PolicySpec(), leaving)])
        reloaded = time.monotonic() - start
        nginx.wait_gone(old)
        workers_gone = time.monotonic() - start
        while sim.in_flight(drained.port):
            time.sleep(0.01)
        idle = time.monotonic() - start
        sim.remove(drained.name)
    details = {
        "most_in_flight_on_member": at_start,
        "reload_applied_s": round(reloaded, 3),
        "old_workers_exited_s": round(workers_gone, 3),
        "member_idle_s": round(idle, 3),
    }
    name = f"drain 1 of 4, then remove its replica, {_clients(keepalive)}"
    return _disruption(name, figures, details, keepalive=keepalive)


def part_abrupt(sim: Simulator, nginx: Nginx, *, workdir: Path) -> Disruption:
    """The contrast to part 3: a replica leaves while nginx still sends it requests; the
    upstream is updated a second later."""
    members = _serve_four(sim, nginx)
    victim = members[-1]
    with under_load(nginx, 6.0, workdir, keepalive=False) as figures:
        time.sleep(1.5)
        at_start = _busiest(sim, victim.port)
        sim.remove(victim.name)
        time.sleep(1.0)
        nginx.apply([Site(DEPLOYMENT, PolicySpec(), members[:-1])])
    name = f"remove 1 of 4 without a drain, {_clients(False)}"
    return _disruption(name, figures, {"most_in_flight_on_member": at_start}, keepalive=False)


def replace_state(member: Member, state: str) -> Member:
    return Member(
        name=member.name,
        address=member.address,
        port=member.port,
        state=state,  # type: ignore[arg-type]
        zone=member.zone,
        weight=member.weight,
    )


# --------------------------------------------------------------------------- part 4


async def _placement_async(url: str, keys: Sequence[str], concurrency: int) -> dict[str, str]:
    import aiohttp

    out: dict[str, str] = {}
    failures: list[str] = []
    queue = list(keys)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while queue:
                key = queue.pop()
                async with session.get(url, headers={HASH_HEADER: key}) as answer:
                    await answer.read()
                    if answer.status != 200:
                        failures.append(f"{key}: HTTP {answer.status}")
                    out[key] = answer.headers.get(REPLICA_HEADER, "")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, e.g. {failures[:3]}")
    return out


def placement(nginx: Nginx, keys: Sequence[str]) -> dict[str, str]:
    """The replica each key reaches through nginx."""
    # In a thread of its own: the caller may already run an event loop (a test session
    # with a browser driver does), and asyncio.run refuses to nest.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(
            asyncio.run, _placement_async(nginx.url + "/v1/models", keys, 32)
        ).result()


@dataclass(frozen=True)
class HashRow:
    members: int
    change: str
    ideal: float
    movement: Movement
    sticky: bool


def part_hash(
    sim: Simulator, nginx: Nginx, *, sizes: Sequence[int], keys: int
) -> tuple[list[HashRow], bool]:
    """Part 4: key movement through nginx; also whether every key stayed on its replica
    when asked twice (a sample of 200 keys per placement)."""
    policy = PolicySpec(algorithm="consistent_hash", hash_key=HASH_HEADER)
    names = [f"session-{n:05d}" for n in range(keys)]
    rows: list[HashRow] = []
    sticky = True

    def place(members: list[Member]) -> dict[str, str]:
        nonlocal sticky
        # Old workers may still take a connection or two: wait until they are gone.
        nginx.wait_gone(nginx.apply([Site(DEPLOYMENT, policy, members)]))
        first = placement(nginx, names)
        again = placement(nginx, names[:200])
        sticky = sticky and all(first[k] == again[k] for k in again)
        return first

    for size in sizes:
        pods = [f"chat-{n}" for n in range(size + 1)]
        everyone = sim.members(pods)
        base_members = everyone[:size]
        base = place(base_members)
        added = place(everyone)
        rows.append(
            HashRow(size, "add 1", 1 / (size + 1), key_movement(base, added, pods[size]), sticky)
        )
        removed_pod = pods[size // 2]
        rest = [m for m in base_members if m.name != removed_pod]
        removed = place(rest)
        rows.append(
            HashRow(size, "remove 1", 1 / size, key_movement(base, removed, removed_pod), sticky)
        )
        marked = [replace_state(m, "down") if m.name == removed_pod else m for m in base_members]
        down = place(marked)
        rows.append(
            HashRow(size, "mark 1 down", 1 / size, key_movement(base, down, removed_pod), sticky)
        )
        print(f"  {size} members: done", flush=True)
    return rows, sticky


# --------------------------------------------------------------------------- report


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def render_report(
    latencies: Sequence[Latency], disruptions: Sequence[Disruption], hashes: Sequence[HashRow]
) -> str:
    lines = [
        "Latency nginx adds (one replica, direct vs through nginx):",
        "",
        "| request | client | direct p50 | nginx p50 | direct p99 | nginx p99 "
        "| p50 ratio | p99 ratio | added (p50) | requests |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    labels = dict(CASES)
    for lat in latencies:
        lines.append(
            f"| {labels[lat.case]} | {lat.client} | {_ms(lat.direct_p50)} | {_ms(lat.nginx_p50)} "
            f"| {_ms(lat.direct_p99)} | {_ms(lat.nginx_p99)} | {lat.ratio_p50:.2f}x "
            f"| {lat.ratio_p99:.2f}x | {_ms(lat.added_p50)} | {lat.samples} |"
        )
    lines += [
        "",
        "Failed requests under load (wrk: non-2xx answers, socket errors; streams checked "
        "to [DONE]):",
        "",
        "| disruption | requests | non-2xx | socket errors | streams ok | streams broken "
        "| failed | details |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for dis in disruptions:
        details = ", ".join(f"{k} {v}" for k, v in dis.details.items() if k != "stream_problems")
        lines.append(
            f"| {dis.name} | {dis.requests} | {dis.non_2xx} | {dis.socket_errors} "
            f"| {dis.streams_ok} | {dis.streams_broken} | {dis.failed} | {details} |"
        )
    lines += [
        "",
        "Consistent-hash key movement through nginx:",
        "",
        "| members | change | keys | moved | moved share | ideal | changed member's share "
        "| stray moves |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in hashes:
        m = row.movement
        lines.append(
            f"| {row.members} | {row.change} | {m.keys} | {m.moved} | {m.fraction:.2%} "
            f"| {row.ideal:.2%} | {m.changed_fraction:.2%} | {m.stray} |"
        )
    return "\n".join(lines)


def as_json(
    latencies: Sequence[Latency], disruptions: Sequence[Disruption], hashes: Sequence[HashRow]
) -> dict[str, Any]:
    return {
        "latency": [
            {
                "case": lat.case,
                "client": lat.client,
                "direct_p50_ms": round(lat.direct_p50 * 1000, 3),
                "direct_p99_ms": round(lat.direct_p99 * 1000, 3),
                "nginx_p50_ms": round(lat.nginx_p50 * 1000, 3),
                "nginx_p99_ms": round(lat.nginx_p99 * 1000, 3),
                "ratio_p50": round(lat.ratio_p50, 3),
                "ratio_p99": round(lat.ratio_p99, 3),
                "added_p50_ms": round(lat.added_p50 * 1000, 3),
                "samples": lat.samples,
            }
            for lat in latencies
        ],
        "disruptions": [
            {
                "name": dis.name,
                "keepalive": dis.keepalive,
                "requests": dis.requests,
                "non_2xx": dis.non_2xx,
                "socket_errors": dis.socket_errors,
                "streams_ok": dis.streams_ok,
                "streams_broken": dis.streams_broken,
                "failed": dis.failed,
                **dis.details,
            }
            for dis in disruptions
        ],
        "consistent_hash": [
            {
                "members": row.members,
                "change": row.change,
                "keys": row.movement.keys,
                "moved": row.movement.moved,
                "moved_fraction": round(row.movement.fraction, 4),
                "ideal_fraction": round(row.ideal, 4),
                "changed_member_fraction": round(row.movement.changed_fraction, 4),
                "stray": row.movement.stray,
            }
            for row in hashes
        ],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--members", default="4,8", help="part 4's member counts: 2 to 8, a,b")
    parser.add_argument("--reloads", type=int, default=10)
    parser.add_argument("--pairs", type=int, default=1000, help="Python client pairs per case")
    parser.add_argument("--speed", type=float, default=50.0)
    args = parser.parse_args(argv)
    try:
        sizes = [int(n) for n in args.members.split(",")]
    except ValueError:
        sizes = []
    if not sizes or not all(2 <= n <= REPLICAS - 1 for n in sizes):
        parser.error(f"--members must be between 2 and {REPLICAS - 1}")
    if min(args.keys, args.reloads, args.pairs) < 1 or args.speed <= 0:
        parser.error("--keys, --reloads, --pairs and --speed must be positive")
    binary = nginx_binary()
    if binary is None:
        print("SKIP: nginx is not installed (Debian package 'nginx-light')")
        return 0
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian package 'wrk'): Python client only")
    keys, pairs, wrk_seconds, rounds = args.keys, args.pairs, 2.0, 4
    if args.quick:
        keys, pairs, wrk_seconds, rounds = min(keys, 1000), min(pairs, 100), 1.0, 2
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="cp-bench-balancing-") as tmp:
        workdir = Path(tmp)
        sim = Simulator(REPLICAS, args.speed)
        nginx = Nginx(binary=binary, prefix=workdir / "nginx")
        try:
            nginx.start([Site(DEPLOYMENT, PolicySpec(), sim.members(["chat-0"]))])
            print(f"nginx {nginx.url} ({NGINX_WORKERS} workers), simulator {sim.url}")
            print("1. latency nginx adds", flush=True)
            latencies = part_latency(
                sim, nginx, pairs=pairs, wrk_seconds=wrk_seconds, rounds=rounds, workdir=workdir
            )
            print(
                "4. consistent-hash key movement (run before 2 and 3, which remove replicas)",
                flush=True,
            )
            hashes, sticky = part_hash(sim, nginx, sizes=sizes, keys=keys)
            print("2. reloads under load", flush=True)
            disruptions = [
                part_reloads(sim, nginx, reloads=args.reloads, keepalive=k, workdir=workdir)
                for k in (True, False)
            ]
            print("3. drain under load", flush=True)
            disruptions += [
                part_drain(sim, nginx, keepalive=k, workdir=workdir) for k in (True, False)
            ]
            disruptions.append(part_abrupt(sim, nginx, workdir=workdir))
        finally:
            nginx.stop()
            sim.stop()
    print()
    print(render_report(latencies, disruptions, hashes))
    load1, _, _ = os.getloadavg()
    print(f"\n{time.monotonic() - started:.0f} s; load average {load1:.2f} (1 min)")
    if args.json:
        print(json.dumps(as_json(latencies, disruptions, hashes), indent=2))
    if not sticky:
        print("FAIL: a key reached two replicas under one configuration")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
