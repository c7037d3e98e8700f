from django.apps import AppConfig


class SlosConfig(AppConfig):
    name = "apps.slos"
    label = "slos"
    verbose_name = "SLOs"
