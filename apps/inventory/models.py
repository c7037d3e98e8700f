"""Clusters, LLM models and deployments (with their scale target, bounds and readiness): the
objects every other app hangs off. Reads are in :mod:`.selectors`, changes in :mod:`.services`."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models

from apps.accounts.models import Team, slug_validator
from apps.core.fields import EncryptedJSONField

from .label_matchers import MatcherError, validate_selector

_NAMESPACE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)


def validate_labels(value: Any) -> None:
    """Labels are a flat string→string map with Kubernetes-style keys."""
    if not isinstance(value, dict):
        raise ValidationError("Labels must be an object of string keys to string values.")
    for key, item in value.items():
        if not isinstance(key, str) or not _LABEL_KEY.match(key):
            raise ValidationError(f"Label key {key!r} is not a valid label name.")
        if not isinstance(item, str) or len(item) > 255:
            raise ValidationError(
                f"Label {key!r} must have a string value of at most 255 characters."
            )


class ClusterKind(models.TextChoices):
    KUBERNETES = "kubernetes", "Kubernetes"
    AWS = "aws", "AWS account"


class AwsCredentialsSource(models.TextChoices):
    ACCESS_KEY = "access-key", "Team access key (stored encrypted)"
    ASSUME_ROLE = "assume-role", "Assume role (with the team access key)"
    # The control plane's own identity: superusers only.
    DEFAULT_CHAIN = "default-chain", "Default credential chain of the control plane"
    PROFILE = "profile", "Named profile of the control plane"
    ENVIRONMENT = "environment", "Environment variables of the control plane"


# Where each kind keeps its team-owned secret inside Cluster.credentials.
KUBECONFIG_SECRET_KEYS = ("kubeconfig",)
AWS_SECRET_KEYS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
# The Cluster fields that say how to reach it, besides the secrets: the admin form and the
# API take the same ones.
CLUSTER_CONNECTION_FIELDS = (
    "kubeconfig_path",
    "kube_context",
    "default_namespace",
    "aws_region",
    "aws_account_id",
    "aws_credentials_source",
    "aws_profile",
    "aws_role_arn",
)


class Cluster(models.Model):
    """A Kubernetes cluster or an AWS account/region the control plane can scale in.

    Credentials belong to the team: a kubeconfig document or an AWS access key kept
    encrypted in ``credentials`` (a role may be assumed with that key), or a kubeconfig
    file inside the team's directory of ``KUBECONFIG_ALLOWED_DIRS``. The control plane's
    own identity (in-cluster service account, another kubeconfig file of its host, the AWS
    default chain, environment or profiles) is used only where a superuser chose it:
    ``process_identity_approved`` records that choice (see apps/inventory/credentials.py).
    """

    team = models.ForeignKey(
        Team, on_delete=models.PROTECT, related_name="clusters", help_text="Owning team."
    )
    name = models.CharField(
        max_length=63, validators=[slug_validator], help_text="Name, unique within the team."
    )
    kind = models.CharField(
        max_length=16, choices=ClusterKind.choices, help_text="kubernetes or aws."
    )
    description = models.TextField(blank=True, default="", help_text="Free-form notes.")
    in_cluster = models.BooleanField(
        default=False,
        help_text="Kubernetes: authenticate with the control plane's own service account (it "
        "runs inside this cluster). Superusers only.",
    )
    kubeconfig_path = models.CharField(
        max_length=500,
        blank=True,
        default="",
        help_text="Kubernetes: path of a kubeconfig file inside the team's directory of "
        "KUBECONFIG_ALLOWED_DIRS (<dir>/<team slug>/...); other paths are superusers only.",
    )
    kube_context = models.CharField(
        max_length=253, blank=True, default="", help_text="Kubernetes: context in the kubeconfig."
    )
    default_namespace = models.CharField(
        max_length=63,
        blank=True,
        default="default",
        validators=[slug_validator],
        help_text="Kubernetes: namespace used when a deployment names none.",
    )
    aws_region = models.CharField(
        max_length=32,
        blank=True,
        default="",
        validators=[RegexValidator(r"^[a-z]{2}(-[a-z]+)+-[0-9]$", "Not an AWS region name.")],
        help_text="AWS: region, e.g. us-east-1.",
    )
    aws_account_id = models.CharField(
        max_length=12,
        blank=True,
        default="",
        validators=[RegexValidator(r"^[0-9]{12}$", "An AWS account id has 12 digits.")],
        help_text="AWS: 12-digit account id.",
    )
    aws_credentials_source = models.CharField(
        max_length=16,
        choices=AwsCredentialsSource.choices,
        blank=True,
        default="",
        help_text="AWS: where credentials come from: access-key (the team's key, stored "
        "encrypted), assume-role (a role assumed with that key); default-chain, profile and "
        "environment use the control plane's own identity (superusers only).",
    )
    aws_profile = models.CharField(
        max_length=128, blank=True, default="", help_text="AWS: profile name (source=profile)."
    )
    aws_role_arn = models.CharField(
        max_length=2048,
        blank=True,
        default="",
        validators=[
            RegexValidator(
                r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9_+=,.@/-]+$", "Not an IAM role ARN."
            )
        ],
        help_text="AWS: role to assume (source=assume-role).",
    )
    credentials = EncryptedJSONField(
        blank=True,
        default=dict,
        help_text="The team's secret, stored encrypted and never returned: a kubeconfig "
        "document, or an AWS access key id, secret and optional session token.",
    )
    credentials_changed_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the stored secret last changed (the audit log records only this).",
    )
    process_identity_approved = models.BooleanField(
        default=False,
        help_text="A superuser chose the control plane's own identity for this cluster. "
        "Without it, a cluster that would use that identity is refused by the actuators.",
    )
    prometheus_url = models.URLField(
        blank=True,
        default="",
        help_text="Prometheus that scrapes this cluster's deployments; empty uses the control "
        "plane's default PROMETHEUS_URL.",
    )
    labels = models.JSONField(
        default=dict, blank=True, validators=[validate_labels], help_text="Free-form labels."
    )
    created_at = models.DateTimeField(auto_now_add=True, help_text="When it was registered.")
    updated_at = models.DateTimeField(auto_now=True, help_text="Last change.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="inventory_cluster_unique_name")
        ]
        ordering = ["team__slug", "name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        secret = self.credentials if isinstance(self.credentials, dict) else {}
        has_kubeconfig = bool(secret.get("kubeconfig"))
        has_access_key = any(secret.get(key) for key in AWS_SECRET_KEYS)
        if self.kind == ClusterKind.KUBERNETES:
            if not self.in_cluster and not self.kubeconfig_path and not has_kubeconfig:
                errors["kubeconfig_path"] = (
                    "Give the team's kubeconfig (stored encrypted), a kubeconfig path inside "
                    "the team's directory of KUBECONFIG_ALLOWED_DIRS, or (superusers only) "
                    "set in_cluster."
                )
            if self.in_cluster and (self.kubeconfig_path or self.kube_context or has_kubeconfig):
                errors["in_cluster"] = (
                    "in_cluster excludes kubeconfig, kubeconfig_path and kube_context."
                )
            elif self.kubeconfig_path and has_kubeconfig:
                errors["kubeconfig_path"] = "kubeconfig_path and kubeconfig exclude each other."
            for field in (
                "aws_region",
                "aws_account_id",
                "aws_credentials_source",
                "aws_profile",
                "aws_role_arn",
            ):
                if getattr(self, field):
                    errors[field] = "Only for clusters of kind aws."
            if has_access_key:
                errors["credentials"] = "AWS access keys are only for clusters of kind aws."
        elif self.kind == ClusterKind.AWS:
            if not self.aws_region:
                errors["aws_region"] = "An AWS account needs a region."
            source = self.aws_credentials_source or (
                AwsCredentialsSource.ACCESS_KEY
                if has_access_key
                else AwsCredentialsSource.DEFAULT_CHAIN
            )
            if source == AwsCredentialsSource.PROFILE and not self.aws_profile:
                errors["aws_profile"] = "Name the profile to use."
            if source == AwsCredentialsSource.ASSUME_ROLE and not self.aws_role_arn:
                errors["aws_role_arn"] = "Give the ARN of the role to assume."
            if source != AwsCredentialsSource.PROFILE and self.aws_profile:
                errors["aws_profile"] = "Only used with aws_credentials_source=profile."
            if source != AwsCredentialsSource.ASSUME_ROLE and self.aws_role_arn:
                errors["aws_role_arn"] = "Only used with aws_credentials_source=assume-role."
            if source == AwsCredentialsSource.ACCESS_KEY and not (
                secret.get("aws_access_key_id") and secret.get("aws_secret_access_key")
            ):
                errors["credentials"] = (
                    "aws_credentials_source=access-key needs the team's access key id and secret."
                )
            if has_access_key and source not in (
                AwsCredentialsSource.ACCESS_KEY,
                AwsCredentialsSource.ASSUME_ROLE,
            ):
                errors["credentials"] = (
                    "An access key is only used with aws_credentials_source access-key or "
                    "assume-role."
                )
            if self.in_cluster or self.kubeconfig_path or self.kube_context or has_kubeconfig:
                errors["kind"] = "Kubernetes settings are not used by clusters of kind aws."
        if errors:
            raise ValidationError(errors)
        if self.kind == ClusterKind.AWS and not self.aws_credentials_source:
            self.aws_credentials_source = source


class LLMModel(models.Model):
    """A model artefact that deployments serve."""

    team = models.ForeignKey(
        Team, on_delete=models.PROTECT, related_name="llm_models", help_text="Owning team."
    )
    name = models.CharField(
        max_length=200, help_text="Model name, e.g. meta-llama/Llama-3.1-8B-Instruct."
    )
    version = models.CharField(
        max_length=100, help_text="Version or revision, e.g. a commit hash or v2."
    )
    parameter_count = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Number of parameters, e.g. 8030000000."
    )
    checksum = models.CharField(
        max_length=80,
        blank=True,
        default="",
        validators=[
            RegexValidator(
                r"^sha256:[0-9a-f]{64}$", "Use the form sha256:<64 lowercase hex digits>."
            )
        ],
        help_text="Checksum of the weights, as sha256:<hex>.",
    )
    source_uri = models.CharField(
        max_length=500,
        blank=True,
        default="",
        help_text="Where the weights live (s3://, hf://, ...).",
    )
    description = models.TextField(blank=True, default="", help_text="Free-form notes.")
    created_at = models.DateTimeField(auto_now_add=True, help_text="When it was registered.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["team", "name", "version"], name="inventory_model_unique_version"
            )
        ]
        ordering = ["team__slug", "name", "version"]
        verbose_name = "model"

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


class ServingFramework(models.TextChoices):
    VLLM = "vllm", "vLLM"
    TGI = "tgi", "Text Generation Inference"
    SGLANG = "sglang", "SGLang"
    TRITON = "tensorrt-llm", "TensorRT-LLM / Triton"
    OLLAMA = "ollama", "Ollama"
    RAY_SERVE = "ray-serve", "Ray Serve"
    TF_SERVING = "tf-serving", "TF Serving"
    OTHER = "other", "Other"


class ScaleTargetKind(models.TextChoices):
    K8S_DEPLOYMENT = "k8s-deployment", "Kubernetes Deployment"
    K8S_STATEFULSET = "k8s-statefulset", "Kubernetes StatefulSet"
    AWS_ASG = "aws-asg", "AWS Auto Scaling Group"
    SIMULATED = "simulated", "Simulated (fleet simulator)"


class GpuType(models.TextChoices):
    A10G = "a10g", "NVIDIA A10G 24GB"
    L4 = "l4", "NVIDIA L4 24GB"
    L40S = "l40s", "NVIDIA L40S 48GB"
    A100_40GB = "a100-40gb", "NVIDIA A100 40GB"
    A100_80GB = "a100-80gb", "NVIDIA A100 80GB"
    H100_80GB = "h100-80gb", "NVIDIA H100 80GB"
    H200 = "h200", "NVIDIA H200 141GB"
    B200 = "b200", "NVIDIA B200"
    MI300X = "mi300x", "AMD MI300X"
    CPU = "cpu", "CPU only"
    OTHER = "other", "Other"


class DeploymentStatus(models.TextChoices):
    PROVISIONING = "provisioning", "Provisioning"
    ACTIVE = "active", "Active"
    DRAINING = "draining", "Draining"
    RETIRED = "retired", "Retired"


class Deployment(models.Model):
    """One served model endpoint and how to scale it."""

    team = models.ForeignKey(
        Team, on_delete=models.PROTECT, related_name="deployments", help_text="Owning team."
    )
    name = models.CharField(
        max_length=63, validators=[slug_validator], help_text="Name, unique within the team."
    )
    description = models.TextField(blank=True, default="", help_text="Free-form notes.")
    model = models.ForeignKey(
        LLMModel,
        on_delete=models.PROTECT,
        related_name="deployments",
        help_text="The model served.",
    )
    framework = models.CharField(
        max_length=16, choices=ServingFramework.choices, help_text="Serving framework."
    )
    cluster = models.ForeignKey(
        Cluster,
        on_delete=models.PROTECT,
        related_name="deployments",
        null=True,
        blank=True,
        help_text="Where it runs; required unless the scale target is simulated.",
    )
    target_kind = models.CharField(
        max_length=20,
        choices=ScaleTargetKind.choices,
        help_text="What the autoscaler scales: a Kubernetes Deployment or StatefulSet, an AWS "
        "Auto Scaling Group, or a deployment of the fleet simulator.",
    )
    target_namespace = models.CharField(
        max_length=63,
        blank=True,
        default="",
        help_text="Kubernetes namespace of the target (defaults to the cluster's).",
    )
    target_name = models.CharField(
        max_length=255,
        blank=True,
        default="",
        help_text="Name of the Deployment/StatefulSet or Auto Scaling Group (defaults to the "
        "deployment name).",
    )
    gpu_type = models.CharField(
        max_length=16, choices=GpuType.choices, help_text="Accelerator each replica uses."
    )
    gpus_per_replica = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1)], help_text="Accelerators per replica."
    )
    min_replicas = models.PositiveIntegerField(
        default=1, help_text="Fewest replicas the autoscaler may leave (0 allows scale to zero)."
    )
    max_replicas = models.PositiveIntegerField(
        default=1,
        validators=[MinValueValidator(1)],
        help_text="Most replicas the autoscaler may create.",
    )
    endpoint_url = models.URLField(
        blank=True, default="", help_text="Where clients reach the deployment (for reference)."
    )
    prometheus_selector = models.CharField(
        max_length=1000,
        help_text="Prometheus label matchers that select this deployment's series, e.g. "
        '{namespace="llm", deployment="chat"}. Validated as PromQL matchers on save.',
    )
    labels = models.JSONField(
        default=dict, blank=True, validators=[validate_labels], help_text="Free-form labels."
    )
    status = models.CharField(
        max_length=16,
        choices=DeploymentStatus.choices,
        default=DeploymentStatus.PROVISIONING,
        help_text="Lifecycle status.",
    )
    created_at = models.DateTimeField(auto_now_add=True, help_text="When it was registered.")
    updated_at = models.DateTimeField(auto_now=True, help_text="Last change.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["team", "name"], name="inventory_deployment_unique_name"
            ),
            models.CheckConstraint(
                condition=models.Q(min_replicas__lte=models.F("max_replicas")),
                name="inventory_deployment_min_le_max",
            ),
        ]
        ordering = ["team__slug", "name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.min_replicas is not None and self.max_replicas is not None:
            if self.min_replicas > self.max_replicas:
                errors["min_replicas"] = (
                    f"min_replicas ({self.min_replicas}) is greater than max_replicas "
                    f"({self.max_replicas})."
                )
        if self.prometheus_selector:
            try:
                validate_selector(self.prometheus_selector)
            except MatcherError as exc:
                errors["prometheus_selector"] = f"Invalid label matchers: {exc}."
        cluster = self.cluster if self.cluster_id else None
        if self.target_kind == ScaleTargetKind.SIMULATED:
            pass
        elif cluster is None:
            errors["cluster"] = "A cluster is required unless the scale target is simulated."
        elif self.target_kind in (ScaleTargetKind.K8S_DEPLOYMENT, ScaleTargetKind.K8S_STATEFULSET):
            if cluster.kind != ClusterKind.KUBERNETES:
                errors["target_kind"] = "Kubernetes targets need a cluster of kind kubernetes."
            if self.target_namespace and not _NAMESPACE.match(self.target_namespace):
                errors["target_namespace"] = "Not a valid Kubernetes namespace name."
        elif self.target_kind == ScaleTargetKind.AWS_ASG:
            if cluster.kind != ClusterKind.AWS:
                errors["target_kind"] = "Auto Scaling Group targets need a cluster of kind aws."
            if self.target_namespace:
                errors["target_namespace"] = "Auto Scaling Groups have no namespace."
        team_id = self.team_id
        if cluster is not None and team_id is not None and cluster.team_id != team_id:
            errors["cluster"] = "The cluster belongs to another team."
        if self.model_id and team_id is not None and self.model.team_id != team_id:
            errors["model"] = "The model belongs to another team."
        if errors:
            raise ValidationError(errors)

    @property
    def scale_target_namespace(self) -> str:
        if self.target_namespace:
            return self.target_namespace
        if self.cluster_id and self.cluster is not None:
            return self.cluster.default_namespace
        return "default"

    @property
    def scale_target_name(self) -> str:
        return self.target_name or self.name


class DeploymentReadiness(models.Model):
    """The go-live checklist of a deployment."""

    ITEMS = (
        "model_files_verified",
        "version_confirmed",
        "performance_validated",
        "monitoring_configured",
        "alerts_configured",
    )

    deployment = models.OneToOneField(
        Deployment, on_delete=models.CASCADE, related_name="readiness", primary_key=True
    )
    model_files_verified = models.BooleanField(
        default=False, help_text="Weights present on the serving nodes and checksum verified."
    )
    version_confirmed = models.BooleanField(
        default=False, help_text="The served model version matches the registered one."
    )
    performance_validated = models.BooleanField(
        default=False, help_text="Load-tested against its SLOs at expected peak."
    )
    monitoring_configured = models.BooleanField(
        default=False, help_text="Its metrics reach Prometheus and match the selector."
    )
    alerts_configured = models.BooleanField(
        default=False, help_text="Alert routes to the owning team are in place."
    )
    notes = models.TextField(blank=True, default="", help_text="Evidence or links.")
    updated_at = models.DateTimeField(auto_now=True, help_text="Last change.")
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Who last changed the checklist.",
    )

    class Meta:
        verbose_name_plural = "deployment readiness"

    def __str__(self) -> str:
        return f"readiness of {self.deployment_id}"

    @property
    def audit_team_id(self) -> int:
        return self.deployment.team_id

    @property
    def missing(self) -> list[str]:
        return [item for item in self.ITEMS if not getattr(self, item)]

    @property
    def ready(self) -> bool:
        return not self.missing
