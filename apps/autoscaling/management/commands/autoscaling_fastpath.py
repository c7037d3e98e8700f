"""``manage.py autoscaling_fastpath``: evaluate demand-sized deployments on bursts, between
scrapes, from the replicas' own metrics (apps.metrics.fastpath)."""

from __future__ import annotations

import time
from typing import Any

import structlog
from django.core.management.base import BaseCommand, CommandParser

from apps.autoscaling.actuators.factory import actuator_for
from apps.autoscaling.evaluation import fast_path_evaluate
from apps.autoscaling.selectors import autoscaled_deployment_ids
from apps.autoscaling.tasks import execute_action
from apps.balancing.members import Member
from apps.balancing.membership import MembershipError, members_of
from apps.core.locks import cache_lock
from apps.inventory.models import Deployment
from apps.metrics.fastpath import FRAMEWORK_METRICS, FastReader

logger = structlog.get_logger("controlplane.autoscaling")


class Command(BaseCommand):
    help = (
        "Every --interval seconds, read the serving replicas' own /metrics of each deployment "
        "whose policy sizes from demand, and evaluate at once when they ask for more replicas "
        "than are set (the regular loop decides everything else). Members are discovered "
        "again every --members-every seconds."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--interval", type=float, default=2.0, help="seconds (2)")
        parser.add_argument("--members-every", type=float, default=15.0, help="seconds (15)")
        parser.add_argument(
            "--iterations", type=int, default=0, help="stop after this many rounds (0: never)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        interval = max(0.5, float(options["interval"]))
        refresh = max(interval, float(options["members_every"]))
        members: dict[int, tuple[float, tuple[Member, ...]]] = {}
        # The last discovery error per deployment: a failed discovery is tried again at the
        # next refresh, not every round, and logged when its error changes.
        failing: dict[int, str] = {}
        rounds = 0
        while True:
            started = time.monotonic()
            for pk in autoscaled_deployment_ids():
                deployment = (
                    Deployment.objects.select_related("cluster")
                    .defer("cluster__credentials")
                    .filter(pk=pk)
                    .first()
                )
                if deployment is None or deployment.framework not in FRAMEWORK_METRICS:
                    continue
                seen = members.get(pk)
                if seen is None or started - seen[0] >= refresh:
                    try:
                        found = tuple(members_of(deployment=deployment).serving)
                    except MembershipError as exc:
                        if failing.get(pk) != exc.message:
                            logger.warning("fast-path-members", deployment=pk, error=exc.message)
                        failing[pk] = exc.message
                        members[pk] = (started, ())
                        continue
                    failing.pop(pk, None)
                    members[pk] = seen = (started, found)
                if pk in failing:
                    continue  # until the next refresh finds its members
                with cache_lock(f"autoscaling:evaluate:{pk}", ttl_s=30) as acquired:
                    if acquired:
                        fast_path_evaluate(
                            deployment=deployment,
                            reader=FastReader(deployment.framework),
                            members=seen[1],
                            actuator_factory=actuator_for,
                            enqueue=execute_action.delay,
                        )
            rounds += 1
            if options["iterations"] and rounds >= options["iterations"]:
                return
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
