"""Request and response shapes of the SLO API: SLOs with their status, samples, events and
the OpenSLO import body."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.accounts.serializers import owning_team_field
from apps.api.serializers import ModelCleanMixin, TeamScopedRelatedField
from apps.inventory.models import Deployment
from apps.logs.links import LogsLinkField

from .models import SLO_STATUS_FIELDS, Slo, SloEvent, SloStatus, SloStatusSample


class SloStatusSerializer(serializers.ModelSerializer[SloStatus]):
    class Meta:
        model = SloStatus
        fields = SLO_STATUS_FIELDS
        read_only_fields = fields


class SloSerializer(ModelCleanMixin, serializers.ModelSerializer[Slo]):
    team = owning_team_field()
    deployment = TeamScopedRelatedField(
        queryset=Deployment.objects.all(),
        allow_null=True,
        required=False,
        help_text="Deployment (id) it covers; null to select deployments by labels.",
    )
    status = serializers.SerializerMethodField(help_text="Latest evaluation, if any.")

    class Meta:
        model = Slo
        fields = [
            "id",
            "team",
            "name",
            "description",
            "deployment",
            "deployment_labels",
            "sli_kind",
            "latency_metric",
            "threshold_seconds",
            "good_query",
            "total_query",
            "objective_percent",
            "window",
            "min_requests",
            "enabled",
            "status",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]
        extra_kwargs = {"id": {"help_text": "SLO id."}}

    @extend_schema_field(SloStatusSerializer(allow_null=True))
    def get_status(self, obj: Slo) -> dict[str, Any] | None:
        try:
            return SloStatusSerializer(obj.status).data
        except SloStatus.DoesNotExist:
            return None


class SloSampleSerializer(serializers.ModelSerializer[SloStatusSample]):
    class Meta:
        model = SloStatusSample
        fields = ["ts", "state", "sli", "budget_remaining", "burn_rates"]
        read_only_fields = fields
        extra_kwargs = {
            "ts": {"help_text": "Evaluation step the point stands for."},
            "state": {"help_text": "SLO state at that step."},
            "sli": {"help_text": "SLI over the period (0-1); null without traffic."},
            "budget_remaining": {
                "help_text": "Error budget left (1 = untouched, 0 = spent, below 0 = overspent)."
            },
            "burn_rates": {"help_text": "Burn rate per window name."},
        }


class SloEventSerializer(serializers.ModelSerializer[SloEvent]):
    slo_name = serializers.CharField(source="slo.name", read_only=True, help_text="SLO name.")
    logs = LogsLinkField(deployment="slo.deployment", at="at")

    class Meta:
        model = SloEvent
        fields = [
            "id",
            "slo",
            "slo_name",
            "at",
            "from_state",
            "to_state",
            "reason",
            "burn_rates",
            "logs",
        ]
        read_only_fields = fields
        extra_kwargs = {"id": {"help_text": "Event id."}}


class OpenSloImportSerializer(serializers.Serializer):
    team = owning_team_field(help_text="Team to create the SLO in (id).")
    document = serializers.CharField(help_text="An OpenSLO v1 `kind: SLO` YAML document.")
    deployment = TeamScopedRelatedField(
        queryset=Deployment.objects.all(),
        required=False,
        allow_null=True,
        help_text="Deployment to attach it to; defaults to the one the document names.",
    )
