"""The role check of the team-scoped viewsets: writes need the viewset's ``write_role`` in
the object's team (roles are read through :mod:`apps.accounts.selectors`)."""

from __future__ import annotations

from typing import Any

from rest_framework import permissions
from rest_framework.request import Request
from rest_framework.views import APIView

from apps.accounts.selectors import team_ids_for_user, user_has_role


class TeamRolePermission(permissions.BasePermission):
    """Object-level check of the caller's role in the object's team.

    Reads need no check here: the viewset's queryset already hides other teams' objects
    (they answer 404). Writes need the viewset's ``write_role`` in the object's team.
    """

    message = "Your role in this team does not allow this change."

    def has_permission(self, request: Request, view: APIView) -> bool:
        # A create is checked against the target team after validation (perform_create);
        # a caller with the write role in no team at all is refused before, so that
        # validation (DNS look-ups of URLs, kubeconfig parsing) is never done for them.
        if request.method != "POST" or getattr(request.user, "is_superuser", False):
            return True
        if getattr(view, "action", None) != "create":
            return True
        required = view.write_role  # type: ignore[attr-defined]
        if team_ids_for_user(user=request.user, role=required):
            return True
        self.message = f"This needs the {required} role in a team."
        return False

    def has_object_permission(self, request: Request, view: APIView, obj: Any) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        team_id = view.object_team_id(obj)  # type: ignore[attr-defined]
        required = view.write_role  # type: ignore[attr-defined]
        if user_has_role(user=request.user, team_id=team_id, role=required):
            return True
        self.message = f"This needs the {required} role in the object's team."
        return False
