"""The inventory API: clusters (with their credentials), models and deployments, and each
deployment's readiness. Reads are in :mod:`.selectors`, changes beyond plain CRUD in
:mod:`.services`."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.selectors import user_has_role
from apps.api.viewsets import TeamScopedViewSet

from .filters import ClusterFilter, DeploymentFilter, LLMModelFilter
from .models import Cluster, Deployment, LLMModel
from .selectors import deployment_readiness
from .serializers import (
    ClusterSerializer,
    DeploymentSerializer,
    LLMModelSerializer,
    ReadinessSerializer,
)
from .services import deployment_readiness_update


class ClusterViewSet(TeamScopedViewSet):
    """Kubernetes clusters and AWS accounts the team scales in."""

    queryset = Cluster.objects.select_related("team")
    serializer_class = ClusterSerializer
    filterset_class = ClusterFilter
    ordering_fields = ["name", "created_at", "kind"]
    search_fields = ["name", "description"]


class LLMModelViewSet(TeamScopedViewSet):
    """Model artefacts (name, version, size, checksum)."""

    queryset = LLMModel.objects.select_related("team")
    serializer_class = LLMModelSerializer
    filterset_class = LLMModelFilter
    ordering_fields = ["name", "version", "created_at", "parameter_count"]
    search_fields = ["name", "version", "description"]


class DeploymentViewSet(TeamScopedViewSet):
    """Deployments: what is served where, and within which replica bounds it may scale."""

    # The team, model and cluster are rendered as ids, which the row itself holds.
    queryset = Deployment.objects.select_related("readiness")
    serializer_class = DeploymentSerializer
    filterset_class = DeploymentFilter
    ordering_fields = ["name", "created_at", "updated_at", "status", "max_replicas"]
    search_fields = ["name", "description", "model__name"]

    def get_queryset(self) -> QuerySet[Deployment]:
        return super().get_queryset().select_related("readiness__updated_by")

    @extend_schema(responses=ReadinessSerializer, request=None)
    @action(detail=True, methods=["get"], url_path="readiness")
    def readiness(self, request: Request, pk: str | None = None) -> Response:
        """The go-live checklist: ready, or not ready with what is missing."""
        deployment = self.get_object()
        return Response(ReadinessSerializer(deployment_readiness(deployment=deployment)).data)

    @extend_schema(request=ReadinessSerializer, responses=ReadinessSerializer)
    @readiness.mapping.patch
    def update_readiness(self, request: Request, pk: str | None = None) -> Response:
        """Check or uncheck items of the checklist (operator role)."""
        deployment = self.get_object()
        if not user_has_role(user=request.user, team_id=deployment.team_id, role=self.write_role):
            raise PermissionDenied(f"This needs the {self.write_role} role in the team.")
        serializer = ReadinessSerializer(
            deployment_readiness(deployment=deployment), data=request.data, partial=True
        )
        serializer.is_valid(raise_exception=True)
        readiness = deployment_readiness_update(
            deployment=deployment, actor=request.user, data=dict(serializer.validated_data)
        )
        return Response(ReadinessSerializer(readiness).data)
