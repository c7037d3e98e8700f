from django.contrib import admin

from .models import TaskCounter, WorkerHeartbeat


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ["hostname", "pid", "last_seen"]
    search_fields = ["hostname"]
    readonly_fields = ["hostname", "pid", "last_seen"]


@admin.register(TaskCounter)
class TaskCounterAdmin(admin.ModelAdmin):
    list_display = ["task_name", "outcome", "count"]
    list_filter = ["outcome"]
    search_fields = ["task_name"]
    readonly_fields = ["task_name", "outcome", "count"]
