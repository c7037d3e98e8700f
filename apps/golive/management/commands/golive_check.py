"""``manage.py golive_check <team>/<deployment>``: run the go-live checks now and print
them; exits 1 when the gate to production is closed."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.golive.checks import CHECKS_BY_KEY
from apps.golive.selectors import checklist
from apps.golive.services import checks_run

from ._target import deployment_named

MARK = {"pass": "PASS", "fail": "FAIL", "unknown": "????"}


class Command(BaseCommand):
    help = "Run a deployment's go-live checks and print the checklist."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("deployment", help="<team>/<deployment> or its id")

    def handle(self, *args: Any, **options: Any) -> None:
        deployment = deployment_named(options["deployment"])
        checks_run(deployment=deployment)
        listed = checklist(deployment=deployment)
        out = self.stdout
        out.write(f"{deployment.team.slug}/{deployment.name}: stage {listed['stage']}")
        for row in listed["checks"]:
            required = "" if row.required else " (advisory)"
            title = CHECKS_BY_KEY[row.key].title
            out.write(f"  [{MARK[row.status]}] {row.key}{required}: {title}")
            out.write(f"         {row.message}")
            if row.evidence_url:
                out.write(f"         evidence: {row.evidence_url}")
        gate = listed["gate"]
        if gate["open"]:
            out.write("gate: open (every required check passes)")
            return
        failing = ", ".join(f"{f['key']} ({f['status']})" for f in gate["failing"])
        out.write(f"gate: closed; not passing: {failing}")
        sys.exit(1)
