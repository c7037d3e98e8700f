from __future__ import annotations

from django.utils import timezone

from apps.golive.checks import CHECKS
from apps.golive.models import CheckResult
from apps.inventory.models import Deployment


def checks_recorded(deployment: Deployment, status: str = "pass", **overrides: str) -> None:
    """A result for every go-live check of ``deployment``: ``status``, except the keys
    named in ``overrides`` (dots written as double underscores: model__artifacts="fail")."""
    given = {key.replace("__", "."): value for key, value in overrides.items()}
    now = timezone.now()
    CheckResult.objects.bulk_create(
        CheckResult(
            deployment=deployment,
            key=spec.key,
            group=spec.group,
            status=given.get(spec.key, status),
            required=spec.required,
            message="recorded by the test",
            checked_at=now,
        )
        for spec in CHECKS
    )
