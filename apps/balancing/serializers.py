"""API shapes of balancing policies, gateways and gateway reports. Validation of a policy
as a whole lives in :mod:`.services` (the viewsets call it); these only check shapes."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.accounts.serializers import owning_team_field
from apps.api.serializers import TeamScopedRelatedField
from apps.inventory.models import Deployment

from .models import BalancingPolicy, Gateway, GatewayReport, ReportResult
from .selectors import gateway_last_report
from .services import POLICY_FIELDS


class BalancingPolicySerializer(serializers.ModelSerializer[BalancingPolicy]):
    deployment = TeamScopedRelatedField(
        queryset=Deployment.objects.all(), help_text="The deployment (id) it balances."
    )
    weights = serializers.JSONField(
        required=False, help_text='{"<pod name or address[:port]>": weight > 0}.'
    )
    backups = serializers.JSONField(
        required=False, help_text="Members (pod names or addresses) used only as backups."
    )

    class Meta:
        model = BalancingPolicy
        fields = ["id", "deployment", *POLICY_FIELDS, "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]
        extra_kwargs = {"id": {"help_text": "Policy id."}}

    def validate_deployment(self, value: Deployment) -> Deployment:
        if self.instance is not None and value.pk != self.instance.deployment_id:
            raise serializers.ValidationError("A policy stays with its deployment.")
        return value


class GatewayReportSerializer(serializers.ModelSerializer[GatewayReport]):
    class Meta:
        model = GatewayReport
        fields = ["id", "version", "result", "error", "applied_at", "received_at"]
        read_only_fields = fields
        extra_kwargs = {"id": {"help_text": "Report id."}}


class GatewaySerializer(serializers.ModelSerializer[Gateway]):
    team = owning_team_field()
    deployments = serializers.SerializerMethodField(
        help_text="Deployments it fronts, in order: [{id, name}]."
    )
    deployment_ids = TeamScopedRelatedField(
        queryset=Deployment.objects.all(),
        many=True,
        required=False,
        write_only=True,
        help_text="Deployments (ids) it fronts, in order: the first also answers on '/'.",
    )
    last_report = serializers.SerializerMethodField(
        help_text="What its agent last said it applied, or null."
    )

    class Meta:
        model = Gateway
        fields = [
            "id",
            "team",
            "name",
            "listen_address",
            "listen_port",
            "deployments",
            "deployment_ids",
            "last_report",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]
        extra_kwargs = {"id": {"help_text": "Gateway id."}}

    def get_deployments(self, gateway: Gateway) -> list[dict[str, Any]]:
        links = getattr(gateway, "ordered_links", None)
        if links is not None:
            rows = [link.deployment for link in links]
        else:
            rows = list(gateway.deployments.order_by("gatewaydeployment__position", "pk"))
        return [{"id": d.pk, "name": d.name} for d in rows]

    def get_last_report(self, gateway: Gateway) -> dict[str, Any] | None:
        reports = self.context.get("last_reports")
        if reports is not None and hasattr(gateway, "last_report_id"):
            report = reports.get(gateway.last_report_id)
        else:
            report = gateway_last_report(gateway=gateway)
        return GatewayReportSerializer(report).data if report is not None else None

    def validate_team(self, value: Any) -> Any:
        if self.instance is not None and value.pk != self.instance.team_id:
            raise serializers.ValidationError("A gateway stays with its team.")
        return value


class ReportInSerializer(serializers.Serializer[Any]):
    version = serializers.RegexField(r"^[0-9a-f]{64}$", help_text="sha256 it applied (the ETag).")
    result = serializers.ChoiceField(
        choices=ReportResult.choices, help_text="What applying it gave."
    )
    error = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=10_000,
        help_text="Why it failed, if it did (nginx -t or reload output).",
    )  # fmt: skip
    applied_at = serializers.DateTimeField(help_text="When the agent applied it (its clock).")
