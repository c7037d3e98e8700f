from django.apps import AppConfig


class FleetsimConfig(AppConfig):
    name = "apps.fleetsim"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Fleet simulator"
