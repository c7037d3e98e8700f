import django_filters

from .models import Cluster, Deployment, LLMModel


class ClusterFilter(django_filters.FilterSet):
    class Meta:
        model = Cluster
        fields = {"team": ["exact"], "kind": ["exact"], "name": ["exact", "icontains"]}


class LLMModelFilter(django_filters.FilterSet):
    class Meta:
        model = LLMModel
        fields = {"team": ["exact"], "name": ["exact", "icontains"], "version": ["exact"]}


class DeploymentFilter(django_filters.FilterSet):
    label = django_filters.CharFilter(
        method="filter_label", label="Label as key=value (may be repeated with comma: a=b,c=d)."
    )

    class Meta:
        model = Deployment
        fields = {
            "team": ["exact"],
            "cluster": ["exact"],
            "model": ["exact"],
            "framework": ["exact"],
            "target_kind": ["exact"],
            "gpu_type": ["exact"],
            "status": ["exact"],
            "name": ["exact", "icontains"],
        }

    def filter_label(self, queryset, name, value):
        for pair in value.split(","):
            key, sep, val = pair.partition("=")
            if not sep or not key.strip():
                from rest_framework.exceptions import ValidationError

                raise ValidationError({"label": [f"Expected key=value, got {pair!r}."]})
            queryset = queryset.filter(**{f"labels__{key.strip()}": val.strip()})
        return queryset
