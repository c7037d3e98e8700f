"""The admin of teams, memberships and API tokens (revocable, never issued here), with a
login view that says when an address or username is locked out."""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from apps.audit.admin_mixins import AuditedModelAdmin
from apps.audit.models import AuditAction
from apps.audit.services import audited

from .backends import login_refusal
from .models import ApiToken, Membership, Team
from .services import api_token_revoke


def _throttled_login(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The admin login view, answering 429 with Retry-After to a login attempt while its
    address or username is locked out (the backend refuses it anyway; this says why)."""

    @wraps(view)
    def login(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return login_refusal(request) or view(request, *args, **kwargs)

    return login


# Replaced before the admin's URLs are built (they are, when the URLconf is first loaded).
admin.site.login = _throttled_login(admin.site.login)  # type: ignore[method-assign]


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
        for token in queryset.filter(revoked_at__isnull=True):
            with audited(
                actor=request.user, action=AuditAction.ACTION, verb="revoke", instance=token
            ):
                api_token_revoke(token=token)
