"""Request and response shapes of the inventory API: clusters (credentials write-only and
outbound URLs checked), models, deployments and readiness."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.accounts.serializers import owning_team_field
from apps.api.representation import fast_representation
from apps.api.serializers import ModelCleanMixin, NameFieldsMixin, TeamScopedRelatedField
from apps.core.fields import secret_stored
from apps.core.netguard import DestinationRefused, destination_check, parse_destination

from .credentials import (
    cluster_credentials_problem,
    cluster_process_identity,
    cluster_unreadable_secret_errors,
)
from .label_matchers import MatcherError, render_selector, validate_selector
from .models import (
    AWS_SECRET_KEYS,
    CLUSTER_CONNECTION_FIELDS,
    Cluster,
    Deployment,
    DeploymentReadiness,
    DeploymentStatus,
    LLMModel,
)
from .selectors import deployment_readiness
from .services import (
    cluster_credentials_authorize,
    cluster_credentials_merge,
    deployment_activation_refusal,
)


def _outbound_url(value: str, *, field: str, resolve: bool) -> str:
    """A team-supplied URL checked by apps.core.netguard: its form always, and with
    ``resolve`` its host's addresses against internal ranges (for URLs the server calls).
    The operator's own PROMETHEUS_URL is accepted as it is trusted when called."""
    if not value:
        return value
    if resolve and value.rstrip("/") == (settings.PROMETHEUS_URL or "").rstrip("/"):
        return value
    try:
        if resolve:
            destination_check(value, field=field)
        else:
            parse_destination(value, field=field)
    except DestinationRefused as exc:
        raise serializers.ValidationError(f"{exc}.") from None
    return value


_SECRET_INPUTS = ("kubeconfig", *AWS_SECRET_KEYS)


def _secret_input(**kwargs: Any) -> serializers.CharField:
    """A team secret as the API takes it: write-only, optional, and blank to remove it."""
    return serializers.CharField(write_only=True, required=False, allow_blank=True, **kwargs)


class ClusterSerializer(ModelCleanMixin, serializers.ModelSerializer[Cluster]):
    team = owning_team_field()
    kubeconfig = _secret_input(
        trim_whitespace=False,
        # kubeconfig_load bounds the document's bytes; this bounds characters early.
        max_length=256 * 1024,
        help_text="Kubernetes, write-only: the team's kubeconfig document (YAML or JSON), "
        "stored encrypted and never returned. Inline data only: no exec or auth-provider "
        "plugins, no file references (tokenFile, client-certificate, ...). Empty removes it.",
    )
    aws_access_key_id = _secret_input(
        max_length=128,
        help_text="AWS, write-only: the team's access key id (stored encrypted).",
    )
    aws_secret_access_key = _secret_input(
        max_length=256,
        help_text="AWS, write-only: the secret of that access key (stored encrypted).",
    )
    aws_session_token = _secret_input(
        max_length=8192,
        help_text="AWS, write-only, optional: a session token for temporary credentials.",
    )
    credentials_configured = serializers.SerializerMethodField(
        help_text="Whether a team secret (kubeconfig or access key) is stored (also when it "
        "can no longer be decrypted: see credentials_problem)."
    )
    uses_process_identity = serializers.SerializerMethodField(
        help_text="Whether the cluster acts with the control plane's own identity "
        "(in-cluster service account, a host kubeconfig, the AWS default chain, ...)."
    )
    credentials_problem = serializers.SerializerMethodField(
        help_text="Why the autoscaler refuses to act with these credentials; empty when it "
        "may (e.g. the control plane's own identity without a superuser's approval, or a "
        "stored secret that cannot be decrypted and must be set again)."
    )

    class Meta:
        model = Cluster
        fields = [
            "id",
            "team",
            "name",
            "kind",
            "description",
            "in_cluster",
            "kubeconfig",
            *CLUSTER_CONNECTION_FIELDS,
            "aws_access_key_id",
            "aws_secret_access_key",
            "aws_session_token",
            "credentials_configured",
            "credentials_changed_at",
            "uses_process_identity",
            "process_identity_approved",
            "credentials_problem",
            "prometheus_url",
            "labels",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "id",
            "created_at",
            "updated_at",
            "credentials_changed_at",
            "process_identity_approved",
        ]
        extra_kwargs = {"id": {"help_text": "Cluster id."}}

    def validate_prometheus_url(self, value: str) -> str:
        # The metrics collector calls it: no internal addresses (apps.core.netguard).
        return _outbound_url(value, field="prometheus_url", resolve=True)

    def get_credentials_configured(self, obj: Cluster) -> bool:
        # From the stored value's presence: reading never needs to decrypt.
        return secret_stored(obj.credentials)

    def get_uses_process_identity(self, obj: Cluster) -> bool:
        return bool(cluster_process_identity(obj))

    def get_credentials_problem(self, obj: Cluster) -> str:
        return cluster_credentials_problem(obj)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        secrets = {name: attrs.pop(name) for name in _SECRET_INPUTS if name in attrs}
        request = self.context.get("request")
        unreadable = cluster_unreadable_secret_errors(
            instance=self.instance, attrs=attrs, secrets=secrets
        )
        if unreadable:
            raise serializers.ValidationError(unreadable)
        try:
            attrs.update(
                cluster_credentials_merge(instance=self.instance, attrs=attrs, secrets=secrets)
            )
            attrs = super().validate(attrs)
            attrs.update(
                cluster_credentials_authorize(
                    instance=self.instance,
                    attrs=attrs,
                    secret_given=bool(secrets),
                    actor=getattr(request, "user", None) or AnonymousUser(),
                )
            )
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc
        return attrs


class LLMModelSerializer(NameFieldsMixin, ModelCleanMixin, serializers.ModelSerializer[LLMModel]):
    name_fields = ()
    slash_name_fields = ("name", "version")

    team = owning_team_field()

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
    team = owning_team_field()
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

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        before = self.instance.status if self.instance is not None else None
        if attrs.get("status") == DeploymentStatus.ACTIVE and before != DeploymentStatus.ACTIVE:
            refusal = deployment_activation_refusal(deployment=self.instance)
            if refusal:
                raise serializers.ValidationError({"status": [refusal]})
        return attrs

    def validate_endpoint_url(self, value: str) -> str:
        # Shown for reference and never called by the server, so an in-cluster address is
        # fine; only the form is checked. Code that starts calling it must use netguard.
        return _outbound_url(value, field="endpoint_url", resolve=False)

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
        # One nested serializer per list, not per row: building a ModelSerializer's fields
        # costs far more than rendering a row with them.
        nested = self.__dict__.get("_readiness_serializer")
        if nested is None:
            nested = self.__dict__["_readiness_serializer"] = ReadinessSerializer()
            fast_representation(nested)
        return nested.to_representation(deployment_readiness(deployment=obj))
