from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from .models import ROLE_RANK, Membership, Role, Team

AnyUser = AbstractBaseUser | AnonymousUser


def team_roles_for_user(*, user: AnyUser) -> dict[int, str]:
    """Team id → role of ``user``. Cached on the user object for the request."""
    if not user.is_authenticated:
        return {}
    cached: dict[int, str] | None = getattr(user, "_team_roles_cache", None)
    if cached is None:
        # order_by(): Membership's default ordering would join teams and users to sort a
        # result that goes into a dict.
        cached = dict(
            Membership.objects.filter(user_id=user.pk).order_by().values_list("team_id", "role")
        )
        setattr(user, "_team_roles_cache", cached)  # noqa: B010 - per-request cache
    return cached


def user_has_role(*, user: AnyUser, team_id: int | None, role: str) -> bool:
    """Whether ``user`` holds at least ``role`` in the team. Superusers hold every role."""
    if not user.is_authenticated:
        return False
    if getattr(user, "is_superuser", False):
        return True
    if team_id is None:
        return False
    held = team_roles_for_user(user=user).get(team_id)
    return held is not None and ROLE_RANK[Role(held)] >= ROLE_RANK[Role(role)]


def team_ids_for_user(*, user: AnyUser, role: str = Role.VIEWER) -> list[int]:
    return [
        team_id
        for team_id, held in team_roles_for_user(user=user).items()
        if ROLE_RANK[Role(held)] >= ROLE_RANK[Role(role)]
    ]


def teams_visible_to(*, user: AnyUser) -> QuerySet[Team]:
    if getattr(user, "is_superuser", False):
        return Team.objects.all()
    return Team.objects.filter(id__in=team_ids_for_user(user=user))
