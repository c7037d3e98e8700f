"""The one base viewset every team-owned resource uses: team scoping, role checks on
writes, transactions and audit entries, so concrete viewsets only declare what they serve."""

from __future__ import annotations

from typing import Any

from django.db import models, transaction
from django.db.models import QuerySet
from rest_framework import permissions, viewsets
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.serializers import BaseSerializer

from apps.accounts.models import Role
from apps.accounts.selectors import team_scoped, user_has_role
from apps.audit.models import AuditAction
from apps.audit.services import audited

from .ids import parse_id
from .permissions import TeamRolePermission
from .representation import fast_representation


class FastReadsMixin:
    """Lists and details render their rows through compiled steps (same output, a
    fraction of the time: see apps/api/representation.py)."""

    def get_serializer(self, *args: Any, **kwargs: Any) -> Any:
        serializer = super().get_serializer(*args, **kwargs)  # type: ignore[misc]
        if getattr(self, "action", None) in ("list", "retrieve"):
            fast_representation(serializer)
        return serializer


class IdLookupMixin:
    """Detail routes look objects up by a numeric id: anything else in the URL ("²", a
    number beyond any id, which SQLite cannot even bind) is 404 before any query."""

    def get_object(self) -> Any:
        key = self.lookup_url_kwarg or self.lookup_field  # type: ignore[attr-defined]
        if parse_id(self.kwargs.get(key)) is None:  # type: ignore[attr-defined]
            raise NotFound("Not found: ids are positive whole numbers.")
        return super().get_object()  # type: ignore[misc]


class TeamScopeMixin:
    """The queryset holds the rows the caller may see (:func:`team_scoped`): those of the
    teams where they hold ``read_role``, and every row for superusers."""

    # Path from the model to the Team it belongs to ("team", "deployment__team", or "" for
    # the Team model itself).
    team_field = "team"
    read_role: str = Role.VIEWER
    # Whether rows of no team (meant for every team) are visible to every member.
    include_global = False
    # A field naming a user: the rows naming the caller are visible too (their own actions).
    user_field: str | None = None

    def get_queryset(self) -> QuerySet[Any]:
        return team_scoped(
            super().get_queryset(),  # type: ignore[misc]
            user=self.request.user,  # type: ignore[attr-defined]
            team_field=self.team_field,
            role=self.read_role,
            include_global=self.include_global,
            user_field=self.user_field,
        )


class TeamScopedViewSet(TeamScopeMixin, IdLookupMixin, FastReadsMixin, viewsets.ModelViewSet):
    write_role: str = Role.OPERATOR
    permission_classes = [permissions.IsAuthenticated, TeamRolePermission]

    def object_team_id(self, obj: models.Model) -> int | None:
        if self.team_field == "":
            return obj.pk
        target: Any = obj
        *path, last = self.team_field.split("__")
        for part in path:
            target = getattr(target, part)
        return getattr(target, f"{last}_id")

    def team_id_from_data(self, data: dict[str, Any]) -> int | None:
        """The team a create or update would put the object in."""
        if self.team_field != "team":
            return None
        team = data.get("team")
        return team.pk if team is not None else None

    def _require_role(self, team_id: int | None) -> None:
        if not user_has_role(user=self.request.user, team_id=team_id, role=self.write_role):
            raise PermissionDenied(f"This needs the {self.write_role} role in the team.")

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        self._require_role(self.team_id_from_data(serializer.validated_data))
        with (
            transaction.atomic(),
            audited(actor=self.request.user, action=AuditAction.CREATE) as change,
        ):
            change.instance = serializer.save()

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
        new_team = self.team_id_from_data(serializer.validated_data)
        if new_team is not None:
            self._require_role(new_team)
        assert serializer.instance is not None
        with (
            transaction.atomic(),
            audited(
                actor=self.request.user, action=AuditAction.UPDATE, instance=serializer.instance
            ) as change,
        ):
            change.instance = serializer.save()

    def perform_destroy(self, instance: models.Model) -> None:
        with (
            transaction.atomic(),
            audited(actor=self.request.user, action=AuditAction.DELETE, instance=instance),
        ):
            instance.delete()


class TeamScopedReadOnlyViewSet(
    TeamScopeMixin, IdLookupMixin, FastReadsMixin, viewsets.ReadOnlyModelViewSet
):
    """Read-only records about a team's objects (decisions, actions, alerts, deliveries,
    events, audit entries): members see their teams' rows, superusers all."""

    permission_classes = [permissions.IsAuthenticated]
