from django.contrib import admin

from .models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = [
        "timestamp",
        "actor_repr",
        "action",
        "verb",
        "object_type",
        "object_repr",
        "team",
        "source",
        "source_ip",
    ]
    list_filter = ["action", "source", "object_type", "team"]
    search_fields = ["object_repr", "actor_repr", "object_id", "request_id"]
    date_hierarchy = "timestamp"
    list_select_related = ["team"]

    # The audit log is append-only, in the admin too.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
