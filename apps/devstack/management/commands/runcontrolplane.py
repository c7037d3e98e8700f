"""Start the whole control plane in one terminal: web, Celery worker, Celery beat and the
autoscaling fast path (``manage.py autoscaling_fastpath``, which reads the serving replicas'
own metrics every 2 s and evaluates at once on a burst).

Used by ``make run``. On embedded defaults it needs no server at all (SQLite, kombu's
filesystem broker); with DATABASE_URL / REDIS_URL set it uses those. If any child process
dies, the others are stopped and the command exits non-zero, so a supervisor notices.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from apps.balancing.render import main_config, nginx_binary
from apps.devstack.demo import (
    DEMO_GATEWAY,
    demo_gateway_port,
    demo_gateway_token,
    demo_ingest_token,
)
from controlplane.env import env_bool


def fastpath_env(env: dict[str, str], *, demo: bool) -> dict[str, str]:
    """The fast path's environment. The demo's simulated replicas listen on 127.0.0.1, which
    the fast path reads only within ``OUTBOUND_ALLOWED_NETWORKS``: for the demo, and only
    in this one process (it reads nothing but discovered replicas' ``/metrics``), loopback
    is added unless the variable is set already. Web and worker keep the operator's value."""
    if not demo or env.get("OUTBOUND_ALLOWED_NETWORKS"):
        return env
    return {**env, "OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8"}


class Command(BaseCommand):
    help = "Run web, worker, beat and the fast path together (the README's run command)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=os.environ.get("CONTROLPLANE_HOST", "127.0.0.1"))
        parser.add_argument(
            "--port", type=int, default=int(os.environ.get("CONTROLPLANE_PORT", "8000"))
        )
        parser.add_argument(
            "--no-demo", action="store_true", help="Do not create the demo team and fleet."
        )
        parser.add_argument(
            "--no-fastpath",
            action="store_true",
            help="Do not start the autoscaling fast path (the regular loop still decides).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        Path(settings.VAR_DIR).mkdir(parents=True, exist_ok=True)
        call_command("migrate", interactive=False, verbosity=0)
        login = self._ensure_admin()
        if not options["no_demo"]:
            call_command("seed_demo", verbosity=0)

        python = sys.executable
        url = f"http://{options['host']}:{options['port']}/"
        env = os.environ.copy()
        prometheus, metrics_note, toggles_note = None, "", ""
        extra: dict[str, list[str]] = {}
        if not options["no_demo"]:
            gateway = Path(settings.VAR_DIR) / "demo-gateway-token"
            demo_gateway_token(saved=gateway)
            toggles_note = (
                f'  toggles:  curl -H "Authorization: Bearer $(cat {gateway})" '
                f"{url}toggles/v1/snapshot?deployment=chat-llama-8b\n"
            )
            sim_port = int(os.environ.get("FLEETSIM_PORT", "9400"))
            extra["fleetsim"] = [python, "manage.py", "fleetsim", "--port", str(sim_port)]
            if env_bool("FLEETSIM_SERVE_REPLICAS", False):
                extra["fleetsim"].append("--serve-replicas")
                gateway_note = self._demo_gateway(extra, url=url, token=gateway)
                toggles_note += gateway_note
            env["FLEETSIM_URL"] = f"http://127.0.0.1:{sim_port}"
            # The simulated replicas ship their log lines to this control plane's Loki push
            # endpoint with the demo team's ingest token (kept in var/, like the password).
            env["FLEETSIM_LOGS_URL"] = f"{url}loki/api/v1/push"
            env["FLEETSIM_LOGS_TOKEN"] = demo_ingest_token(
                saved=Path(settings.VAR_DIR) / "demo-ingest-token"
            )
            if not settings.PROMETHEUS_URL:
                prometheus, metrics_note = self._start_prometheus(sim_port)
                if prometheus is not None:
                    env["PROMETHEUS_URL"] = prometheus.url
        children = {
            **extra,
            "web": [
                python,
                "manage.py",
                "runserver",
                "--noreload",
                f"{options['host']}:{options['port']}",
            ],
            "worker": [python, "-m", "celery_worker.worker", "--concurrency", "2"],
            "beat": [python, "-m", "celery_worker.beat"],
        }
        envs = dict.fromkeys(children, env)
        fastpath_note = "replica metrics every 2 s"
        if options["no_fastpath"]:
            fastpath_note = "off"
        elif not options["no_demo"] and not env_bool("FLEETSIM_SERVE_REPLICAS", False):
            # The demo's simulated replicas serve no HTTP: there would be nothing to read.
            fastpath_note = "off (the demo replicas serve no HTTP: FLEETSIM_SERVE_REPLICAS=true)"
        else:
            children["fastpath"] = [python, "manage.py", "autoscaling_fastpath", "--interval", "2"]
            envs["fastpath"] = fastpath_env(env, demo=not options["no_demo"])
        procs: dict[str, subprocess.Popen[bytes]] = {}
        for name, cmd in children.items():
            procs[name] = subprocess.Popen(cmd, cwd=settings.BASE_DIR, env=envs[name])  # noqa: S603

        self.stdout.write(
            self.style.SUCCESS(
                "\nllm-controlplane is starting\n"
                f"  console:  {url}console/\n"
                f"  admin:    {url}admin/\n"
                f"  API docs: {url}api/docs/\n"
                f"  health:   {url}readyz\n"
                f"  login:    {login}\n"
                f"  database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}, "
                f"broker: {settings.CELERY_BROKER_URL.split('://', 1)[0]}\n"
                f"  metrics:  {metrics_note or env.get('PROMETHEUS_URL', 'PROMETHEUS_URL')}\n"
                f"  fastpath: {fastpath_note}\n"
                f"{toggles_note}"
                "Press Ctrl+C to stop.\n"
            )
        )
        stopping = False

        def _stop(signum: int, frame: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        exit_code = 0
        while not stopping:
            for name, proc in procs.items():
                code = proc.poll()
                if code is not None:
                    self.stderr.write(f"{name} exited with status {code}; stopping the others.")
                    exit_code = code or 1
                    stopping = True
                    break
            time.sleep(0.5)
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
        if prometheus is not None:
            prometheus.stop()
        if exit_code:
            sys.exit(exit_code)

    def _demo_gateway(self, extra: dict[str, list[str]], *, url: str, token: Path) -> str:
        """nginx in front of the simulator's replicas, kept up to date by the gateway
        agent, as on a gateway host (everything under var/gateway): the demo's traffic can
        then go through the balancing policies. Only when nginx is installed."""
        binary = nginx_binary()
        if binary is None:
            return "  gateway:  no nginx (Debian package 'nginx-light'): no demo gateway\n"
        prefix = (Path(settings.VAR_DIR) / "gateway").resolve()
        prefix.mkdir(parents=True, exist_ok=True)
        include, conf = prefix / "balancing.conf", prefix / "nginx.conf"
        if not include.exists():
            include.write_text("")  # no server until the agent's first apply
        conf.write_text(main_config(prefix=prefix, include=include))
        nginx = [binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
        extra["nginx"] = [*nginx, "-g", "daemon off;"]
        python = sys.executable
        extra["gatewayagent"] = [
            python, "manage.py", "gatewayagent",
            "--server", url.rstrip("/"), "--gateway", DEMO_GATEWAY,
            "--token-file", str(token), "--config", str(include),
            "--nginx", binary, "--nginx-conf", str(conf), "--prefix", str(prefix),
            "--error-log", str(prefix / "error.log"), "--pid-file", str(prefix / "nginx.pid"),
            "--interval", "2",
        ]  # fmt: skip
        port = demo_gateway_port()
        return (
            f"  gateway:  http://127.0.0.1:{port}/v1/models (nginx + gateway agent; "
            f"/<deployment>/v1/chat/completions per deployment)\n"
        )

    def _start_prometheus(self, sim_port: int) -> tuple[Any, str]:
        """A local Prometheus scraping the simulator, when the binary is installed."""
        from apps.devstack.prometheus import (
            EmbeddedPrometheus,
            ScrapeTarget,
            find_binary,
        )

        if find_binary() is None:
            return None, (
                "no Prometheus: install the Debian package 'prometheus' or set PROMETHEUS_URL "
                "(deployments show 'metrics unavailable' until then)"
            )
        prometheus = EmbeddedPrometheus(
            targets=[ScrapeTarget("fleetsim", f"127.0.0.1:{sim_port}", interval_s=5)],
            data_dir=Path(settings.VAR_DIR) / "prometheus",
            port=int(os.environ.get("EMBEDDED_PROMETHEUS_PORT", "9090")),
        )
        try:
            prometheus.start()
        except (OSError, RuntimeError, TimeoutError) as exc:
            return None, f"embedded Prometheus failed to start: {exc}"
        return prometheus, f"{prometheus.url} (embedded, scraping the fleet simulator)"

    def _ensure_admin(self) -> str:
        User = get_user_model()
        credentials = Path(settings.VAR_DIR) / "admin-credentials"
        if User.objects.filter(is_superuser=True).exists():
            if credentials.exists():
                return credentials.read_text(encoding="utf-8").strip() + f"  (from {credentials})"
            return "an existing superuser (create another with: manage.py createsuperuser)"
        username = os.environ.get("CONTROLPLANE_ADMIN_USER", "admin")
        password = os.environ.get("CONTROLPLANE_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        line = f"{username} / {password}"
        credentials.write_text(line + "\n", encoding="utf-8")
        credentials.chmod(0o600)
        return line + "  (created now; also saved in var/admin-credentials)"
