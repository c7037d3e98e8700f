"""The read-only audit log API: who changed what, scoped to the caller's teams and own
actions. Entries are written by :mod:`apps.audit.services`."""

from __future__ import annotations

import django_filters
from rest_framework import serializers

from apps.api.viewsets import TeamScopedReadOnlyViewSet

from .models import AuditEntry


class AuditEntrySerializer(serializers.ModelSerializer[AuditEntry]):
    actor = serializers.CharField(source="actor_repr", read_only=True, help_text="Username.")

    class Meta:
        model = AuditEntry
        fields = [
            "id",
            "timestamp",
            "actor",
            "team",
            "action",
            "verb",
            "object_type",
            "object_id",
            "object_repr",
            "changes",
            "source",
            "source_ip",
            "request_id",
        ]
        read_only_fields = fields
        extra_kwargs = {"id": {"help_text": "Entry id."}}


class AuditEntryFilter(django_filters.FilterSet):
    since = django_filters.IsoDateTimeFilter(
        field_name="timestamp", lookup_expr="gte", label="Entries at or after this time (ISO 8601)."
    )
    until = django_filters.IsoDateTimeFilter(
        field_name="timestamp", lookup_expr="lt", label="Entries before this time (ISO 8601)."
    )
    actor = django_filters.CharFilter(field_name="actor_repr", label="Username of the actor.")

    class Meta:
        model = AuditEntry
        fields = ["team", "action", "verb", "object_type", "object_id", "source", "request_id"]


class AuditEntryViewSet(TeamScopedReadOnlyViewSet):
    """Who changed what: entries of your teams' objects, and your own actions."""

    queryset = AuditEntry.objects.all()
    user_field = "actor_id"
    serializer_class = AuditEntrySerializer
    filterset_class = AuditEntryFilter
    ordering_fields = ["timestamp"]
    search_fields = ["object_repr", "actor_repr"]
