from __future__ import annotations

import json

import factory

from apps.accounts.models import Team
from apps.inventory.models import (
    Cluster,
    ClusterKind,
    Deployment,
    DeploymentReadiness,
    GpuType,
    LLMModel,
    ScaleTargetKind,
    ServingFramework,
)

from .accounts import TeamFactory

TEAM_TOKEN = "team-token"


def kubeconfig_document(
    *, server: str = "https://127.0.0.1:6443", context: str = "prod", token: str = TEAM_TOKEN
) -> str:
    """A kubeconfig a team may store: one context, an inline bearer token."""
    return json.dumps(  # JSON is YAML
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": {"server": server}}],
            "users": [{"name": "u", "user": {"token": token}}],
            "contexts": [{"name": context, "context": {"cluster": "c", "user": "u"}}],
            "current-context": context,
        }
    )


class ClusterFactory(factory.django.DjangoModelFactory):
    """A Kubernetes cluster with the team's own kubeconfig stored (context "prod")."""

    class Meta:
        model = Cluster

    team = factory.SubFactory(TeamFactory)
    name = factory.Sequence(lambda n: f"cluster-{n}")
    kind = ClusterKind.KUBERNETES
    kube_context = "prod"
    credentials = factory.LazyFunction(lambda: {"kubeconfig": kubeconfig_document()})
    default_namespace = "llm"


class LLMModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LLMModel

    team = factory.SubFactory(TeamFactory)
    name = factory.Sequence(lambda n: f"org/model-{n}")
    version = "v1"
    parameter_count = 8_000_000_000


class DeploymentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Deployment

    team = factory.SubFactory(TeamFactory)
    name = factory.Sequence(lambda n: f"deploy-{n}")
    model = factory.SubFactory(LLMModelFactory, team=factory.SelfAttribute("..team"))
    cluster = factory.SubFactory(ClusterFactory, team=factory.SelfAttribute("..team"))
    framework = ServingFramework.VLLM
    target_kind = ScaleTargetKind.K8S_DEPLOYMENT
    gpu_type = GpuType.A100_80GB
    min_replicas = 1
    max_replicas = 4
    prometheus_selector = factory.LazyAttribute(
        lambda d: f'{{namespace="llm", deployment="{d.name}"}}'
    )


def deployment_payload(team: Team, **overrides: object) -> dict[str, object]:
    """The API body that creates deployment "chat" in ``team`` (a model and a cluster of the
    team are created for it); ``overrides`` replace or add fields."""
    return {
        "team": team.pk,
        "name": "chat",
        "model": LLMModelFactory(team=team).pk,
        "cluster": ClusterFactory(team=team).pk,
        "framework": "vllm",
        "target_kind": "k8s-deployment",
        "gpu_type": "a100-80gb",
        "min_replicas": 1,
        "max_replicas": 4,
        "prometheus_selector": '{deployment="chat"}',
        **overrides,
    }


class SimulatedDeploymentFactory(DeploymentFactory):
    """A deployment of the fleet simulator (namespace "llm"): no cluster, scaled through the
    simulator's API, selected in Prometheus by the labels the simulator exports."""

    cluster = None
    target_kind = ScaleTargetKind.SIMULATED
    target_namespace = "llm"


class DeploymentReadinessFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DeploymentReadiness

    deployment = factory.SubFactory(DeploymentFactory)
    model_files_verified = True
    version_confirmed = True


# Kubeconfig servers on internal addresses, each with what a refusal must name.
INTERNAL_SERVERS = [
    ("https://169.254.169.254", "169.254.169.254, a link-local"),
    ("https://127.0.0.1:6443", "127.0.0.1, a loopback"),
    ("https://[::1]", "::1, a loopback"),
    ("https://localhost", "localhost resolves to"),
    ("https://0x7f000001", "'0x7f000001', which reads as an IP address"),
]
