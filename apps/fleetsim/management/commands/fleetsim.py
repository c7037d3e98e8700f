"""Run the fleet simulator for the inventory's simulated deployments.

It serves Prometheus metrics with vLLM and DCGM names at /metrics, and the scale and
fault-injection endpoints the control plane and the tests use (see apps/fleetsim/exposition);
with FLEETSIM_LOGS_URL and FLEETSIM_LOGS_TOKEN set, it also ships the replicas' log lines
to that Loki push endpoint (apps/fleetsim/logs). With --serve-replicas every replica also
answers OpenAI-compatible HTTP on its own port (apps/fleetsim/replica_http), listed at
GET /endpoints and in --endpoints-file.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.fleetsim.exposition import serve
from apps.fleetsim.inventory import PATTERNS, fleet_from_inventory
from apps.fleetsim.logs import LogPump, LokiShipper
from apps.fleetsim.replica_http import ReplicaHTTPServer


class Command(BaseCommand):
    help = "Simulate the inventory's simulated deployments and expose their metrics."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=9400)
        parser.add_argument(
            "--pattern",
            choices=PATTERNS,
            default="diurnal",
            help="Load pattern (rate per deployment from label sim.rate-rps).",
        )
        parser.add_argument(
            "--trace",
            type=Path,
            default=None,
            help="CSV trace (TIMESTAMP,ContextTokens,GeneratedTokens) for --pattern trace.",
        )
        parser.add_argument(
            "--time-scale",
            type=float,
            default=1.0,
            help="Trace time compression: 2 replays twice as fast.",
        )
        parser.add_argument(
            "--speed", type=float, default=1.0, help="Simulated seconds per wall-clock second."
        )
        parser.add_argument(
            "--serve-replicas",
            action="store_true",
            help="Give every replica an OpenAI-compatible HTTP endpoint on its own port.",
        )
        parser.add_argument(
            "--replica-port-base",
            type=int,
            default=None,
            help="First port for replica endpoints (consecutive from there); default: any free.",
        )
        parser.add_argument(
            "--endpoints-file",
            type=Path,
            default=None,
            help="JSON file listing the replica endpoints, rewritten on every change "
            "(default: <var dir>/fleetsim/replicas.json).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["pattern"] == "trace" and (
            options["trace"] is None or not options["trace"].exists()
        ):
            raise CommandError("--pattern trace needs --trace pointing at an existing CSV file.")
        if options["speed"] <= 0 or options["time_scale"] <= 0:
            raise CommandError("--speed and --time-scale must be positive.")
        fleet = fleet_from_inventory(
            pattern=options["pattern"], trace=options["trace"], time_scale=options["time_scale"]
        )
        if not fleet.deployments:
            self.stderr.write("No simulated deployments in the inventory (target_kind=simulated).")
        replicas = self._replica_server(fleet, options)
        server, port = serve(
            fleet,
            host=options["host"],
            port=options["port"],
            endpoints=replicas.endpoints if replicas is not None else None,
        )
        fleet.run_realtime(speed=options["speed"])
        pump = self._log_pump(fleet)
        names = ", ".join(f"{d.namespace}/{d.name}" for d in fleet.deployments)
        self.stdout.write(f"fleet simulator on http://{options['host']}:{port}/metrics: {names}")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        stop.wait()
        if pump is not None:
            pump.stop()
        if replicas is not None:
            replicas.stop()
        fleet.stop()
        server.stop()

    def _replica_server(self, fleet: Any, options: dict[str, Any]) -> ReplicaHTTPServer | None:
        if not options["serve_replicas"]:
            return None
        base = options["replica_port_base"]
        if base is not None and not 1 <= base <= 65535:
            raise CommandError("--replica-port-base must be a TCP port number.")
        path = options["endpoints_file"] or Path(settings.VAR_DIR) / "fleetsim" / "replicas.json"
        replicas = ReplicaHTTPServer(
            fleet, host=options["host"], port_base=base, endpoints_file=path
        )
        replicas.start()
        self.stdout.write(
            f"replica endpoints (OpenAI-compatible) listed in {path} and at GET /endpoints"
        )
        return replicas

    def _log_pump(self, fleet: Any) -> LogPump | None:
        """Ship the replicas' log lines when FLEETSIM_LOGS_URL and FLEETSIM_LOGS_TOKEN say
        where (the run command sets them; the token is not put on the command line)."""
        url = os.environ.get("FLEETSIM_LOGS_URL", "")
        token = os.environ.get("FLEETSIM_LOGS_TOKEN", "")
        if not (url and token):
            return None
        pump = LogPump(fleet.snapshot, LokiShipper(url, token))
        pump.start()
        self.stdout.write(f"replica logs shipped to {url}")
        return pump
