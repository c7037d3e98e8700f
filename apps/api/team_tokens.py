"""The REST API of a kind of team token (ingest tokens, gateway tokens): team operators and
admins create them (the secret is in the creation's answer only), revoke and delete them;
members of the team list them. A concrete viewset names its serializer (a
:class:`~apps.accounts.serializers.TeamTokenSerializer`) and services."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from django.db.models import Model, QuerySet
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.models import Role
from apps.accounts.selectors import team_scoped, user_has_role

from .viewsets import IdLookupMixin


class TeamTokenViewSet(
    IdLookupMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Tokens of the teams you belong to; operators and admins create, revoke and delete.
    ``POST .../revoke/`` keeps a revoked token listed; DELETE revokes and removes it, so it
    answers 404 afterwards (the audit log keeps the record)."""

    model: ClassVar[type[Model]]
    permission_classes = [permissions.IsAuthenticated]
    filterset_fields = ["team"]
    # (team=, name=, actor=) -> (token, secret); (token=, actor=) -> token; (token=, actor=)
    token_create: ClassVar[Callable[..., tuple[Any, str]]]
    token_revoke: ClassVar[Callable[..., Any]]
    token_delete: ClassVar[Callable[..., None]]

    def get_queryset(self) -> QuerySet[Any]:
        return team_scoped(
            self.model._default_manager.select_related("team").order_by("id"),
            user=self.request.user,
        )

    def _require_operator(self, team_id: int) -> None:
        if not user_has_role(user=self.request.user, team_id=team_id, role=Role.OPERATOR):
            raise PermissionDenied("This needs the operator or admin role in the team.")

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer_class = self.get_serializer_class()
        body = serializer_class(data=request.data, context={"request": request})
        body.is_valid(raise_exception=True)
        team = body.validated_data["team"]
        self._require_operator(team.pk)
        token, secret = type(self).token_create(
            team=team, name=body.validated_data["name"], actor=request.user
        )
        data = dict(serializer_class(token).data)
        data["token"] = secret
        return Response(data, status=status.HTTP_201_CREATED)

    def revoke_answer(self, request: Request) -> Response:
        """What the concrete viewset's ``revoke`` action (with its own schema) answers."""
        token = self.get_object()
        self._require_operator(token.team_id)
        type(self).token_revoke(token=token, actor=request.user)
        return Response(self.get_serializer_class()(token).data)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        token = self.get_object()
        self._require_operator(token.team_id)
        type(self).token_delete(token=token, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
