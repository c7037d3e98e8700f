"""``/api/v1/logs/ingest-tokens/``: the tokens log shippers push with. Team operators and
admins create them (the secret is in the creation's answer only) and revoke them."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.models import Role
from apps.accounts.selectors import team_scoped, user_has_role
from apps.accounts.serializers import owning_team_field
from apps.api.viewsets import IdLookupMixin
from apps.logs.models import IngestToken
from apps.logs.services import ingest_token_create, ingest_token_delete, ingest_token_revoke


class IngestTokenSerializer(serializers.ModelSerializer[IngestToken]):
    id = serializers.IntegerField(read_only=True, help_text="Token id.")
    team = owning_team_field()

    class Meta:
        model = IngestToken
        fields = ["id", "team", "name", "token_prefix", "created_at", "last_used_at", "revoked_at"]
        read_only_fields = ["token_prefix", "created_at", "last_used_at", "revoked_at"]


class IssuedIngestTokenSerializer(IngestTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="Shown once: store it now.")

    class Meta(IngestTokenSerializer.Meta):
        fields = [*IngestTokenSerializer.Meta.fields, "token"]


class IngestTokenViewSet(
    IdLookupMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Ingest tokens of the teams you belong to. The secret is shown once, at creation.
    `POST .../revoke/` revokes a token (pushes with it answer 401) and keeps it listed, with
    `revoked_at`; DELETE revokes it and removes it, so it answers 404 afterwards (the audit
    log keeps the record). As for API tokens."""

    serializer_class = IngestTokenSerializer
    permission_classes = [permissions.IsAuthenticated]
    filterset_fields = ["team"]

    def get_queryset(self) -> QuerySet[IngestToken]:
        return team_scoped(
            IngestToken.objects.select_related("team").order_by("id"), user=self.request.user
        )

    def _require_operator(self, team_id: int) -> None:
        if not user_has_role(user=self.request.user, team_id=team_id, role=Role.OPERATOR):
            raise PermissionDenied("This needs the operator or admin role in the team.")

    @extend_schema(responses={201: IssuedIngestTokenSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = IngestTokenSerializer(data=request.data, context={"request": request})
        body.is_valid(raise_exception=True)
        team = body.validated_data["team"]
        self._require_operator(team.pk)
        token, secret = ingest_token_create(
            team=team, name=body.validated_data["name"], actor=request.user
        )
        data = dict(IngestTokenSerializer(token).data)
        data["token"] = secret
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: IngestTokenSerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        """Revoke the token now: the next push with it answers 401. It stays listed."""
        token = self.get_object()
        self._require_operator(token.team_id)
        ingest_token_revoke(token=token, actor=request.user)
        return Response(IngestTokenSerializer(token).data)

    @extend_schema(
        description="Revoke the token and remove it: the next push with it answers 401 and "
        "the token answers 404 afterwards. Use `POST .../revoke/` to keep it listed."
    )
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        token = self.get_object()
        self._require_operator(token.team_id)
        ingest_token_delete(token=token, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
