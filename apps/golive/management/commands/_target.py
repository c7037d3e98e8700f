"""How the go-live commands name a deployment: ``<team slug>/<deployment name>`` or its id."""

from __future__ import annotations

from django.core.management.base import CommandError

from apps.core.digits import ascii_int
from apps.inventory.models import Deployment


def deployment_named(text: str) -> Deployment:
    queryset = Deployment.objects.select_related("team", "model", "cluster")
    pk = ascii_int(text)
    if pk is not None:
        found = queryset.filter(pk=pk).first()
    elif "/" in text:
        team, _, name = text.partition("/")
        found = queryset.filter(team__slug=team, name=name).first()
    else:
        raise CommandError(f"Name the deployment as <team>/<deployment> or by id, not {text!r}.")
    if found is None:
        raise CommandError(f"No deployment {text!r}.")
    return found
