"""The per-deployment lock: one writer at a time for a deployment's scale target (a scale
action, the fast path's evaluation, a standby reconcile)."""

from __future__ import annotations

from contextlib import AbstractContextManager

from django.conf import settings

from apps.core.locks import cache_lock

__all__ = ["deployment_lock"]


def deployment_lock(
    deployment_id: int, *, ttl_s: int | None = None
) -> AbstractContextManager[bool]:
    """The per-deployment lock in the shared cache: two workers never act on one
    deployment at once. It is also the lease of a running action: its TTL
    (``AUTOSCALING_ACTION_LEASE_S``) outlasts any apply, so a running action whose
    deployment lock is free has lost its worker."""
    ttl = settings.AUTOSCALING_ACTION_LEASE_S if ttl_s is None else ttl_s
    return cache_lock(f"autoscaling:lock:{deployment_id}", ttl_s=ttl)
