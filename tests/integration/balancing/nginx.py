"""A real nginx on a free loopback port serving a rendered balancing fragment, under a
temp prefix (its own pid, logs and temp paths), and simulator replicas behind it."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from apps.balancing.members import Member
from apps.balancing.render import Site, main_config, nginx_binary, render_and_validate
from apps.fleetsim.fleet import Fleet, SimulatedDeployment
from apps.fleetsim.replica_http import ReplicaHTTPServer
from tests.servers import binary_or_skip, free_port, wait_for

MODEL = "llama-3.1-8b"
TIMEOUT_S = 30


@dataclass
class RunningNginx:
    binary: str
    prefix: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve(self, sites: Sequence[Site]) -> str:
        """(Re)start nginx on the fragment of ``sites``, checked by ``nginx -t`` first;
        returns the fragment."""
        rendered = render_and_validate(
            listen=f"127.0.0.1:{self.port}", sites=sites, binary=self.binary
        )
        assert rendered.ok, rendered.errors
        self.stop()
        (self.prefix / "balancing.conf").write_text(rendered.text)
        conf = self.prefix / "nginx.conf"
        conf.write_text(main_config(prefix=self.prefix, include=self.prefix / "balancing.conf"))
        log = self.prefix / "error.log"
        command = [self.binary, "-p", str(self.prefix), "-c", str(conf), "-e", str(log)]
        self.proc = subprocess.Popen([*command, "-g", "daemon off;"])
        wait_for(self._accepting, timeout_s=10, what="nginx listening")
        return rendered.text

    def _accepting(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            log = (self.prefix / "error.log").read_text()
            raise AssertionError(f"nginx exited: {log}")
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[RunningNginx]:
    binary = binary_or_skip(nginx_binary(), "nginx", "nginx-light")
    prefix = tmp_path / "nginx"
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / kind).mkdir(parents=True)
    running = RunningNginx(binary=binary, prefix=prefix, port=free_port())
    try:
        yield running
    finally:
        running.stop()


@dataclass
class Replicas:
    fleet: Fleet
    server: ReplicaHTTPServer

    def members(self, deployment: str = "chat", pods: Sequence[str] | None = None) -> list[Member]:
        """Members read from the simulator's endpoint list (ready -> serving)."""
        out = []
        for endpoint in self.server.endpoints():
            if endpoint["deployment"] != deployment:
                continue
            if pods is not None and endpoint["pod"] not in pods:
                continue
            state = "serving" if endpoint["state"] == "ready" else endpoint["state"]
            out.append(
                Member(
                    name=endpoint["pod"],
                    address=endpoint["host"],
                    port=endpoint["port"],
                    state=state,
                )
            )
        return out

    def kill(self, pod: str, deployment: str = "chat") -> None:
        self.server.kill("llm", deployment, pod)

    def slow_down(self, pod: str, factor: float) -> None:
        with self.fleet.lock:
            self.fleet.get("llm", "chat").slow_down(pod, factor)


@contextmanager
def running_replicas(chat: int, spare: int = 0) -> Iterator[Replicas]:
    """Deployments "chat" (``chat`` replicas) and "spare" in namespace llm, served over
    HTTP in fast mode (50 simulated seconds per second)."""
    deployments = [SimulatedDeployment("chat", MODEL, "llm", "A100-80GB", chat, ())]
    if spare:
        deployments.append(SimulatedDeployment("spare", MODEL, "llm", "A100-80GB", spare, ()))
    fleet = Fleet(deployments)
    server = ReplicaHTTPServer(fleet, tick_s=0.005)
    server.start()
    fleet.run_realtime(speed=50.0, tick_s=0.01)
    try:
        wait_for(
            lambda: sum(e["state"] == "ready" for e in server.endpoints()) == chat + spare,
            timeout_s=20,
            what="replicas ready",
        )
        yield Replicas(fleet, server)
    finally:
        fleet.stop()
        server.stop()


def complete(
    base: str, *, path: str = "/v1/completions", max_tokens: int = 1, **headers: str
) -> requests.Response:
    body: dict[str, Any] = {"model": MODEL, "prompt": "Which replica?", "max_tokens": max_tokens}
    return requests.post(base + path, json=body, headers=headers, timeout=TIMEOUT_S)


def served_by(response: requests.Response) -> str:
    return response.headers.get("X-Replica", "")
