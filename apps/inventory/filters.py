import django_filters
from django.db.models.fields.json import KeyTransform
from rest_framework.exceptions import ValidationError

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
        for index, pair in enumerate(value.split(",")):
            key, sep, val = pair.partition("=")
            if not sep or not key.strip():
                raise ValidationError({"label": [f"Expected key=value, got {pair!r}."]})
            # The key is data, not a lookup path: "a__regex" must not become a regex lookup.
            alias = f"_label_{index}"
            queryset = queryset.alias(**{alias: KeyTransform(key.strip(), "labels")}).filter(
                **{alias: val.strip()}
            )
        return queryset
