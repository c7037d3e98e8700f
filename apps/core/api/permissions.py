from __future__ import annotations

from typing import Any

from rest_framework import permissions
from rest_framework.request import Request
from rest_framework.views import APIView

from apps.accounts.selectors import user_has_role


class TeamRolePermission(permissions.BasePermission):
    """Object-level check of the caller's role in the object's team.

    Reads need no check here: the viewset's queryset already hides other teams' objects
    (they answer 404). Writes need the viewset's ``write_role`` in the object's team.
    """

    message = "Your role in this team does not allow this change."

    def has_object_permission(self, request: Request, view: APIView, obj: Any) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        team_id = view.object_team_id(obj)  # type: ignore[attr-defined]
        required = view.write_role  # type: ignore[attr-defined]
        if user_has_role(user=request.user, team_id=team_id, role=required):
            return True
        self.message = f"This needs the {required} role in the object's team."
        return False
