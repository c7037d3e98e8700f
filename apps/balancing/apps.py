from django.apps import AppConfig


class BalancingConfig(AppConfig):
    name = "apps.balancing"
    label = "balancing"
    verbose_name = "Load balancing"
