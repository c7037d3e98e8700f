"""The SLO API: SLO definitions with their status, history and events, their Prometheus
rules and OpenSLO form, and OpenSLO import. Evaluation lives in :mod:`.services` and
:mod:`.burn`."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, OpenApiTypes, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from apps.accounts.selectors import user_has_role
from apps.api.viewsets import TeamScopedReadOnlyViewSet, TeamScopedViewSet
from apps.audit.models import AuditAction
from apps.audit.services import audited
from apps.inventory.models import Deployment

from .models import Slo, SloEvent, SloStatus
from .openslo import OpenSloError, export_slo, import_slo
from .rules import _counts_expr, prometheus_rule_manifest, rule_file, slo_rule_groups
from .serializers import (
    OpenSloImportSerializer,
    SloEventSerializer,
    SloSampleSerializer,
    SloSerializer,
    SloStatusSerializer,
)
from .services import slo_deployments

RULE_FORMATS = ("rulefile", "prometheusrule")


class _WithoutFormatOverride:
    """DRF's settings, except that ``?format=`` does not pick a renderer."""

    URL_FORMAT_OVERRIDE = None

    def __getattr__(self, name: str) -> Any:
        return getattr(api_settings, name)


class FormatIsNotARendererNegotiation(DefaultContentNegotiation):
    """For actions where ``?format=`` is the action's own parameter: DRF would otherwise
    look for a renderer named after its value and answer 404."""

    settings = _WithoutFormatOverride()  # type: ignore[assignment]


def _deployments_of(slo: Slo) -> list[Deployment]:
    team_deps = list(
        Deployment.objects.filter(team_id=slo.team_id)
        .exclude(status="retired")
        .select_related("cluster")
        .prefetch_related("custom_queries")
    )
    return slo_deployments(slo=slo, team_deployments=team_deps)


class SloViewSet(TeamScopedViewSet):
    """Service level objectives, their status, history, OpenSLO and Prometheus rules."""

    queryset = Slo.objects.select_related("team", "deployment", "status")
    serializer_class = SloSerializer
    filterset_fields = ["team", "deployment", "sli_kind", "window", "enabled", "status__state"]
    ordering_fields = ["name", "created_at"]
    search_fields = ["name", "description"]

    @extend_schema(responses=SloStatusSerializer)
    @action(detail=True, methods=["get"], url_path="status")
    def current_status(self, request: Request, pk: str | None = None) -> Response:
        """Latest evaluation: state, SLI, budget left, burn rates per window."""
        slo = self.get_object()
        try:
            return Response(SloStatusSerializer(slo.status).data)
        except SloStatus.DoesNotExist:
            return Response({"detail": "Not evaluated yet."}, status=status.HTTP_404_NOT_FOUND)

    # Not paginated on purpose: a chart wants the whole (bounded) series in time order in
    # one answer; limit/offset pages of a series that grows at its newest end would split
    # a chart across requests and shift between them.
    @extend_schema(
        responses=SloSampleSerializer(many=True),
        description="Status history for charts: the latest 1,440 points, oldest first, as "
        "one array (not paginated; `limit` and `offset` do not apply).",
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def history(self, request: Request, pk: str | None = None) -> Response:
        """Status history for charts (latest 1,440 points, oldest first, not paginated)."""
        slo = self.get_object()
        points = list(slo.history.order_by("-ts")[:1440])[::-1]
        return Response(SloSampleSerializer(points, many=True).data)

    # A YAML body is described by the schema of the document it holds (an object), not as a
    # string: clients, and schemathesis, parse it before validating.
    @extend_schema(
        responses={
            (200, "application/yaml"): OpenApiResponse(
                response=OpenApiTypes.OBJECT, description="An OpenSLO v1 `SLO` document."
            )
        }
    )
    @action(detail=True, methods=["get"])
    def openslo(self, request: Request, pk: str | None = None) -> HttpResponse:
        """The SLO as an OpenSLO v1 document."""
        slo = self.get_object()
        try:
            good, total = _counts_expr(slo, _deployments_of(slo), "$window")
        except ValueError as exc:
            raise ValidationError({"non_field_errors": [str(exc)]}) from exc
        return HttpResponse(
            export_slo(slo, good=good, total=total), content_type="application/yaml"
        )

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "format",
                str,
                enum=list(RULE_FORMATS),
                description="A Prometheus rule file (default), or a PrometheusRule manifest.",
            ),
            OpenApiParameter(
                "style",
                str,
                enum=list(RULE_FORMATS),
                deprecated=True,
                description="Former name of `format`, still accepted; `format` wins.",
            ),
            OpenApiParameter("namespace", str, description="Manifest namespace (monitoring)."),
        ],
        responses={
            (200, "application/yaml"): OpenApiResponse(
                response=OpenApiTypes.OBJECT,
                description="A rule file (`groups:`) or a `PrometheusRule` manifest.",
            )
        },
    )
    @action(
        detail=True,
        methods=["get"],
        url_path="prometheus-rules",
        content_negotiation_class=FormatIsNotARendererNegotiation,
    )
    def prometheus_rules(self, request: Request, pk: str | None = None) -> HttpResponse:
        """Recording and alerting rules equivalent to the control plane's evaluation."""
        slo = self.get_object()
        param = "format" if "format" in request.query_params else "style"
        fmt = request.query_params.get(param, "rulefile")
        if fmt not in RULE_FORMATS:
            raise ValidationError({param: [f"Use {' or '.join(RULE_FORMATS)}."]})
        try:
            groups = slo_rule_groups(
                slo, _deployments_of(slo), compression=settings.SLO_WINDOW_COMPRESSION
            )
        except ValueError as exc:
            raise ValidationError({"non_field_errors": [str(exc)]}) from exc
        if fmt == "rulefile":
            body = rule_file(groups)
        else:
            body = prometheus_rule_manifest(
                groups,
                name=f"slo-{slo.team.slug}-{slo.name}",
                namespace=request.query_params.get("namespace", "monitoring"),
            )
        return HttpResponse(body, content_type="application/yaml")

    @extend_schema(request=OpenSloImportSerializer, responses={201: SloSerializer})
    @action(detail=False, methods=["post"], url_path="import-openslo")
    def import_openslo(self, request: Request) -> Response:
        """Create an SLO from an OpenSLO v1 document (ratio or threshold indicator)."""
        payload = OpenSloImportSerializer(data=request.data, context={"request": request})
        payload.is_valid(raise_exception=True)
        team = payload.validated_data["team"]
        if not user_has_role(user=request.user, team_id=team.pk, role=self.write_role):
            raise PermissionDenied(f"This needs the {self.write_role} role in the team.")
        try:
            imported = import_slo(payload.validated_data["document"])
        except OpenSloError as exc:
            raise ValidationError({"document": [f"Invalid OpenSLO: {exc}."]}) from exc
        data: dict[str, Any] = {**imported.fields, "team": team.pk}
        deployment = payload.validated_data.get("deployment")
        if deployment is None and imported.deployment_name and not data.get("deployment_labels"):
            deployment = Deployment.objects.filter(team=team, name=imported.deployment_name).first()
            if deployment is None:
                raise ValidationError(
                    {
                        "deployment": [
                            f"The document names deployment {imported.deployment_name!r}, "
                            "which this team does not have; pass deployment explicitly."
                        ]
                    }
                )
        if deployment is not None:
            data["deployment"] = deployment.pk
        serializer = SloSerializer(data=data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        with (
            transaction.atomic(),
            audited(actor=request.user, action=AuditAction.CREATE, verb="import-openslo") as change,
        ):
            slo = change.instance = serializer.save()
        return Response(
            SloSerializer(slo, context={"request": request}).data, status=status.HTTP_201_CREATED
        )


class SloEventViewSet(TeamScopedReadOnlyViewSet):
    """SLO state changes (ok → page, page → ok, ...), newest first."""

    queryset = SloEvent.objects.select_related("slo__deployment")
    serializer_class = SloEventSerializer
    team_field = "slo__team"
    filterset_fields = ["slo", "to_state", "from_state"]
    ordering_fields = ["at"]
