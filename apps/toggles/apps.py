from django.apps import AppConfig


class TogglesConfig(AppConfig):
    name = "apps.toggles"
    label = "toggles"
    verbose_name = "Degradation toggles"
