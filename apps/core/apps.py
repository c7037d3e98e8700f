from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    verbose_name = "Control plane"

    def ready(self) -> None:
        from . import task_metrics

        task_metrics.connect()
