from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Aggregate, OuterRef, QuerySet, Subquery, TextField

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


class _PairsJson(Aggregate):
    """The aggregated rows' (a, b) pairs as JSON text: ``[[a, b], ...]``."""

    function = "JSON_AGG"
    template = "CAST(JSON_AGG(JSON_BUILD_ARRAY(%(expressions)s)) AS TEXT)"
    output_field = TextField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler, connection, template="JSON_GROUP_ARRAY(JSON_ARRAY(%(expressions)s))"
        )


def team_roles_subquery(*, user_field: str) -> Subquery:
    """For a query on another model: the team roles of the user in ``user_field``, as JSON
    text (NULL without memberships), so that they come with that query."""
    return Subquery(
        Membership.objects.filter(user_id=OuterRef(user_field))
        .order_by()
        .values("user_id")
        .annotate(pairs=_PairsJson("team_id", "role"))
        .values("pairs")[:1]
    )


def team_roles_prime(*, user: AbstractBaseUser, pairs_json: str | None) -> None:
    """Caches what team_roles_subquery() fetched as the user's roles for the request."""
    pairs = json.loads(pairs_json) if pairs_json else []
    setattr(user, "_team_roles_cache", {int(team): role for team, role in pairs})  # noqa: B010


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
