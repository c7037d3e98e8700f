"""``/api/v1/toggles/gateway-tokens/``: the read-only tokens gateways read toggles with
(OFREP, snapshots, change stream). Team operators and admins create them (the secret is in
the creation's answer only), revoke and delete them; team members list them."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.serializers import TeamTokenSerializer, issued_serializer
from apps.api.team_tokens import TeamTokenViewSet
from apps.toggles.models import GatewayToken
from apps.toggles.services import (
    gateway_token_create,
    gateway_token_delete,
    gateway_token_revoke,
)


class GatewayTokenSerializer(TeamTokenSerializer):
    class Meta(TeamTokenSerializer.Meta):
        model = GatewayToken


IssuedGatewayTokenSerializer = issued_serializer(GatewayTokenSerializer)


class GatewayTokenViewSet(TeamTokenViewSet):
    """Gateway tokens of the teams you belong to: each reads its team's toggles and
    nothing else. The secret is shown once, at creation. `POST .../revoke/` revokes a token
    (reads with it answer 401 from the next request on, in every server process) and keeps
    it listed with `revoked_at`; DELETE revokes and removes it (404 afterwards)."""

    model = GatewayToken
    serializer_class = GatewayTokenSerializer
    token_create = gateway_token_create
    token_revoke = gateway_token_revoke
    token_delete = gateway_token_delete

    @extend_schema(responses={201: IssuedGatewayTokenSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    @extend_schema(request=None, responses={200: GatewayTokenSerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        """Revoke the token now: the next read with it answers 401. It stays listed."""
        return self.revoke_answer(request)

    @extend_schema(
        description="Revoke the token and remove it: the next read with it answers 401 and "
        "the token answers 404 afterwards. Use `POST .../revoke/` to keep it listed."
    )
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().destroy(request, *args, **kwargs)
