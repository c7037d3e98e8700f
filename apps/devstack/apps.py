from django.apps import AppConfig


class DevstackConfig(AppConfig):
    name = "apps.devstack"
    label = "devstack"
    verbose_name = "Development stack"
