from django.contrib import admin

from apps.audit.admin_mixins import AuditedModelAdmin

from .models import SLO_STATUS_FIELDS, Slo, SloEvent, SloStatus


class SloStatusInline(admin.StackedInline):
    model = SloStatus
    can_delete = False
    readonly_fields = SLO_STATUS_FIELDS


@admin.register(Slo)
class SloAdmin(AuditedModelAdmin):
    list_display = [
        "name",
        "team",
        "deployment",
        "sli_kind",
        "objective_percent",
        "window",
        "state",
        "enabled",
    ]
    list_filter = ["sli_kind", "window", "enabled", "team", "status__state"]
    search_fields = ["name", "description", "deployment__name"]
    list_select_related = ["team", "deployment", "status"]
    inlines = [SloStatusInline]

    @admin.display(description="State")
    def state(self, obj: Slo) -> str:
        try:
            return obj.status.state
        except SloStatus.DoesNotExist:
            return "-"


@admin.register(SloEvent)
class SloEventAdmin(admin.ModelAdmin):
    list_display = ["at", "slo", "from_state", "to_state", "reason"]
    list_filter = ["to_state", "from_state"]
    search_fields = ["slo__name", "reason"]
    list_select_related = ["slo"]
    date_hierarchy = "at"
