from django.apps import AppConfig


class TogglesConfig(AppConfig):
    name = "apps.toggles"
    label = "toggles"
    verbose_name = "Degradation toggles"

    def ready(self) -> None:
        from .readcache import version_announce
        from .services import toggle_version_listen

        # Every committed change reaches the gateways' read path (cache and change stream).
        toggle_version_listen(version_announce)
