"""The balancing API: a policy per deployment, the gateways fronting deployments, and
the gateway agent's two calls: fetch the configuration (ETag, 304) and report what it
applied. Changes go through :mod:`.services` (validated before anything is rendered,
audited)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import authentication, permissions, serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from apps.accounts.authentication import ApiTokenAuthentication
from apps.accounts.models import Role
from apps.accounts.selectors import team_scoped
from apps.api.viewsets import TeamScopedViewSet
from apps.toggles.gateway import GatewayTokenAuthentication, GatewayTokenScheme
from apps.toggles.models import GatewayToken
from apps.toggles.services import GATEWAY_TOKEN_PREFIX

from .models import BalancingPolicy, Gateway, GatewayReport
from .selectors import gateway_config, gateways_listed
from .serializers import (
    BalancingPolicySerializer,
    GatewayReportSerializer,
    GatewaySerializer,
    ReportInSerializer,
)
from .services import (
    POLICY_FIELDS,
    gateway_create,
    gateway_delete,
    gateway_report_record,
    gateway_seen_touch,
    gateway_update,
    policy_create,
    policy_delete,
    policy_update,
)


class BalancingPolicyViewSet(TeamScopedViewSet):
    """How each deployment's gateway upstream spreads requests, retries and limits them.
    An invalid policy is refused (400, per field) before anything is rendered."""

    queryset = BalancingPolicy.objects.select_related("deployment")
    serializer_class = BalancingPolicySerializer
    team_field = "deployment__team"
    ordering_fields = ["updated_at", "created_at"]
    filterset_fields = ["deployment", "algorithm"]

    def team_id_from_data(self, data: dict[str, Any]) -> int | None:
        deployment = data.get("deployment")
        return deployment.team_id if deployment is not None else None

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        data = dict(serializer.validated_data)
        self._require_role(data["deployment"].team_id)
        fields = {name: data[name] for name in POLICY_FIELDS if name in data}
        serializer.instance = policy_create(
            deployment=data["deployment"], actor=self.request.user, **fields
        )

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
        assert isinstance(serializer.instance, BalancingPolicy)
        data = serializer.validated_data
        changes = {name: data[name] for name in POLICY_FIELDS if name in data}
        serializer.instance = policy_update(
            policy=serializer.instance, actor=self.request.user, **changes
        )

    def perform_destroy(self, instance: BalancingPolicy) -> None:  # type: ignore[override]
        policy_delete(policy=instance, actor=self.request.user)


class GatewayViewSet(TeamScopedViewSet):
    """nginx gateways of a team: the deployments each fronts (in order) and its port,
    with the last report of its agent."""

    queryset = Gateway.objects.all()
    serializer_class = GatewaySerializer
    ordering_fields = ["name", "created_at"]
    filterset_fields = ["team", "name"]

    def get_queryset(self) -> QuerySet[Gateway]:
        return gateways_listed(super().get_queryset())

    def paginate_queryset(self, queryset: QuerySet[Any]) -> list[Any] | None:
        page = super().paginate_queryset(queryset)
        rows = page if page is not None else list(queryset)
        ids = [g.last_report_id for g in rows if getattr(g, "last_report_id", None)]
        # One query for the last reports of the whole page.
        self._last_reports = GatewayReport.objects.in_bulk(ids)
        return page

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        if hasattr(self, "_last_reports"):
            context["last_reports"] = self._last_reports
        return context

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        data = dict(serializer.validated_data)
        self._require_role(data["team"].pk)
        serializer.instance = gateway_create(
            team=data["team"],
            name=data["name"],
            listen_port=data.get("listen_port", 8080),
            listen_address=data.get("listen_address"),
            deployments=data.get("deployment_ids", []),
            actor=self.request.user,
        )

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
        assert isinstance(serializer.instance, Gateway)
        data = serializer.validated_data
        serializer.instance = gateway_update(
            gateway=serializer.instance,
            actor=self.request.user,
            name=data.get("name"),
            listen_port=data.get("listen_port"),
            # Present and null clears it (every address); absent leaves it.
            listen_address=(data["listen_address"] or "") if "listen_address" in data else None,
            deployments=data.get("deployment_ids"),
        )

    def perform_destroy(self, instance: Gateway) -> None:  # type: ignore[override]
        gateway_delete(gateway=instance, actor=self.request.user)


class ConfigInvalid(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = (
        "The rendered configuration failed nginx -t; the gateway keeps its last good one."
    )


class AgentGatewayTokenAuthentication(GatewayTokenAuthentication):
    """The team's gateway token (``Authorization: Bearer lcpg_...``), what a gateway host
    holds; any other credential is left to the API token and session authentications."""

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        parts = authentication.get_authorization_header(request).split()
        if len(parts) != 2 or parts[0].lower() != b"bearer":
            return None
        if not parts[1].startswith(GATEWAY_TOKEN_PREFIX.encode()):
            return None
        return super().authenticate(request)


class AgentGatewayTokenScheme(GatewayTokenScheme):
    target_class = "apps.balancing.api.AgentGatewayTokenAuthentication"


class GatewayTokenOrMember(permissions.BasePermission):
    """A gateway token of the team, or a user (API token, session) of one of the teams."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        if isinstance(request.auth, GatewayToken):
            return True
        return bool(request.user and request.user.is_authenticated)


AGENT_AUTHENTICATION = [
    AgentGatewayTokenAuthentication,
    ApiTokenAuthentication,
    SessionAuthentication,
]


def _gateway_for(request: Request, name: str, *, role: str) -> Gateway:
    """The caller's team's gateway of that name, the team always from the caller's
    token: a gateway token's own team, else the teams of the user (with ``role``).
    Another team's gateway is a 404 like a missing one."""
    if isinstance(request.auth, GatewayToken):
        rows = Gateway.objects.filter(team_id=request.auth.team_id)
    else:
        rows = team_scoped(Gateway.objects.all(), user=request.user, team_field="team", role=role)
    return get_object_or_404(rows, name=name)


def _etag_matches(header: str, etag: str) -> bool:
    candidates = [tag.strip() for tag in header.split(",")]
    return "*" in candidates or etag in candidates


CONFIG_ERROR = inline_serializer(
    name="GatewayConfigError",
    fields={
        "detail": serializers.CharField(help_text="Why no configuration is served."),
        "version": serializers.CharField(
            help_text="sha256 of the refused text (empty when nothing could be rendered)."
        ),
        "errors": serializers.ListField(
            child=serializers.CharField(),
            help_text="nginx -t's messages, or what could not be read.",
        ),
    },
)


class GatewayConfigView(APIView):
    """The gateway's nginx configuration (an ``http``-level include) as text, with a strong
    ETag (its sha256); ``If-None-Match`` with the current ETag answers 304. A
    configuration that fails ``nginx -t`` is never served (503 with nginx's errors).
    Each 200 or 304 records that the gateway was seen (its ``last_seen_at``).

    Callers: the team's gateway token (what the gateway agent holds) or an API token of a
    member of the team."""

    authentication_classes = AGENT_AUTHENTICATION
    permission_classes = [GatewayTokenOrMember]

    @extend_schema(
        responses={
            (200, "text/plain"): OpenApiTypes.STR,
            304: OpenApiResponse(description="Unchanged since the ETag in If-None-Match."),
            503: CONFIG_ERROR,
        }
    )
    def get(self, request: Request, name: str) -> HttpResponse | Response:
        gateway = _gateway_for(request, name, role=Role.VIEWER)
        rendered = gateway_config(gateway=gateway)
        if not rendered.ok:
            return Response(
                {
                    "detail": ConfigInvalid.default_detail,
                    "version": rendered.sha256,
                    "errors": rendered.errors,
                },
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
            )
        gateway_seen_touch(gateway=gateway)
        etag = f'"{rendered.sha256}"'
        if _etag_matches(request.headers.get("If-None-Match", ""), etag):
            response = HttpResponse(status=304)
        else:
            response = HttpResponse(rendered.text, content_type="text/plain; charset=utf-8")
        response["ETag"] = etag
        response["Cache-Control"] = "no-cache"
        return response


class GatewayReportView(APIView):
    """The agent says which version it applied, when, and whether nginx took it. Callers:
    the team's gateway token or an API token of a member of the team."""

    authentication_classes = AGENT_AUTHENTICATION
    permission_classes = [GatewayTokenOrMember]

    @extend_schema(request=ReportInSerializer, responses={201: GatewayReportSerializer})
    def post(self, request: Request, name: str) -> Response:
        gateway = _gateway_for(request, name, role=Role.VIEWER)
        body = ReportInSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        report = gateway_report_record(gateway=gateway, **body.validated_data)
        return Response(GatewayReportSerializer(report).data, status=status.HTTP_201_CREATED)
