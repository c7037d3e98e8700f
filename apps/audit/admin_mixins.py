from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from django.contrib import admin
from django.db import models
from django.http import HttpRequest

from .models import AuditAction
from .services import audited


class AuditedModelAdmin(admin.ModelAdmin):
    """Records every add, change and delete made in the admin, like the API does."""

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # The form has already changed ``obj``: "before" is the stored row.
        original = None
        if change and obj.pk is not None:
            original = type(obj)._default_manager.filter(pk=obj.pk).first()
        action = AuditAction.UPDATE if change else AuditAction.CREATE
        with audited(actor=request.user, action=action, instance=original) as entry:
            super().save_model(request, obj, form, change)
            entry.instance = obj

    def delete_model(self, request: HttpRequest, obj: models.Model) -> None:
        with audited(actor=request.user, action=AuditAction.DELETE, instance=obj):
            super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        # Admin deletes run in a transaction (Django's delete view is atomic), so the
        # entries recorded first go when the delete fails.
        with ExitStack() as stack:
            for obj in queryset:
                stack.enter_context(
                    audited(actor=request.user, action=AuditAction.DELETE, instance=obj)
                )
            super().delete_queryset(request, queryset)
