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


class Command(BaseCommand):
    help = "Apply the control plane's balancing configuration to this host's nginx."
    requires_system_checks: list[str] = []  # runs on a gateway host: no database there

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--server", default=_env("server"), help="The control plane's base URL (http[s])."
        )
        parser.add_argument("--gateway", default=_env("gateway"), help="This gateway's name.")
        parser.add_argument(
            "--token-file",
            type=Path,
            default=_env("token_file"),
            help="File holding the team's gateway token (lcpg_...); read at every poll.",
        )
        parser.add_argument(
            "--config",
            type=Path,
            default=_env("config"),
            help="The file the main nginx configuration includes (rewritten atomically).",
        )
        parser.add_argument(
            "--nginx", default=_env("nginx"), help="nginx binary (default: the one on PATH)."
        )
        parser.add_argument(
            "--nginx-conf",
            type=Path,
            default=_env("nginx_conf"),
            help="Main nginx configuration, passed as -c to nginx -t and nginx -s reload.",
        )
        parser.add_argument(
            "--prefix", type=Path, default=_env("prefix"), help="nginx prefix (-p)."
        )
        parser.add_argument(
            "--error-log",
            type=Path,
            default=_env("error_log"),
            help="nginx -e: its error log before the configuration names one.",
        )
        parser.add_argument(
            "--pid-file",
            type=Path,
            default=_env("pid_file", "/run/nginx.pid"),
            help="nginx master's pid file: a reload is applied once new workers took over "
            "(default /run/nginx.pid; without it, once the reload command succeeded).",
        )
        parser.add_argument(
            "--reload-command",
            default=_env("reload_command"),
            help='Run instead of nginx -s reload, e.g. "systemctl reload nginx".',
        )
        parser.add_argument(
            "--interval",
            type=float,
            default=float(_env("interval", "5") or 5),
            help="Seconds between polls (doubled after each failure, up to --max-backoff).",
        )
        parser.add_argument(
            "--max-backoff",
            type=float,
            default=float(_env("max_backoff", "60") or 60),
            help="Longest wait between polls after failures, in seconds.",
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
