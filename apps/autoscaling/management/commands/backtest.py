"""``manage.py backtest <deployment> --since 6h``: replay a policy over past metrics."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.serializers.json import DjangoJSONEncoder

from apps.autoscaling.backtest import (
    BacktestError,
    backtest_payload,
    backtest_policy,
    backtest_run,
)
from apps.core.digits import ascii_int
from apps.inventory.models import Deployment

_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([smhd])\Z")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str) -> float:
    match = _DURATION.match(text.strip())
    if not match:
        raise CommandError(f"{text!r} is not a duration (e.g. 90s, 30m, 6h, 2d)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _time(text: str) -> float:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{text!r} is not an ISO 8601 time (e.g. 2026-11-20T08:00Z)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


class Command(BaseCommand):
    help = (
        "Replay a deployment's scaling policy (or a variant) over a past range of its "
        "Prometheus metrics and compare with the replicas that actually ran."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "deployment", help="deployment id or name (namespace/name if ambiguous)"
        )
        when = parser.add_mutually_exclusive_group()
        when.add_argument("--since", default="6h", help="range ending now, e.g. 30m, 6h (6h)")
        when.add_argument("--start", help="ISO 8601 start (with --end, default now)")
        parser.add_argument("--end", help="ISO 8601 end")
        parser.add_argument(
            "--step", type=float, default=None, help="evaluation step in seconds (loop interval)"
        )
        parser.add_argument(
            "--policy",
            help="JSON object of policy fields to override, or @file.json",
        )
        parser.add_argument("--json", action="store_true", help="print the full result as JSON")
        parser.add_argument(
            "--timeline",
            choices=["full", "changes", "none"],
            default="changes",
            help="steps to print (changes)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        deployment = self._deployment(options["deployment"])
        end = _time(options["end"]) if options["end"] else time.time()
        start = _time(options["start"]) if options["start"] else end - _duration(options["since"])
        step = options["step"] or settings.AUTOSCALING_INTERVAL_S
        overrides = self._overrides(options["policy"])
        try:
            policy = backtest_policy(deployment=deployment, overrides=overrides)
            result = backtest_run(
                deployment=deployment, policy=policy, start=start, end=end, step_s=step
            )
        except BacktestError as exc:
            raise CommandError(str(exc)) from exc
        payload = backtest_payload(result, deployment.pk, options["timeline"])
        if options["json"]:
            self.stdout.write(json.dumps(payload, cls=DjangoJSONEncoder, indent=2))
            return
        self._print(deployment, payload)

    def _deployment(self, ref: str) -> Deployment:
        pk = ascii_int(ref)
        if pk is not None:
            found = Deployment.objects.filter(pk=pk).first()
            if found is None:
                raise CommandError(f"no deployment with id {ref}")
            return found
        namespace, _, name = ref.rpartition("/")
        matches = Deployment.objects.filter(name=name)
        if namespace:
            matches = matches.filter(target_namespace=namespace)
        found_list = list(matches[:2])
        if not found_list:
            raise CommandError(f"no deployment named {ref!r}")
        if len(found_list) > 1:
            raise CommandError(f"{ref!r} is ambiguous: use the id or namespace/name")
        return found_list[0]

    def _overrides(self, raw: str | None) -> dict[str, Any] | None:
        if not raw:
            return None
        if raw.startswith("@"):
            try:
                with open(raw[1:], encoding="utf-8") as fh:
                    raw = fh.read()
            except OSError as exc:
                raise CommandError(f"cannot read {raw[1:]}: {exc}") from exc
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise CommandError(f"--policy is not valid JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise CommandError("--policy must be a JSON object of policy fields")
        from apps.autoscaling.serializers import PolicyDraftSerializer

        draft = PolicyDraftSerializer(data=value)
        if not draft.is_valid():
            raise CommandError(f"--policy: {json.dumps(draft.errors)}")
        return dict(draft.validated_data)

    def _print(self, deployment: Deployment, payload: dict[str, Any]) -> None:
        s = payload["summary"]
        out = self.stdout
        out.write(
            f"Backtest of {deployment.name} from {payload['start']:%Y-%m-%d %H:%M:%S} to "
            f"{payload['end']:%Y-%m-%d %H:%M:%S} UTC, every {payload['step_s']:g} s "
            f"({s['steps']} steps; signals: {', '.join(s['signals']) or 'none'})"
        )
        out.write("")
        actual_h = s["actual_replica_hours"]
        out.write(f"{'':24}{'policy':>12}{'actual':>12}")
        out.write(f"{'scale actions':24}{s['actions']:>12}{s['actual_actions']:>12}")
        out.write(
            f"{'replica-hours':24}{s['replica_hours']:>12.2f}"
            + (f"{actual_h:>12.2f}" if actual_h is not None else f"{'unknown':>12}")
        )
        out.write(f"{'replicas min-max':24}{s['replicas_min']!s:>5}-{s['replicas_max']!s:<6}")
        if s["replica_hours_ratio"] is not None:
            out.write(
                f"policy / actual replica-hours: {s['replica_hours_ratio']:.2f} "
                f"(over the {s['actual_coverage']:.0%} of steps where the actual count is known)"
            )
        out.write(
            f"steps below actual: {s['steps_below_actual']}, above: {s['steps_above_actual']}"
        )
        out.write("rules: " + ", ".join(f"{k} x{v}" for k, v in s["rules"].items()))
        for note in s["notes"]:
            out.write(f"note: {note}")
        if payload["steps"]:
            out.write("")
            out.write(f"{'time (UTC)':20}{'policy':>7}{'ready':>6}{'actual':>7}  rule")
            for step in payload["steps"]:
                actual = "-" if step["actual"] is None else str(step["actual"])
                out.write(
                    f"{step['t']:%Y-%m-%d %H:%M:%S} {step['replicas']:>6}{step['ready']:>6}"
                    f"{actual:>7}  {step['rule']}"
                )
