from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.accounts.models import Team
from apps.core.api.serializers import ModelCleanMixin, NameFieldsMixin, TeamScopedRelatedField

from .label_matchers import MatcherError, render_selector, validate_selector
from .models import Cluster, Deployment, DeploymentReadiness, LLMModel
from .selectors import deployment_readiness


def _team_field() -> TeamScopedRelatedField:
    return TeamScopedRelatedField(
        queryset=Team.objects.all(), team_field="", help_text="Owning team (id)."
    )


class ClusterSerializer(ModelCleanMixin, serializers.ModelSerializer[Cluster]):
    team = _team_field()

    class Meta:
        model = Cluster
        fields = [
            "id",
            "team",
            "name",
            "kind",
            "description",
            "in_cluster",
            "kubeconfig_path",
            "kube_context",
            "default_namespace",
            "aws_region",
            "aws_account_id",
            "aws_credentials_source",
            "aws_profile",
            "aws_role_arn",
            "prometheus_url",
            "labels",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]
        extra_kwargs = {"id": {"help_text": "Cluster id."}}


class LLMModelSerializer(NameFieldsMixin, ModelCleanMixin, serializers.ModelSerializer[LLMModel]):
    name_fields = ()
    slash_name_fields = ("name", "version")

    team = _team_field()

    class Meta:
        model = LLMModel
        fields = [
            "id",
            "team",
            "name",
            "version",
            "parameter_count",
            "checksum",
            "source_uri",
            "description",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]
        extra_kwargs = {"id": {"help_text": "Model id."}}


class ReadinessSerializer(serializers.ModelSerializer[DeploymentReadiness]):
    ready = serializers.BooleanField(read_only=True, help_text="True when every item is checked.")
    missing = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        help_text="Checklist items not yet checked.",
    )
    updated_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username",
        read_only=True,
        allow_null=True,
        help_text="Who last changed the checklist; null until someone does.",
    )
    updated_at = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text="When the checklist last changed; null until it does.",
    )

    class Meta:
        model = DeploymentReadiness
        fields = [
            "ready",
            "missing",
            *DeploymentReadiness.ITEMS,
            "notes",
            "updated_at",
            "updated_by",
        ]


class DeploymentSerializer(ModelCleanMixin, serializers.ModelSerializer[Deployment]):
    team = _team_field()
    model = TeamScopedRelatedField(
        queryset=LLMModel.objects.all(), help_text="The model served (id, same team)."
    )
    cluster = TeamScopedRelatedField(
        queryset=Cluster.objects.all(),
        allow_null=True,
        required=False,
        help_text="Cluster it runs in (id, same team); null for simulated targets.",
    )
    readiness = serializers.SerializerMethodField(help_text="Go-live checklist summary.")

    class Meta:
        model = Deployment
        fields = [
            "id",
            "team",
            "name",
            "description",
            "model",
            "framework",
            "cluster",
            "target_kind",
            "target_namespace",
            "target_name",
            "gpu_type",
            "gpus_per_replica",
            "min_replicas",
            "max_replicas",
            "endpoint_url",
            "prometheus_selector",
            "labels",
            "status",
            "readiness",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]
        extra_kwargs = {"id": {"help_text": "Deployment id."}}

    def validate_prometheus_selector(self, value: str) -> str:
        try:
            rendered = render_selector(validate_selector(value))
        except MatcherError as exc:
            raise serializers.ValidationError(f"Invalid label matchers: {exc}.") from exc
        # Rendering adds spaces and escapes, so the stored form can outgrow the input.
        limit = Deployment._meta.get_field("prometheus_selector").max_length
        if limit is not None and len(rendered) > limit:
            raise serializers.ValidationError(
                f"The selector is {len(rendered)} characters once normalised; at most {limit}."
            )
        return rendered

    @extend_schema_field(ReadinessSerializer)
    def get_readiness(self, obj: Deployment) -> dict[str, Any]:
        return ReadinessSerializer(deployment_readiness(deployment=obj)).data
