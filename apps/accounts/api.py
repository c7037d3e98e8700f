"""The accounts API: teams, memberships, the caller's API tokens (shown once, revocable) and
``/me``. Viewsets only check and route; tokens are issued and revoked in :mod:`.services`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.fields import empty
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from apps.api.viewsets import IdLookupMixin, TeamScopedViewSet
from apps.audit.models import AuditAction
from apps.audit.services import audited

from .models import ApiToken, Membership, Role, Team
from .serializers import (
    ApiTokenSerializer,
    IssuedApiTokenSerializer,
    MembershipSerializer,
    MeSerializer,
    TeamSerializer,
)
from .services import api_token_create, api_token_revoke


class TeamViewSet(TeamScopedViewSet):
    """Teams you are a member of. Superusers create and delete teams; team admins edit them."""

    queryset = Team.objects.all()
    serializer_class = TeamSerializer
    team_field = ""
    write_role = Role.ADMIN
    filterset_fields = ["slug"]
    ordering_fields = ["slug", "name", "created_at"]
    search_fields = ["slug", "name"]

    def _superuser_only(self) -> None:
        if not self.request.user.is_superuser:
            raise PermissionDenied("Only superusers create or delete teams.")

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        self._superuser_only()
        with (
            transaction.atomic(),
            audited(actor=self.request.user, action=AuditAction.CREATE) as change,
        ):
            change.instance = serializer.save()

    def perform_destroy(self, instance: Any) -> None:
        self._superuser_only()
        super().perform_destroy(instance)


class MembershipViewSet(TeamScopedViewSet):
    """Who is in which team with which role. Team admins manage their team's members."""

    queryset = Membership.objects.select_related("team", "user")
    serializer_class = MembershipSerializer
    write_role = Role.ADMIN
    filterset_fields = ["team", "role", "user__username"]
    ordering_fields = ["created_at", "role"]

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # The team and the caller's role in it are settled before the username is looked
        # up: otherwise a viewer, or a member of another team, could tell from the answer
        # (400 "no such user" or 403) whether a username exists.
        if isinstance(request.data, Mapping):
            team_field = MembershipSerializer(context=self.get_serializer_context()).fields["team"]
            try:
                team = team_field.run_validation(request.data.get("team", empty))
            except ValidationError as exc:
                raise ValidationError({"team": exc.detail}) from exc
            self._require_role(team.pk if team is not None else None)
        return super().create(request, *args, **kwargs)


class ApiTokenViewSet(
    IdLookupMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Your own API tokens. The secret is returned once, on creation. `POST .../revoke/`
    revokes a token and keeps it listed (with `revoked_at`); DELETE revokes it and removes
    it, so it answers 404 afterwards (the audit log keeps the record)."""

    serializer_class = ApiTokenSerializer
    permission_classes = [permissions.IsAuthenticated]
    filterset_fields = ["name"]
    ordering_fields = ["created_at", "name", "expires_at"]

    def get_queryset(self) -> QuerySet[ApiToken]:
        return ApiToken.objects.filter(user_id=self.request.user.pk or 0)

    @extend_schema(request=ApiTokenSerializer, responses={201: IssuedApiTokenSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = ApiTokenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with (
            transaction.atomic(),
            audited(actor=request.user, action=AuditAction.CREATE) as change,
        ):
            issued = api_token_create(
                user=request.user,  # type: ignore[arg-type]
                name=serializer.validated_data["name"],
                expires_at=serializer.validated_data.get("expires_at"),
            )
            change.instance = issued.token
        body = IssuedApiTokenSerializer(issued.token).data
        body["token"] = issued.secret
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: ApiTokenSerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        """Revoke the token now; it stops working on the next request."""
        token = self.get_object()
        self._revoke(token)
        return Response(ApiTokenSerializer(token).data)

    @extend_schema(
        description="Revoke the token and remove it: it stops working at once and answers "
        "404 afterwards. Use `POST .../revoke/` to keep it listed as revoked."
    )
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().destroy(request, *args, **kwargs)

    def perform_destroy(self, instance: ApiToken) -> None:
        with (
            transaction.atomic(),
            audited(actor=self.request.user, action=AuditAction.DELETE, instance=instance),
        ):
            # Revoked first, through the service, so that anything keyed on revocation
            # (cached authentications) sees it, then removed.
            api_token_revoke(token=instance)
            instance.delete()

    def _revoke(self, token: ApiToken) -> None:
        with (
            transaction.atomic(),
            audited(
                actor=self.request.user, action=AuditAction.ACTION, verb="revoke", instance=token
            ),
        ):
            api_token_revoke(token=token)


class MeView(APIView):
    """Who you are and your roles."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses=MeSerializer)
    def get(self, request: Request) -> Response:
        memberships = Membership.objects.filter(user_id=request.user.pk or 0).select_related("team")
        return Response(
            MeSerializer(
                {
                    "username": request.user.get_username(),
                    "is_superuser": request.user.is_superuser,
                    "memberships": [
                        {"team": m.team_id, "team_slug": m.team.slug, "role": m.role}
                        for m in memberships
                    ],
                }
            ).data
        )
