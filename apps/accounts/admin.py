from django.contrib import admin

from apps.audit.admin_mixins import AuditedModelAdmin

from .models import ApiToken, Membership, Team


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Team)
class TeamAdmin(AuditedModelAdmin):
    list_display = ["slug", "name", "created_at"]
    search_fields = ["slug", "name"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(AuditedModelAdmin):
    list_display = ["user", "team", "role", "created_at"]
    list_filter = ["role", "team"]
    search_fields = ["user__username", "team__slug"]
    list_select_related = ["user", "team"]
    autocomplete_fields = ["user", "team"]


@admin.register(ApiToken)
class ApiTokenAdmin(AuditedModelAdmin):
    list_display = [
        "name",
        "user",
        "prefix",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
    ]
    list_filter = ["revoked_at", "expires_at"]
    search_fields = ["name", "user__username", "prefix"]
    list_select_related = ["user"]
    readonly_fields = ["prefix", "created_at", "revoked_at", "last_used_at"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        # Tokens are issued through the API, which shows the secret once.
        return False

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        from apps.audit.models import AuditAction
        from apps.audit.services import audit_record, model_snapshot

        from .services import api_token_revoke

        for token in queryset.filter(revoked_at__isnull=True):
            before = model_snapshot(token)
            api_token_revoke(token=token)
            audit_record(
                actor=request.user,
                action=AuditAction.ACTION,
                verb="revoke",
                instance=token,
                before=before,
                after=model_snapshot(token),
            )
