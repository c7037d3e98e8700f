"""Request and response shapes of the metrics API: observations, series and their queries,
the fleet summary, the catalogue and custom queries (PromQL checked)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers

from apps.api.serializers import ModelCleanMixin, TeamScopedRelatedField
from apps.integrations.prometheus import PrometheusClient, PrometheusError
from apps.inventory.models import Deployment

from .catalogue import Signal
from .models import CustomQuery, DeploymentMetrics, MetricsStatus


class ObservationSerializer(serializers.Serializer):
    value = serializers.FloatField(allow_null=True, help_text="Latest value; null if not ok.")
    ts = serializers.FloatField(
        allow_null=True, help_text="Unix time of the scrape the value comes from."
    )
    status = serializers.ChoiceField(
        choices=["ok", "missing", "stale", "unsupported", "unavailable"],
        help_text="ok, or why there is no value.",
    )
    reason = serializers.CharField(allow_blank=True, help_text="Why it is not ok.")


class DeploymentMetricsSerializer(serializers.ModelSerializer[DeploymentMetrics]):
    deployment_name = serializers.CharField(
        source="deployment.name", read_only=True, help_text="Name of the deployment."
    )
    observations = serializers.DictField(
        child=ObservationSerializer(), help_text="Latest observation per signal."
    )

    class Meta:
        model = DeploymentMetrics
        fields = [
            "deployment",
            "deployment_name",
            "status",
            "reason",
            "collected_at",
            "observations",
        ]
        read_only_fields = fields
        extra_kwargs = {"deployment": {"help_text": "Deployment id."}}


class MetricPointSerializer(serializers.Serializer):
    ts = serializers.DateTimeField(help_text="Start of the step.")
    value = serializers.FloatField(help_text="Value at that step.")


class SeriesSerializer(serializers.Serializer):
    deployment = serializers.IntegerField(help_text="Deployment id.")
    signal = serializers.CharField(help_text="Signal name.")
    resolution_s = serializers.IntegerField(help_text="Seconds between stored points.")
    points = MetricPointSerializer(many=True, help_text="Points, oldest first.")


class SeriesQuerySerializer(serializers.Serializer):
    signal = serializers.ChoiceField(choices=Signal.choices, help_text="Signal to return.")
    since = serializers.DateTimeField(required=False, help_text="Start (default: 6 hours ago).")
    until = serializers.DateTimeField(required=False, help_text="End (default: now).")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        since, until = attrs.get("since"), attrs.get("until")
        if since and until and since >= until:
            raise serializers.ValidationError({"until": ["until must be after since."]})
        return attrs


class FleetSummarySerializer(serializers.Serializer):
    deployments = serializers.IntegerField(help_text="Deployments you can see.")
    by_status = serializers.DictField(
        child=serializers.IntegerField(),
        help_text=f"Count per metrics status ({', '.join(MetricsStatus.values)}, no_data).",
    )
    totals = serializers.DictField(
        child=serializers.FloatField(),
        help_text="Sums of queue length, running requests, request and token rates.",
    )
    worst_ttft_p95 = serializers.DictField(
        allow_null=True, help_text="The deployment with the highest TTFT p95, and its value."
    )


class CatalogueRowSerializer(serializers.Serializer):
    framework = serializers.CharField(help_text="Serving framework, or dcgm for GPU metrics.")
    signal = serializers.CharField(help_text="Signal name.")
    promql = serializers.CharField(allow_null=True, help_text="Query template; null = none.")


class CustomQuerySerializer(ModelCleanMixin, serializers.ModelSerializer[CustomQuery]):
    deployment = TeamScopedRelatedField(
        queryset=Deployment.objects.select_related("cluster"),
        help_text="Deployment (id) the query is for.",
    )

    class Meta:
        model = CustomQuery
        fields = ["id", "deployment", "signal", "promql", "created_at"]
        read_only_fields = ["id", "created_at"]
        extra_kwargs = {"id": {"help_text": "Custom query id."}}

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        deployment: Deployment | None = attrs.get("deployment") or (
            self.instance.deployment if self.instance is not None else None
        )
        promql = attrs.get("promql")
        if deployment is not None and promql:
            url = (deployment.cluster.prometheus_url if deployment.cluster else "") or (
                settings.PROMETHEUS_URL or ""
            )
            if url:
                try:
                    PrometheusClient(url, timeout_s=3).query(promql)
                except PrometheusError as exc:
                    # Only a rejected query is the client's fault; an unreachable
                    # Prometheus must not block saving.
                    if not exc.retryable:
                        raise serializers.ValidationError(
                            {"promql": [f"Prometheus rejected the query: {exc}"]}
                        ) from exc
        return attrs
