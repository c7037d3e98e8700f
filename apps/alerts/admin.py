from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.audit.admin_mixins import AuditedModelAdmin

from .delivery import channel_test_send
from .models import (
    Alert,
    AlertGroup,
    AlertRule,
    Channel,
    Delivery,
    InhibitRule,
    Receiver,
    Route,
    Silence,
)
from .services import alert_acknowledge


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "status",
        "severity",
        "team",
        "deployment",
        "starts_at",
        "acknowledged_at",
    ]
    list_filter = ["status", "severity", "source", "team"]
    search_fields = ["name", "fingerprint"]
    list_select_related = ["team", "deployment"]
    readonly_fields = [f.name for f in Alert._meta.concrete_fields]
    date_hierarchy = "starts_at"
    actions = ["acknowledge"]

    @admin.action(description="Acknowledge selected alerts")
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        for alert in queryset:
            alert_acknowledge(alert=alert, actor=request.user)
        self.message_user(request, f"{queryset.count()} acknowledged.")


@admin.register(Silence)
class SilenceAdmin(AuditedModelAdmin):
    list_display = ["id", "team", "matchers", "starts_at", "ends_at", "created_by", "comment"]
    list_filter = ["team"]
    readonly_fields = ["created_by"]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(InhibitRule)
class InhibitRuleAdmin(AuditedModelAdmin):
    list_display = ["name", "team", "source_matchers", "target_matchers", "equal", "enabled"]


@admin.register(Channel)
class ChannelAdmin(AuditedModelAdmin):
    list_display = ["name", "team", "kind", "language", "enabled", "disabled_reason"]
    list_filter = ["kind", "enabled", "team"]
    exclude = ["config"]  # secrets: set through the API, never shown
    actions = ["send_test"]

    @admin.action(description="Send a test message")
    def send_test(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        for channel in queryset:
            delivery = channel_test_send(channel=channel, language=channel.language)
            level = messages.SUCCESS if delivery.status == "succeeded" else messages.ERROR
            self.message_user(
                request, f"{channel.name}: {delivery.status} {delivery.error}".strip(), level
            )


@admin.register(Route)
class RouteAdmin(AuditedModelAdmin):
    list_display = ["name", "team", "position", "matchers", "group_by", "enabled"]
    list_filter = ["team", "enabled"]
    filter_horizontal = ["channels"]


@admin.register(AlertRule)
class AlertRuleAdmin(AuditedModelAdmin):
    list_display = [
        "name",
        "team",
        "deployment",
        "signal",
        "comparison",
        "threshold",
        "for_s",
        "enabled",
    ]
    list_filter = ["team", "enabled", "severity"]
    exclude = ["state"]


@admin.register(AlertGroup)
class AlertGroupAdmin(admin.ModelAdmin):
    list_display = ["id", "route", "labels", "next_flush_at", "last_notified_at", "flushes"]
    readonly_fields = [
        "route",
        "key_hash",
        "labels",
        "created_at",
        "next_flush_at",
        "last_notified_at",
        "last_firing",
        "last_resolved",
        "flushes",
    ]
    exclude = ["alerts"]


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "channel",
        "status",
        "attempts",
        "status_code",
        "latency_ms",
        "error",
    ]
    list_filter = ["status", "channel"]
    readonly_fields = [f.name for f in Delivery._meta.concrete_fields]


@admin.register(Receiver)
class ReceiverAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "token_prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["token_prefix", "created_at", "last_used_at"]
    exclude = ["token_hash"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tokens are issued through the API, shown once
