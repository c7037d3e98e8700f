"""``manage.py loadtest <team>/<deployment> --mode stress ...``: run a load test in the
foreground with the API's options and checks, print its progress and result. The run is
stored like one started through the API."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.golive.serializers import LoadTestRequestSerializer, loadtest_params
from apps.golive.services import Conflict, loadtest_create, loadtest_execute

from ._target import deployment_named

OPTIONS = (
    ("rate_rps", float),
    ("duration_s", float),
    ("max_rate_rps", float),
    ("rate_factor", float),
    ("max_total_s", float),
    ("max_concurrency", int),
    ("slo_ttft_s", float),
    ("slo_itl_s", float),
    ("slo_quantile", float),
    ("max_error_rate", float),
    ("replicas", int),
    ("request_timeout_s", float),
    ("seed", int),
    ("max_prompt_tokens", int),
)


class Command(BaseCommand):
    help = "Run a load test against a deployment's endpoint in the foreground."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("deployment", help="<team>/<deployment> or its id")
        parser.add_argument(
            "--mode", choices=["functional", "performance", "stress"], default="functional"
        )
        for name, kind in OPTIONS:
            parser.add_argument("--" + name.replace("_", "-"), dest=name, type=kind)
        parser.add_argument("--api", choices=["chat", "completions"])
        parser.add_argument("--workload-preset", dest="workload_preset")
        parser.add_argument("--no-stream", dest="stream", action="store_false", default=None)
        parser.add_argument(
            "--confirm-production",
            action="store_true",
            help="needed to load-test an active production deployment",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        deployment = deployment_named(options["deployment"])
        given = {
            key: options[key]
            for key in [name for name, _ in OPTIONS] + ["mode", "api", "workload_preset", "stream"]
            if options.get(key) is not None
        }
        given["confirm_production"] = options["confirm_production"]
        body = LoadTestRequestSerializer(data=given)
        if not body.is_valid():
            raise CommandError(json.dumps(body.errors))
        try:
            run = loadtest_create(
                deployment=deployment,
                params=loadtest_params(dict(body.validated_data)),
                confirm_production=body.validated_data["confirm_production"],
                actor=None,
            )
        except Conflict as exc:
            raise CommandError(str(exc)) from exc
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(
            f"load test {run.pk}: {run.mode} of {deployment.name} at {run.plan['base_url']}"
        )

        def progress(report: Any) -> None:
            shown = report.to_dict() if hasattr(report, "to_dict") else report
            self.stdout.write(f"  progress: {json.dumps(shown, default=str)}")

        done = loadtest_execute(run_id=run.pk, on_progress=progress)
        if done is None:
            raise CommandError("Another load test of this deployment holds its lock.")
        self.stdout.write(json.dumps(done.result, indent=2, default=str))
        self.stdout.write(
            f"status {done.status}, passed {done.passed}"
            + (
                f", capacity {done.capacity_rps_per_replica:.3f} req/s per replica"
                if done.capacity_rps_per_replica is not None
                else ""
            )
            + (f"; {done.error}" if done.error else "")
        )
        if not done.passed:
            raise CommandError(f"The {done.mode} load test did not pass.")
