"""``/api/v1/logs/ingest-tokens/``: the tokens log shippers push with. Team operators and
admins create them (the secret is in the creation's answer only) and revoke them."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.serializers import TeamTokenSerializer, issued_serializer
from apps.api.team_tokens import TeamTokenViewSet
from apps.logs.models import IngestToken
from apps.logs.services import ingest_token_create, ingest_token_delete, ingest_token_revoke


class IngestTokenSerializer(TeamTokenSerializer):
    class Meta(TeamTokenSerializer.Meta):
        model = IngestToken


IssuedIngestTokenSerializer = issued_serializer(IngestTokenSerializer)


class IngestTokenViewSet(TeamTokenViewSet):
    """Ingest tokens of the teams you belong to. The secret is shown once, at creation.
    `POST .../revoke/` revokes a token (pushes with it answer 401) and keeps it listed, with
    `revoked_at`; DELETE revokes it and removes it, so it answers 404 afterwards (the audit
    log keeps the record). As for API tokens."""

    model = IngestToken
    serializer_class = IngestTokenSerializer
    token_create = ingest_token_create
    token_revoke = ingest_token_revoke
    token_delete = ingest_token_delete

    @extend_schema(responses={201: IssuedIngestTokenSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    @extend_schema(request=None, responses={200: IngestTokenSerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        """Revoke the token now: the next push with it answers 401. It stays listed."""
        return self.revoke_answer(request)

    @extend_schema(
        description="Revoke the token and remove it: the next push with it answers 401 and "
        "the token answers 404 afterwards. Use `POST .../revoke/` to keep it listed."
    )
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().destroy(request, *args, **kwargs)
