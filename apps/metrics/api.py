"""The metrics API: latest observations per deployment, fleet summary, the metric catalogue,
chart series and custom PromQL queries. Collection and reads live in :mod:`.services` and
:mod:`.selectors`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.selectors import team_scoped
from apps.api.ids import parse_id
from apps.api.viewsets import IdLookupMixin, TeamScopedViewSet
from apps.inventory.models import Deployment

from .catalogue import catalogue_table
from .models import CustomQuery, DeploymentMetrics
from .selectors import fleet_summary, metric_series
from .serializers import (
    CatalogueRowSerializer,
    CustomQuerySerializer,
    DeploymentMetricsSerializer,
    FleetSummarySerializer,
    SeriesQuerySerializer,
    SeriesSerializer,
)


def visible_deployments(request: Request) -> QuerySet[Deployment]:
    return team_scoped(Deployment.objects.all(), user=request.user)


class DeploymentMetricsViewSet(IdLookupMixin, viewsets.ReadOnlyModelViewSet):
    """Latest observations per deployment (the row's id is the deployment id)."""

    serializer_class = DeploymentMetricsSerializer
    permission_classes = [permissions.IsAuthenticated]
    filterset_fields = ["status", "deployment__team", "deployment__framework"]
    ordering_fields = ["collected_at", "status"]
    lookup_field = "deployment"

    def get_queryset(self) -> QuerySet[DeploymentMetrics]:
        return DeploymentMetrics.objects.filter(
            deployment__in=visible_deployments(self.request)
        ).select_related("deployment")

    @extend_schema(
        parameters=[SeriesQuerySerializer],
        responses=SeriesSerializer,
    )
    @action(detail=True, methods=["get"])
    def series(self, request: Request, deployment: str | None = None) -> Response:
        """Downsampled time series of one signal, for charts."""
        dep = None
        deployment_id = parse_id(deployment)
        if deployment_id is not None:
            dep = visible_deployments(request).filter(pk=deployment_id).first()
        if dep is None:
            raise NotFound("No such deployment.")
        query = SeriesQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        since = query.validated_data.get("since") or timezone.now() - timedelta(hours=6)
        points = metric_series(
            deployment=dep,
            signal=query.validated_data["signal"],
            since=since,
            until=query.validated_data.get("until"),
        )
        return Response(
            SeriesSerializer(
                {
                    "deployment": dep.pk,
                    "signal": query.validated_data["signal"],
                    "resolution_s": settings.METRICS_SAMPLE_RESOLUTION_S,
                    "points": [{"ts": p.ts, "value": p.value} for p in points[:5000]],
                }
            ).data
        )


class FleetSummaryView(APIView):
    """Totals across the deployments you can see."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(
        responses=FleetSummarySerializer,
        parameters=[OpenApiParameter("team", int, description="Only this team's deployments.")],
    )
    def get(self, request: Request) -> Response:
        deployments = visible_deployments(request).exclude(status="retired")
        team = request.query_params.get("team")
        if team is not None:
            team_id = parse_id(team)
            if team_id is None:
                raise ValidationError({"team": ["Expected a team id (digits)."]})
            deployments = deployments.filter(team_id=team_id)
        return Response(FleetSummarySerializer(fleet_summary(deployments=deployments)).data)


class CatalogueView(APIView):
    """The PromQL behind each signal, per serving framework."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses=CatalogueRowSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(CatalogueRowSerializer(catalogue_table(), many=True).data)


class CustomQueryViewSet(TeamScopedViewSet):
    """A deployment's own PromQL for a signal, replacing the catalogue's query."""

    queryset = CustomQuery.objects.select_related("deployment")
    serializer_class = CustomQuerySerializer
    team_field = "deployment__team"
    filterset_fields = ["deployment", "signal"]
    ordering_fields = ["created_at"]

    def team_id_from_data(self, data: dict[str, Any]) -> int | None:
        deployment = data.get("deployment")
        return deployment.team_id if deployment is not None else None
