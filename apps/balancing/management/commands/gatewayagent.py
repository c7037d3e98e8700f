"""Keep this host's nginx configuration in step with the control plane (see
apps/balancing/agent.py): poll the gateway's configuration, check it with ``nginx -t``,
install it atomically and reload nginx, report what happened.

Every option can also come from the environment (``GATEWAY_AGENT_<OPTION>``, e.g.
``GATEWAY_AGENT_SERVER``); a command-line option wins. The command uses no database.
"""

from __future__ import annotations

import os
import shlex
import signal
import threading
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.balancing.agent import AgentSettings, GatewayAgent
from apps.balancing.render import nginx_binary

ENV_PREFIX = "GATEWAY_AGENT_"


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(ENV_PREFIX + name.upper())
    return value if value not in (None, "") else default


# name, type, default, help: each also read from GATEWAY_AGENT_<NAME>.
OPTIONS: list[tuple[str, type, str | None, str]] = [
    ("server", str, None, "The control plane's base URL (http[s])."),
    ("gateway", str, None, "This gateway's name."),
    ("token_file", Path, None, "File holding the team's gateway token; read at every poll."),
    ("config", Path, None, "The file the main nginx configuration includes."),
    ("nginx", str, None, "nginx binary (default: the one on PATH)."),
    ("nginx_conf", Path, None, "Main nginx configuration (-c) for nginx -t and reloads."),
    ("prefix", Path, None, "nginx prefix (-p)."),
    ("error_log", Path, None, "nginx -e: its error log before the configuration names one."),
    (
        "pid_file",
        Path,
        "/run/nginx.pid",
        "nginx master's pid file: a reload is applied once new workers took over "
        "(without it, once the reload command succeeded).",
    ),
    ("reload_command", str, None, 'Instead of nginx -s reload, e.g. "systemctl reload nginx".'),
    ("interval", float, "5", "Seconds between polls (doubled after each failure)."),
    ("max_backoff", float, "60", "Longest wait between polls after failures, in seconds."),
]


class Command(BaseCommand):
    help = "Apply the control plane's balancing configuration to this host's nginx."
    requires_system_checks: list[str] = []  # runs on a gateway host: no database there

    def add_arguments(self, parser: CommandParser) -> None:
        for name, kind, default, text in OPTIONS:
            parser.add_argument(
                f"--{name.replace('_', '-')}", type=kind, default=_env(name, default), help=text
            )
        parser.add_argument(
            "--once",
            action="store_true",
            help="Poll once and exit: 0 when the configuration is current, 1 otherwise.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        missing = [
            f"--{name.replace('_', '-')}"
            for name in ("server", "gateway", "token_file", "config")
            if not options[name]
        ]
        if missing:
            raise CommandError(f"missing {', '.join(missing)} (or {ENV_PREFIX}* variables)")
        if not str(options["server"]).startswith(("http://", "https://")):
            raise CommandError("--server must be an http:// or https:// URL")
        if options["interval"] <= 0 or options["max_backoff"] <= 0:
            raise CommandError("--interval and --max-backoff must be positive")
        if not Path(options["token_file"]).is_file():
            raise CommandError(f"--token-file {options['token_file']} is not a readable file")
        nginx = options["nginx"] or nginx_binary()
        if nginx is None:
            raise CommandError("nginx not found: install it or pass --nginx")
        settings = AgentSettings(
            server=options["server"],
            gateway=options["gateway"],
            token_file=Path(options["token_file"]),
            config_path=Path(options["config"]).absolute(),
            nginx=nginx,
            nginx_conf=options["nginx_conf"],
            prefix=options["prefix"],
            error_log=options["error_log"],
            pid_file=options["pid_file"],
            reload_command=tuple(shlex.split(options["reload_command"] or "")),
            interval_s=options["interval"],
            max_backoff_s=options["max_backoff"],
        )
        stop = threading.Event()
        if not options["once"]:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
        agent = GatewayAgent(settings, sleep=stop.wait)
        result = agent.run(once=options["once"], stop=stop)
        if options["once"] and not result.healthy:
            raise CommandError(f"{result.outcome}: {result.detail}".rstrip(": "))
