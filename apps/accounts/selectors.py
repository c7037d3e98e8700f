"""Reads about users, teams and roles: who holds which role where, and the one team
filter every API view, admin page and selector applies (:func:`team_scoped`)."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Aggregate, Model, OuterRef, Q, QuerySet, Subquery, TextField

from .models import ROLE_RANK, Membership, Role, Team

AnyUser = AbstractBaseUser | AnonymousUser
M = TypeVar("M", bound=Model)


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


def team_scoped(
    queryset: QuerySet[M],
    *,
    user: AnyUser,
    team_field: str = "team",
    role: str = Role.VIEWER,
    include_global: bool = False,
    user_field: str | None = None,
) -> QuerySet[M]:
    """The rows of ``queryset`` that ``user`` may see: those of the teams where they hold
    at least ``role``. Superusers see every row; anonymous users none.

    ``team_field`` is the path from the model to its team ("team", "deployment__team", or
    "" for the Team model itself). ``include_global`` admits rows that belong to no team
    (silences for every team); ``user_field`` admits rows whose ``user_field`` is the user
    (audit entries of their own actions), whatever their team.
    """
    if getattr(user, "is_superuser", False):
        return queryset
    lookup = "id__in" if team_field == "" else f"{team_field}__in"
    visible = Q(**{lookup: team_ids_for_user(user=user, role=role)})
    if include_global:
        visible |= Q(**{f"{team_field}__isnull": True})
    if user_field is not None and user.is_authenticated:
        visible |= Q(**{user_field: user.pk})
    return queryset.filter(visible)


def teams_visible_to(*, user: AnyUser) -> QuerySet[Team]:
    return team_scoped(Team.objects.all(), user=user, team_field="")
