from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


def _ingest_tokens_changed(**kwargs: Any) -> None:
    from .selectors import ingest_tokens_forget

    ingest_tokens_forget()


class LogsConfig(AppConfig):
    name = "apps.logs"
    label = "logs"
    verbose_name = "Logs"

    def ready(self) -> None:
        # A push reads its token, team and team's limits from a short in-process cache
        # (apps.logs.selectors): a change saved in this process takes effect at once.
        from apps.accounts.models import Team

        from .models import IngestToken, TeamLogSettings

        for model in (IngestToken, TeamLogSettings, Team):
            for signal in (post_save, post_delete):
                signal.connect(_ingest_tokens_changed, sender=model, weak=False)
