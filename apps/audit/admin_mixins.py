from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import models
from django.http import HttpRequest

from .models import AuditAction
from .services import audit_record, model_snapshot


class AuditedModelAdmin(admin.ModelAdmin):
    """Records every add, change and delete made in the admin, like the API does."""

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        before = None
        if change and obj.pk is not None:
            original = type(obj)._default_manager.filter(pk=obj.pk).first()
            before = model_snapshot(original) if original is not None else None
        super().save_model(request, obj, form, change)
        audit_record(
            actor=request.user,
            action=AuditAction.UPDATE if change else AuditAction.CREATE,
            instance=obj,
            before=before,
            after=model_snapshot(obj),
        )

    def delete_model(self, request: HttpRequest, obj: models.Model) -> None:
        audit_record(
            actor=request.user, action=AuditAction.DELETE, instance=obj, before=model_snapshot(obj)
        )
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for obj in queryset:
            audit_record(
                actor=request.user,
                action=AuditAction.DELETE,
                instance=obj,
                before=model_snapshot(obj),
            )
        super().delete_queryset(request, queryset)
